"""``chainwatch dashboards push`` against a small fake Grafana (http.server in a thread) that records
every HTTP API call: paths, methods, bearer auth, bodies; and the one-line errors a user sees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from alerting.store import AlertRow, init_alert_tables
from core.cli import main
from core.db import make_engine
from dashboards.model import load_dashboards
from dashboards.push import AlertSpan, push

TOKEN = "glsa_good-token"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    auth: str | None
    body: Any


@dataclass
class FakeGrafana:
    """Enough of Grafana's HTTP API for a push: folders, dashboards, annotations."""

    calls: list[Call] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, dict[str, Any]] = field(default_factory=dict)
    forbid: bool = False  # answer 403 to writes (a Viewer token)

    def handle(self, call: Call) -> tuple[int, Any]:
        self.calls.append(call)
        if call.auth != f"Bearer {TOKEN}":
            return 401, {"message": "Unauthorized"}
        if self.forbid and call.method != "GET":
            return 403, {"message": "You'll need additional permissions to perform this action."}
        route = (call.method, call.path)
        if call.method == "GET" and call.path.startswith("/api/folders/"):
            uid = call.path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
        if route == ("POST", "/api/folders"):
            self.folders[call.body["uid"]] = {"uid": call.body["uid"], "title": call.body["title"]}
            return 200, self.folders[call.body["uid"]]
        if route == ("POST", "/api/dashboards/db"):
            uid = call.body["dashboard"]["uid"]
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {"body": call.body, "version": version}
            return 200, {"status": "success", "uid": uid, "version": version}
        if route == ("GET", "/api/annotations"):
            tags = set(call.query.get("tags", []))
            return 200, [a for a in self.annotations.values() if tags <= set(a["tags"])]
        if route == ("POST", "/api/annotations"):
            new_id = len(self.annotations) + 1
            self.annotations[new_id] = {"id": new_id, **call.body}
            return 200, {"id": new_id, "message": "Annotation added"}
        if call.method == "PUT" and call.path.startswith("/api/annotations/"):
            ann_id = int(call.path.rsplit("/", 1)[1])
            self.annotations[ann_id] = {"id": ann_id, **call.body}
            return 200, {"message": "Annotation updated"}
        return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            call = Call(
                self.command, parts.path, parse_qs(parts.query), self.headers.get("Authorization"), body
            )
            status, answer = fake.handle(call)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAINWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CHAINWATCH_DATABASE_URL", raising=False)
    return tmp_path


def alert(alert_id: str, started_at: float, resolved_at: float | None = None) -> AlertSpan:
    return AlertSpan(
        alert_id, "heat_alarm", "critical", "qingshui-thc", "qingshui-fridge1", started_at, resolved_at,
        "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：11.0°C", "Cold chain alarm: Qingshui fridge 1 at 11.0 °C",
    )  # fmt: skip


