"""The acknowledgement page an alert SMS links to: through FastAPI's TestClient, and in a real headless
Chromium on a phone-sized screen (with the CJK fonts actually drawing Chinese, not empty boxes)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerting import lifecycle
from alerting.notify.links import BASE62, AckLinkRow
from alerting.store import AlertEventRow, AlertState, EventKind
from core.db import PersonRow
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from web.app import create_app

from .conftest import NURSE, OTHER_NURSE, T0, TTL_S, World


def url(token: str) -> str:
    return f"/a/{token}"


def ack_events(world: World) -> list[AlertEventRow]:
    with world.session() as s:
        q = select(AlertEventRow).where(
            AlertEventRow.alert_id == world.alert_id, AlertEventRow.kind == EventKind.acknowledged.value
        )
        return list(s.scalars(q))


def link_row(world: World, token: str) -> AckLinkRow:
    link_id = 0
    for ch in token.split("-")[0]:
        link_id = link_id * 62 + BASE62.index(ch)
    with world.session() as s:
        row = s.get(AckLinkRow, link_id)
        assert row is not None
        s.expunge(row)
        return row


# ---------------------------------------------------------------- TestClient


def test_health(client: TestClient):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_get_shows_the_alert_in_chinese_and_changes_nothing(client: TestClient, world: World):
    r = client.get(url(world.token))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="zh-CN">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert len(r.content) < 10_000
    assert "<script" not in html
    assert world.alert().message in html  # 【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C，...
    assert "9.2°C" in html
    assert "清水镇卫生院 · 疫苗冷藏冰箱 1" in html
    assert "11月26日 03:12" in html
    assert "未确认" in html
    assert "确认人：王秀英" in html
    assert "确认收到" in html and "<textarea" in html
    assert 'class="card critical"' in html
    assert 'href="?lang=en"' in html
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    # opening the link (or an app prefetching it for a preview) acknowledges nothing
    for _ in range(3):
        assert client.get(url(world.token)).status_code == 200
    alert = world.alert()
    assert alert.state == AlertState.firing.value
    assert alert.acknowledged_by is None
    assert ack_events(world) == []
    assert link_row(world, world.token).used_at is None


def test_post_acknowledges_as_the_links_person_with_the_note(client: TestClient, world: World):
    world.clock.set(T0 + 300)
    r = client.post(url(world.token), data={"note": "  已到现场，正在转移疫苗  ", "lang": "zh-CN"})
    assert r.status_code == 200
    assert "已确认收到" in r.text
    assert "<form" not in r.text
    alert = world.alert()
    assert alert.state == AlertState.acknowledged.value
    assert alert.acknowledged_by == NURSE
    assert alert.acknowledged_note == "已到现场，正在转移疫苗"
    assert alert.acknowledged_at == T0 + 300
    (event,) = ack_events(world)
    assert (event.by, event.note, event.at) == (NURSE, "已到现场，正在转移疫苗", T0 + 300)
    link = link_row(world, world.token)
    assert (link.used_at, link.used_note) == (T0 + 300, "已到现场，正在转移疫苗")

    # the same link again (a double tap, a reload): harmless, says who acknowledged and when
    world.clock.set(T0 + 400)
    again = client.post(url(world.token), data={"note": "第二次"})
    assert again.status_code == 200
    assert "此警报已由 王秀英 于 11月26日 03:17 确认。" in again.text
    assert "备注：已到现场，正在转移疫苗" in again.text
    assert len(ack_events(world)) == 1
    assert world.alert().acknowledged_note == "已到现场，正在转移疫苗"
    assert link_row(world, world.token).used_at == T0 + 300
    # and the page now shows the state, no button
    page = client.get(url(world.token))
    assert "已确认" in page.text and "<form" not in page.text


def test_post_without_a_note(client: TestClient, world: World):
    r = client.post(url(world.token), data={"note": ""})
    assert r.status_code == 200
    alert = world.alert()
    assert (alert.acknowledged_by, alert.acknowledged_note) == (NURSE, None)


def test_acknowledged_by_someone_else_shows_who_and_when(client: TestClient, world: World):
    other = world.issue(OTHER_NURSE)
    assert client.post(url(other), data={"note": "我来处理"}).status_code == 200
    r = client.post(url(world.token), data={"note": "收到"})
    assert r.status_code == 200
    assert "此警报已由 李建华 于 11月26日 03:14 确认。" in r.text
    alert = world.alert()
    assert (alert.acknowledged_by, alert.acknowledged_note) == (OTHER_NURSE, "我来处理")
    assert len(ack_events(world)) == 1
    assert link_row(world, world.token).used_note == "收到"  # kept on the link


def test_resolved_alert_says_so(client: TestClient, world: World):
    with world.session() as s, s.begin():
        lifecycle.resolve(s, world.alert_id, "qingshui-head", "疫苗已转移到备用冰箱", T0 + 600)
    for r in (client.get(url(world.token)), client.post(url(world.token), data={"note": ""})):
        assert r.status_code == 200
        assert "此警报已由 张丽娟 于 11月26日 03:22 关闭。" in r.text
        assert "<form" not in r.text
    alert = world.alert()
    assert alert.state == AlertState.resolved.value and alert.acknowledged_by is None


def test_expired_link_is_410_with_what_to_do(client: TestClient, world: World):
    world.clock.set(T0 + 120 + TTL_S)
    for r in (client.get(url(world.token)), client.post(url(world.token), data={"note": "x"})):
        assert r.status_code == 410
        assert "链接已过期" in r.text
        assert "此确认链接已于 11月29日 03:14 过期。" in r.text
        assert "致电卫生院负责人" in r.text
        assert 'href="tel:+8613800021003"' in r.text and "张丽娟" in r.text
        assert "<form" not in r.text
    assert world.alert().state == AlertState.firing.value
    assert ack_events(world) == []


def test_expired_page_in_the_persons_language(client: TestClient, world: World):
    with world.session() as s, s.begin():
        person = s.get(PersonRow, NURSE)
        assert person is not None
        person.language = "en"
    world.clock.set(T0 + 120 + TTL_S + 1)
    r = client.get(url(world.token))
    assert r.status_code == 410
    assert '<html lang="en">' in r.text
    assert "This acknowledgement link expired at 29 Nov 03:14." in r.text
    assert "call the clinic head" in r.text


@pytest.mark.parametrize(
    "mangle",
    [
        lambda tok: tok[:-1] + ("A" if tok[-1] != "A" else "B"),  # tampered tag
        lambda tok: "2" + tok[tok.index("-") :],  # another id with this tag
        lambda tok: "zz" + tok[tok.index("-") :],  # an id that does not exist
        lambda tok: "not-a-token",
        lambda tok: tok + "x",
        lambda tok: "0" + tok,
        lambda tok: "zzzzzzzzzzz" + tok[tok.index("-") :],  # beyond any SQL integer
    ],
)
def test_bad_tokens_are_404_invalid(client: TestClient, world: World, mangle):
    world.issue(OTHER_NURSE)  # id 2 exists
    bad = mangle(world.token)
    for r in (client.get(url(bad)), client.post(url(bad), data={"note": "x"})):
        assert r.status_code == 404
        assert "链接无效" in r.text
        assert "<form" not in r.text
    assert world.alert().state == AlertState.firing.value


def test_english(client: TestClient, world: World):
    r = client.get(url(world.token), params={"lang": "en"})
    assert r.status_code == 200
    html = r.text
    assert '<html lang="en">' in html
    assert world.alert().message_en in html
    assert "9.2 °C" in html
    assert "26 Nov 03:12" in html
    assert "Not acknowledged" in html
    assert "Acknowledging as: 王秀英" in html
    assert ">Acknowledge</button>" in html
    assert 'href="?lang=zh-CN"' in html and ">中文</a>" in html
    assert 'name="lang" value="en"' in html
    done = client.post(url(world.token), data={"note": "on my way", "lang": "en"})
    assert done.status_code == 200
    assert "Acknowledged, thank you." in done.text
    assert world.alert().acknowledged_note == "on my way"
    # back to Chinese
    assert '<html lang="zh-CN">' in client.get(url(world.token), params={"lang": "zh-CN"}).text


def test_persons_language_is_the_default(client: TestClient, world: World):
    with world.session() as s, s.begin():
        person = s.get(PersonRow, NURSE)
        assert person is not None
        person.language = "en"
    assert '<html lang="en">' in client.get(url(world.token)).text
    assert '<html lang="zh-CN">' in client.get(url(world.token), params={"lang": "zh-CN"}).text


def test_post_accepts_only_the_urlencoded_form(client: TestClient, world: World):
    assert client.post(url(world.token), json={"note": "x"}).status_code == 415
    assert client.post(url(world.token), files={"note": ("n.txt", b"x")}).status_code == 415
    r = client.post(
        url(world.token),
        content=b"note=x",
        headers={"content-type": "text/plain"},
    )
    assert r.status_code == 415
    big = client.post(url(world.token), data={"note": "冷" * 3000})
    assert big.status_code == 413
    long_note = client.post(url(world.token), data={"note": "x" * 501})
    assert long_note.status_code == 400
    assert world.alert().state == AlertState.firing.value
    assert ack_events(world) == []


def test_user_text_is_escaped(client: TestClient, world: World):
    client.post(url(world.token), data={"note": "<script>alert(1)</script>"})
    html = client.get(url(world.token)).text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


# ---------------------------------------------------------------- a real browser


@pytest.fixture
def server(world: World) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free loopback port."""
    with serving(create_app(world.settings, world.clock)) as url:
        yield url


