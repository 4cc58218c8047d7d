"""The clinic page's chart and "out of range since" against a real InfluxDB: a day of readings with an
excursion written as the collector writes them, then the page as the nurse sees it (the chart's points
and red marks, read back from its SVG) and the status API (the field-filtered queries that find when
the current excursion began)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import web.users
from core.clock import ManualClock
from core.lineprotocol import encode_line
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from core.settings import Settings
from tests.e2e.conftest import Env
from tests.web.auth_helpers import FAST_HASHER, add_test_users, login
from web.app import create_app

pytestmark = pytest.mark.e2e

NOW = 1_795_633_920.0  # 2026-11-26 03:12 clinic time
CLINIC = "qingshui-thc"
FRIDGE = "qingshui-fridge1"
FRIDGE2 = "qingshui-fridge2"
NS = {"s": "http://www.w3.org/2000/svg"}


def _write(env: Env, equipment: str, readings: list[tuple[float, float]]) -> None:
    tags = {"district": "demo-district", "clinic": CLINIC, "equipment": equipment, "probe": "p1"}
    lines = [encode_line("temperature", tags, {"celsius": c}, int(t * 1000)) for t, c in readings]
    with env.influx() as client:
        client.write("\n".join(lines), precision="ms")


def _minutes(start: float, end: float, celsius: float) -> list[tuple[float, float]]:
    return [(t, celsius) for t in range(int(start), int(end), 60)]


@pytest.fixture
def staff(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    settings: Settings = env.settings.model_copy(
        update={"database_url": "", "ack_link_secret": SecretStr("e2e-chart"), "public_url": "http://x"}
    )
    monkeypatch.setattr(web.users, "HASHER", FAST_HASHER)
    clock = ManualClock(NOW)
    app = create_app(settings, clock)
    store_registry(app.state.engine, load_registry_file(DEMO_REGISTRY))
    add_test_users(app.state.engine, NOW)
    with TestClient(app) as c:
        login(c, "staff")
        yield c


def test_chart_points_and_red_marks_from_influxdb(env: Env, staff: TestClient):
    # fridge 1: 5.0 °C all day but 9.5 °C from 20:00 to 20:30 (exactly 3 ten-minute buckets) and one
    # reading of exactly 8.0 (in range, as the rules count it)
    day = NOW - 86400
    excursion = (NOW - 7 * 3600 - 12 * 60, NOW - 6 * 3600 - 42 * 60)  # 20:00-20:30 clinic time
    readings = [
        (t, 9.5 if excursion[0] <= t < excursion[1] else 8.0 if t == NOW - 3600 else 5.0)
        for t, _ in _minutes(day + 60, NOW, 0.0)
    ]
    _write(env, FRIDGE, readings)
    # fridge 2: in range, then out from 02:50 on; no alert yet
    _write(env, FRIDGE2, _minutes(day + 60, NOW - 22 * 60, 4.0) + _minutes(NOW - 22 * 60, NOW, 8.6))

    html = staff.get(f"/clinics/{CLINIC}").text
    svg = _svg(html, FRIDGE)
    title = svg.find("s:title", NS)
    assert title is not None and title.text is not None
    # 24 h up to 03:12 in 10-minute buckets: 145 (the first and last are partial)
    assert "最低 5.0°C，最高 9.5°C；145 个 10 分钟时段中 3 个超出允许范围" in title.text
    line = svg.find("s:path[@class='line']", NS)
    assert line is not None and len(re.findall(r"[ML][\d.]+ [\d.]+", line.get("d", ""))) == 145
    out = svg.find("s:path[@class='out']", NS)
    assert out is not None
    xs = [float(x) for x in re.findall(r"M([\d.]+) [\d.]+h0", out.get("d", ""))]
    assert len(xs) == 3 and xs == sorted(xs)
    # they sit where 20:00-20:30 is on the time axis
    labels = {t.text: float(t.get("x", "0")) for t in svg.iterfind(".//s:text", NS) if ":" in (t.text or "")}
    per_hour = (labels["00:00"] - labels["18:00"]) / 6
    assert labels["18:00"] + 2 * per_hour < xs[0] < xs[-1] < labels["18:00"] + 2.5 * per_hour

    card = _card(html, FRIDGE2)
    assert 'data-state="amber"' in card and "超出允许范围，自 02:50 起（尚未报警）" in card
    status = staff.get(f"/api/clinics/{CLINIC}/status").json()
    eq = {e["id"]: e for e in status["equipment"]}
    assert status["influx_error"] is None
    assert (eq[FRIDGE2]["celsius"], eq[FRIDGE2]["out_of_range_since"]) == (8.6, NOW - 22 * 60)
    assert (eq[FRIDGE]["state"], eq[FRIDGE]["out_of_range_since"]) == ("green", None)
    assert "过去 24 小时无温度读数。" in _card(html, "qingshui-freezer1")


def _card(html: str, equipment: str) -> str:
    start = html.index(f'id="eq-{equipment}"')
    return html[start : html.index("</section>", start)]


def _svg(html: str, equipment: str) -> ET.Element:
    card = _card(html, equipment)
    return ET.fromstring(card[card.index("<svg") : card.index("</svg>") + 6])
