"""The web app against the running system, in a real browser (issue 6): ``chainwatch run`` (what
``make run`` starts: collector, alerting, web app and the simulated clinics) on the test's Mosquitto and
InfluxDB, with a scenario in which 清水镇卫生院's first refrigerator stands in a freezing room.

Headless Chromium (Debian's, driven by Playwright) then does what the people would:

1. the district officer logs in and sees 清水镇卫生院 red in the district grid;
2. the clinic's staff log in, see the refrigerator's card turn red, acknowledge the alarm, try to close
   it without a corrective action (refused: a critical cold-chain alarm needs one), close it with one;
3. the month's record, downloaded as the staff would, has the excursion, who acknowledged it and the
   corrective action in its text.

Screenshots of each step go to ``tests/e2e/screenshots/`` (not committed), to be looked at.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.store import AlertRow
from core.clinic_time import CLINIC_TZ
from core.db import make_engine
from tests.e2e.conftest import ROOT, Env, _free_port, wait_until
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).parent / "screenshots"
CLINIC, FRIDGE = "qingshui-thc", "qingshui-fridge1"
SCENARIO = """
name: 清水镇卫生院 fridge 1 in a freezing room
description: the heating of the vaccine room fails in a cold night; the first refrigerator freezes
events:
  - kind: ambient
    clinic: 1
    equipment: fridge1
    at: "+1h"
    duration: 12h
    ambient_c: -30
"""
ACTION_DETAIL = "疫苗已转移至2号冰箱，振荡试验合格"


@pytest.fixture
def system(env: Env, tmp_path: Path) -> Iterator[str]:
    """``chainwatch run`` with 2 clinics, 8 h of back-filled history and the scenario; its web URL."""
    scenario = tmp_path / "freeze.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    port = _free_port(set())
    log = env.settings.data_dir / "run.log"
    argv = [sys.executable, "-m", "core.cli", "run", "--clinics", "2", "--backfill", "8h"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--scenario", str(scenario)],
            env={
                **env.environ,
                "CHAINWATCH_WEB_PORT": str(port),
                "CHAINWATCH_ALERTING_TICK_S": "1",
                "CHAINWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
            },
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    env.children.append(proc)
    url = f"http://127.0.0.1:{port}"

    def web_up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"chainwatch run exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(web_up, 90, "the web app of chainwatch run")
    yield url


def _freeze_alarm(env: Env) -> AlertRow | None:
    with Session(make_engine(env.settings.sql_url)) as s:
        return s.scalars(
            select(AlertRow).where(
                AlertRow.subject == FRIDGE, AlertRow.rule == "freeze_alarm", AlertRow.severity == "critical"
            )
        ).first()


def test_a_freeze_seen_acknowledged_closed_and_recorded_in_the_browser(env: Env, system: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    # the alarm needs an hour at or below -0.5 °C of simulated time: the back-fill makes it in seconds
    try:
        alarm = wait_until(lambda: _freeze_alarm(env), 180, "the freeze alarm of qingshui-fridge1")
    except pytest.fail.Exception:
        pytest.fail(_why_no_alarm(env))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # -- the district officer: the clinic is red in the grid
            officer = browser.new_context(viewport={"width": 1024, "height": 900}, locale="zh-CN")
            page = officer.new_page()
            _login(page, system, "bureau", "bureau-demo")
            page.goto(f"{system}/district")
            tile = page.locator(f"#clinic-{CLINIC}")
            expect(tile).to_have_attribute("data-state", "red")
            expect(tile).to_contain_text("清水镇卫生院")
            page.screenshot(path=str(SHOTS / "1-district-grid.png"), full_page=True)
            officer.close()

            # -- the clinic's staff, on a phone-sized screen
            staff = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page = staff.new_page()
            _login(page, system, "qingshui", "qingshui-demo")
            expect(page).to_have_url(f"{system}/clinics/{CLINIC}")
            card = page.locator(f"#eq-{FRIDGE}")
            expect(card).to_have_attribute("data-state", "red")
            block = page.locator(f"#alert-{alarm.id}")
            expect(block).to_contain_text("严重警报")
            card.screenshot(path=str(SHOTS / "2-red-card.png"))

            block.get_by_role("button", name="确认收到").click()
            block = page.locator(f"#alert-{alarm.id}")
            expect(block).to_contain_text("已确认")
            expect(block).to_contain_text("王秀英")  # the demo login is linked to nurse 王秀英
            page.screenshot(path=str(SHOTS / "3-acknowledged.png"), full_page=True)

            # closing a critical alarm without saying what was done is refused, with why
            block.locator("select[name=corrective_action]").evaluate("e => e.removeAttribute('required')")
            block.get_by_role("button", name="关闭警报").click()
            block = page.locator(f"#alert-{alarm.id}")
            expect(block.get_by_role("alert")).to_be_visible()
            page.screenshot(path=str(SHOTS / "4-needs-action.png"), full_page=True)

            block.locator("select[name=corrective_action]").select_option("moved_vaccines")
            block.locator("input[name=detail]").fill(ACTION_DETAIL)
            block.get_by_role("button", name="关闭警报").click()
            expect(page.locator(f"#alert-{alarm.id}")).to_have_count(0)
            page.screenshot(path=str(SHOTS / "5-closed.png"), full_page=True)

            # -- the month's record, downloaded with the staff's session
            month = datetime.fromtimestamp(alarm.started_at, CLINIC_TZ).strftime("%Y-%m")
            r = staff.request.get(f"{system}/clinics/{CLINIC}/report/{month}.pdf")
            assert r.status == 200 and r.headers["content-type"] == "application/pdf"
            text = "".join(pg.extract_text() for pg in PdfReader(io.BytesIO(r.body())).pages)
            staff.close()
        finally:
            browser.close()

    closed = _freeze_alarm(env)
    assert closed is not None and closed.state == "resolved"
    assert closed.acknowledged_by == "qingshui-nurse1" and closed.resolved_by == "qingshui-nurse1"
    assert closed.corrective_action == f"moved_vaccines: {ACTION_DETAIL}"
    squashed = "".join(text.split())  # pypdf may break lines anywhere in a CJK run
    assert "清水镇卫生院" in squashed
    assert alarm.id in squashed
    assert "王秀英" in squashed
    assert "".join(ACTION_DETAIL.split()) in squashed
    assert "已将疫苗转移至备用设备" in squashed and "moved_vaccines" not in squashed  # by name, not code


def _why_no_alarm(env: Env) -> str:
    """What the system did instead: its alerts at the clinic and the supervisor's own lines."""
    with Session(make_engine(env.settings.sql_url)) as s:
        alerts = [
            f"{a.rule}/{a.severity}/{a.state} on {a.subject} at {a.started_at:.0f}"
            for a in s.scalars(select(AlertRow).where(AlertRow.clinic == CLINIC))
        ]
    log = (env.settings.data_dir / "run.log").read_text(errors="replace").splitlines()
    ours = [ln for ln in log if ln.startswith("[chainwatch]") or " ERROR " in ln or "WARNING" in ln]
    stats = {n: (env.settings.data_dir / f"{n}.json") for n in ("collector", "alerting")}
    numbers = {n: p.read_text() if p.exists() else "(none)" for n, p in stats.items()}
    return (
        f"no freeze alarm for {FRIDGE} after 180 s\nalerts at {CLINIC}: {alerts}\n"
        f"stats: {numbers}\nchainwatch run said:\n" + "\n".join(ours[-40:])
    )


def _login(page: object, base: str, username: str, password: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