def test_people_acknowledging_at_once_make_one_acknowledgement(world: World, server: str):
    """Three people tap at the same moment: one acknowledgement, the others are told who made it."""
    tokens = [world.token, world.issue(OTHER_NURSE), world.issue("qingshui-head")]
    barrier = threading.Barrier(len(tokens))
    pages: dict[str, httpx.Response] = {}

    def tap(token: str) -> None:
        with httpx.Client(base_url=server) as c:
            barrier.wait()
            pages[token] = c.post(url(token), data={"note": token})

    threads = [threading.Thread(target=tap, args=(tok,)) for tok in tokens]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    (event,) = ack_events(world)
    alert = world.alert()
    assert (alert.acknowledged_by, alert.acknowledged_note) == (event.by, event.note)
    winner = next(tok for tok in tokens if tok == event.note)
    assert all(r.status_code == 200 for r in pages.values())
    assert "已确认收到" in pages[winner].text
    for tok in tokens:
        if tok != winner:
            assert "此警报已由" in pages[tok].text and "已确认收到" not in pages[tok].text


# Draw each character alone on a canvas, in the font the page uses: with a CJK font each one is a
# different picture; without one, all of them (and an unassigned code point) are the same empty box.
GLYPHS_JS = """
([chars, selector]) => {
  const font = getComputedStyle(document.querySelector(selector)).font;
  return chars.map((ch) => {
    const c = document.createElement("canvas");
    c.width = 64; c.height = 64;
    const g = c.getContext("2d");
    g.font = font.replace(/\\d+(\\.\\d+)?px/, "40px");
    g.fillStyle = "#000";
    g.fillText(ch, 4, 48);
    return c.toDataURL();
  });
}
"""