def test_push_creates_the_folder_and_uploads_every_dashboard_with_overwrite(
    grafana: tuple[FakeGrafana, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    code = main(["dashboards", "push", "--url", url, "--token", TOKEN])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert all(c.auth == f"Bearer {TOKEN}" for c in fake.calls)
    assert [(c.method, c.path) for c in fake.calls[:2]] == [
        ("GET", "/api/folders/chainwatch"),
        ("POST", "/api/folders"),
    ]
    assert fake.calls[1].body == {"title": "ChainWatch 冷链与医疗废物", "uid": "chainwatch"}
    uploads = [c.body for c in fake.calls if (c.method, c.path) == ("POST", "/api/dashboards/db")]
    shipped = {d["uid"]: d for d in load_dashboards()}
    assert sorted(b["dashboard"]["uid"] for b in uploads) == sorted(shipped)
    for body in uploads:
        assert body["overwrite"] is True and body["folderUid"] == "chainwatch"
        assert "id" not in body["dashboard"]
        assert body["dashboard"]["panels"] == shipped[body["dashboard"]["uid"]]["panels"]
    lines = out.out.splitlines()
    assert lines[0] == "folder chainwatch: created"
    assert "dashboard cw-overview (区县总览): uploaded, version 1" in lines
    assert lines[-1] == "annotations on cw-overview: 0 added, 0 updated, 0 already there"

    # a second push finds the folder and replaces the dashboards
    fake.calls.clear()
    assert main(["dashboards", "push", "--url", url, "--token", TOKEN, "--no-annotations"]) == 0
    assert not [c for c in fake.calls if c.path == "/api/folders" and c.method == "POST"]
    assert "dashboard cw-overview (区县总览): uploaded, version 2" in capsys.readouterr().out


def test_alerts_of_the_alert_store_become_annotations_once(
    grafana: tuple[FakeGrafana, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    now = time.time()
    engine = make_engine(f"sqlite:///{data_dir / 'chainwatch.sqlite'}")
    init_alert_tables(engine)
    with Session(engine) as s, s.begin():
        for a in (
            alert("A-1", now - 7200, now - 3600),
            alert("A-2", now - 600),
            alert("A-old", now - 90 * 86400, now),
        ):
            s.add(
                AlertRow(
                    id=a.alert_id,
                    rule=a.rule,
                    family="heat",
                    subject=a.subject,
                    clinic=a.clinic,
                    severity=a.severity,
                    state="resolved" if a.resolved_at else "firing",
                    open_key=None if a.resolved_at else f"heat:{a.alert_id}",
                    started_at=a.started_at,
                    opened_by=a.alert_id,
                    last_change_at=a.started_at,
                    last_decision_at=a.started_at,
                    resolved_at=a.resolved_at,
                    message=a.message,
                    message_en=a.message_en,
                    values={},
                )
            )
    engine.dispose()
    assert main(["dashboards", "push", "--url", url, "--token", TOKEN]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "annotations on cw-overview: 2 added, 0 updated, 0 already there"
    )
    posted = [c.body for c in fake.calls if (c.method, c.path) == ("POST", "/api/annotations")]
    by_alert = {next(t for t in b["tags"] if t.startswith("alert:")): b for b in posted}
    assert set(by_alert) == {"alert:A-1", "alert:A-2"}  # A-old: resolved 90 days ago, outside --days 30
    a1 = by_alert["alert:A-1"]
    assert a1["dashboardUID"] == "cw-overview"
    assert (a1["time"], a1["timeEnd"]) == (int((now - 7200) * 1000), int((now - 3600) * 1000))
    assert {"chainwatch", "heat_alarm", "critical", "qingshui-thc"} <= set(a1["tags"])
    assert "清水镇卫生院" in a1["text"] and "Qingshui" in a1["text"]


def test_a_second_push_adds_nothing_and_closes_what_was_resolved(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    now = time.time()
    out = StringIO()
    push(url, TOKEN, [], [alert("A-1", now - 7200, now - 3600), alert("A-2", now - 600)], out)
    push(url, TOKEN, [], [alert("A-1", now - 7200, now - 3600), alert("A-2", now - 600, now - 60)], out)
    assert (
        out.getvalue().splitlines()[-1] == "annotations on cw-overview: 0 added, 1 updated, 1 already there"
    )
    assert len(fake.annotations) == 2
    (put,) = [c for c in fake.calls if c.method == "PUT"]
    assert put.path == "/api/annotations/2" and put.body["timeEnd"] == int((now - 60) * 1000)
    found = [c for c in fake.calls if (c.method, c.path) == ("GET", "/api/annotations")]
    assert found[0].query["dashboardUID"] == ["cw-overview"] and found[0].query["tags"] == ["chainwatch"]


def test_a_bad_token_is_one_line(
    grafana: tuple[FakeGrafana, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    assert main(["dashboards", "push", "--url", url, "--token", "wrong"]) == 1
    out = capsys.readouterr()
    assert out.err == "chainwatch dashboards: Grafana refused the token (401): check --token\n"
    assert fake.calls[0].auth == "Bearer wrong" and not fake.dashboards


def test_a_viewer_token_and_an_unreachable_grafana_are_one_line(
    grafana: tuple[FakeGrafana, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = grafana
    fake.forbid = True
    assert main(["dashboards", "push", "--url", url, "--token", TOKEN, "--no-annotations"]) == 1
    assert capsys.readouterr().err == (
        "chainwatch dashboards: Grafana refused creating the folder chainwatch (403): "
        "the token's service account needs the Editor role\n"
    )
    assert main(["dashboards", "push", "--url", "http://127.0.0.1:9", "--token", TOKEN]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainwatch dashboards: cannot reach Grafana at http://127.0.0.1:9")
    assert err.count("\n") == 1
