"""Fixtures for the web pages: a SQLite file in tmp_path with the demo registry, one heat alarm opened
through the real lifecycle, and an acknowledgement link for a nurse of that clinic."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerting import lifecycle
from alerting.messages import registry_names
from alerting.notify.links import init_link_tables, issue_link, link_key
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import AlertRow, init_alert_tables
from core.clock import ManualClock
from core.db import make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from core.settings import Settings
from web.app import create_app

T0 = 1_795_633_920.0  # 2026-11-26 03:12 in the clinics (UTC+8)
CLINIC = "qingshui-thc"
FRIDGE = "qingshui-fridge1"
NURSE = "qingshui-nurse1"  # 王秀英
OTHER_NURSE = "qingshui-nurse2"  # 李建华
TTL_S = 72 * 3600.0


@dataclass
class World:
    settings: Settings
    engine: Engine
    clock: ManualClock
    key: bytes
    alert_id: str
    token: str

    def session(self) -> Session:
        return Session(self.engine)

    def alert(self) -> AlertRow:
        with self.session() as s:
            row = s.get(AlertRow, self.alert_id)
            assert row is not None
            s.expunge(row)
            return row

    def issue(self, person_id: str, ttl_s: float = TTL_S) -> str:
        with self.session() as s, s.begin():
            return issue_link(s, self.key, self.alert_id, person_id, self.clock.now(), ttl_s)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url="",
        ack_link_secret=SecretStr("web-test-secret"),
        public_url="http://127.0.0.1:8080",
    )
    engine = make_engine(settings.sql_url)
    reg = load_registry_file(DEMO_REGISTRY)
    store_registry(engine, reg)
    init_alert_tables(engine)
    init_link_tables(engine)
    decision = Decision(
        T0,
        Rule.heat_alarm,
        Severity.critical,
        Action.fire,
        FRIDGE,
        "heat",
        CLINIC,
        {"celsius": 9.2, "minutes": 35, "threshold_c": 8.0},
    )
    clock = ManualClock(T0 + 120)
    key = link_key(settings)
    with Session(engine) as s, s.begin():
        (change,) = lifecycle.apply(s, decision, T0 + 60, names=registry_names(reg))
        token = issue_link(s, key, change.alert_id, NURSE, clock.now(), TTL_S)
    yield World(settings, engine, clock, key, change.alert_id, token)
    engine.dispose()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings, world.clock)) as c:
        yield c


# ---------------------------------------------------------------- logins (web.auth, web.users)


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for the users made in a test (and no rehash at their logins)."""
    import web.users

    from .auth_helpers import FAST_HASHER

    monkeypatch.setattr(web.users, "HASHER", FAST_HASHER)


@pytest.fixture
def users(world: World, fast_hashing: None) -> World:
    """The test users (``auth_helpers.TEST_USERS``: staff of qingshui-thc linked to 王秀英, officer of
    the demo district linked to 郑国平, admin; all with ``auth_helpers.PASSWORD``)."""
    from .auth_helpers import add_test_users

    add_test_users(world.engine, world.clock.now())
    return world


def _logged_in(world: World, username: str) -> Iterator[TestClient]:
    from .auth_helpers import login

    with TestClient(create_app(world.settings, world.clock)) as c:
        login(c, username)
        yield c


@pytest.fixture
def admin_client(users: World) -> Iterator[TestClient]:
    """A client logged in as ``admin`` (its requests send the session's CSRF token)."""
    yield from _logged_in(users, "admin")


@pytest.fixture
def staff_client(users: World) -> Iterator[TestClient]:
    """A client logged in as ``staff`` of qingshui-thc."""
    yield from _logged_in(users, "staff")


@pytest.fixture
def officer_client(users: World) -> Iterator[TestClient]:
    """A client logged in as ``officer`` of the demo district."""
    yield from _logged_in(users, "officer")


# Debian's Chromium, never a browser downloaded by playwright; the flags keep it off the network
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free loopback port (for the browser tests)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()