def test_in_headless_chromium_on_a_phone(world: World, server: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `chainwatch services install` (Debian's chromium)")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    link = f"{server}/a/{world.token}"
    world.clock.set(T0 + 900)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
            response = page.goto(link)
            assert response is not None and response.status == 200
            msg = page.locator(".msg")
            assert msg.is_visible()
            assert "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1" in msg.inner_text()
            assert page.get_by_text("确认人：王秀英").is_visible()
            button = page.get_by_role("button", name="确认收到")
            assert button.is_visible()
            # the button is on the first screen of a small phone, and nothing is wider than it
            box = button.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 740
            assert page.evaluate("document.documentElement.scrollWidth") <= 360

            # the Chinese is drawn with real glyphs (fonts-noto-cjk), not identical empty boxes
            chars = ["确", "认", "收", "到", "冷", "链", "\U0010fffd"]
            pictures = page.evaluate(GLYPHS_JS, [chars, "button"])
            tofu = pictures[-1]
            cjk = pictures[:-1]
            assert len(set(cjk)) == len(cjk), "Chinese characters all look the same: no CJK font"
            assert tofu not in cjk, "Chinese characters drawn as .notdef boxes: no CJK font"
            page.screenshot(path=str(shots / "ack-page.png"), full_page=True)

            page.get_by_label("备注（可选）").fill("已到现场，正在转移疫苗")
            with page.expect_navigation():
                button.click()
            assert page.get_by_text("已确认收到，谢谢。").is_visible()
            page.screenshot(path=str(shots / "ack-done.png"), full_page=True)
        finally:
            browser.close()

    alert = world.alert()
    assert alert.state == AlertState.acknowledged.value
    assert (alert.acknowledged_by, alert.acknowledged_note, alert.acknowledged_at) == (
        NURSE,
        "已到现场，正在转移疫苗",
        T0 + 900,
    )
    assert re.fullmatch(r"[0-9A-Za-z]+-[A-Za-z0-9_-]{12}", world.token)
    assert (shots / "ack-page.png").stat().st_size > 0
    print(f"\nscreenshots in {shots}")
