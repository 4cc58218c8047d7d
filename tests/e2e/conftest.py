"""Fixtures for end-to-end tests: real Mosquitto and InfluxDB (Debian's), started once per session by
``core.services`` on free loopback ports with their files in a temporary directory, and stopped at
the end. Each test gets its own InfluxDB database, SQLite file, spool and collector client id, so tests
do not see each other's data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core import services as local_services
from core.influx import InfluxClient
from core.lineprotocol import quote_ident
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 2 < 65536 and not avoid & {port, port + 2}:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 2))  # InfluxDB's RPC port
                except OSError:
                    continue
            return port


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    mqtt_port = _free_port(set())
    influx_port = _free_port({mqtt_port, mqtt_port + 2})
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("services"),
        mqtt_url=f"mqtt://127.0.0.1:{mqtt_port}",
        influx_url=f"http://127.0.0.1:{influx_port}",
    )
    local_services.up(settings)
    yield settings
    local_services.down(settings)


@dataclass
class Env:
    """What one test's ChainWatch processes see: the shared servers, its own files and database."""

    settings: Settings
    services: Settings
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)  # killed at teardown

    @property
    def environ(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "CHAINWATCH_DATA_DIR": str(s.data_dir),
            "CHAINWATCH_MQTT_URL": s.mqtt_url,
            "CHAINWATCH_INFLUX_URL": s.influx_url,
            "CHAINWATCH_INFLUX_DB": s.influx_db,
            "CHAINWATCH_COLLECTOR_CLIENT_ID": s.collector_client_id,
            "CHAINWATCH_ALERTING_CLIENT_ID": s.alerting_client_id,
            "CHAINWATCH_COLLECTOR_BATCH_SECONDS": str(s.collector_batch_seconds),
            "PYTHONUNBUFFERED": "1",
        }

    def influx(self) -> InfluxClient:
        return InfluxClient(self.settings.influx_url, self.settings.influx_db)

    def count(self, measurement: str, field: str) -> int:
        with self.influx() as client:
            series = client.query(f"SELECT count({quote_ident(field)}) FROM {quote_ident(measurement)}")
        return int(series[0]["values"][0][1]) if series else 0

    def chainwatch(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args],
            env=self.environ,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def simulate(self, *args: str, timeout: float = 600) -> dict[str, Any]:
        """Run ``chainwatch simulate`` to its end; return its result (the JSON line it prints)."""
        proc = self.chainwatch("simulate", *args, timeout=timeout)
        assert proc.returncode == 0, f"simulate failed ({proc.returncode}): {proc.stderr[-2000:]}"
        return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def env(services: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40] + f"-{digest}"
    settings = services.model_copy(
        update={
            "data_dir": tmp_path / "chainwatch",
            "influx_db": "t_" + name.replace("-", "_"),
            "collector_client_id": f"collector-{name}",
            # its own MQTT session: a session left by an earlier test's alerting service would hand
            # this test's service that test's queued readings first, newer than this test's own
            "alerting_client_id": f"alerting-{name}",
        }
    )
    settings.data_dir.mkdir()
    with InfluxClient(settings.influx_url, settings.influx_db) as client:
        client.create_database()
    env = Env(settings, services)
    yield env
    for child in env.children:
        if child.poll() is None:
            child.terminate()  # lets `chainwatch run` stop its own children
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


class CollectorProcess:
    """``chainwatch collector`` as a child process, as an operator would run it."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = env.settings.data_dir / "collector.log"
        self.stats_file = env.settings.data_dir / "collector.json"

    def start(self) -> None:
        self.stats_file.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "collector"],
                env=self.env.environ,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.env.children.append(self.proc)  # stopped at teardown even when the test fails
        try:
            wait_until(lambda: self.stats().get("connected"), 30, "the collector to connect")
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def stats(self) -> dict[str, Any]:
        self.check_alive()
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"the collector died (exit {self.proc.returncode}):\n{tail}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc = None
        return code


@pytest.fixture
def collector(env: Env) -> Iterator[CollectorProcess]:
    c = CollectorProcess(env)
    c.start()
    yield c
    if c.proc is not None and c.proc.poll() is None:
        c.stop()
