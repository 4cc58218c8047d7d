"""The demo's outbox page: the SMS the dispatcher "sent" through the outbox channel, with their links
live (a visitor acknowledges as the nurse would), phone numbers masked; gone when real channels are in
use."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from alerting.messages import registry_names
from alerting.notify.dispatcher import Dispatcher, Options
from alerting.notify.outbox import OutboxNotifier
from alerting.notify.routing import routing_from_sql
from alerting.notify.store import init_notify_tables
from core.registry_model import DEMO_REGISTRY, load_registry_file
from tests.web.conftest import World
from web.app import create_app


def test_the_outbox_shows_the_sms_and_its_link_acknowledges(world: World, admin_client: TestClient) -> None:
    client = admin_client
    init_notify_tables(world.engine)
    d = Dispatcher(
        world.engine,
        routing_from_sql(world.engine),
        [OutboxNotifier(world.engine, world.clock)],
        world.key,
        registry_names(load_registry_file(DEMO_REGISTRY)),
        Options(group_wait_s=0, public_url="http://testserver"),
    )
    d.tick(world.clock.now())
    page = client.get("/outbox")
    assert page.status_code == 200
    assert "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1" in page.text
    assert "13800011002" not in page.text and "1002" in page.text  # masked: the last four digits
    (href,) = re.findall(r'href="(http://testserver/a/[^"]+)"', page.text)
    token = href.rsplit("/", 1)[1]
    assert client.post(f"/a/{token}", data={"note": "演示"}).status_code == 200
    assert world.alert().acknowledged_by == "qingshui-nurse2"  # the night nurse the SMS went to
    assert "No SMS yet" not in client.get("/outbox?lang=en").text


def test_no_outbox_page_when_real_channels_send(users: World) -> None:
    from .auth_helpers import login

    settings = users.settings.model_copy(update={"notify_channels": "aliyun"})
    with TestClient(create_app(settings, users.clock)) as c:
        login(c, "admin")
        assert c.get("/outbox").status_code == 404
