"""``chainwatch run``: the whole system on one machine, for the demo and for development.

Starts the local services (if they are not running), loads the demo registry into an empty database,
then runs each ChainWatch service and the simulated clinics as child processes, restarting a service
that dies. Ctrl-C (or SIGTERM) stops the children and the local services it started itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.db import make_engine
from core.registry_store import ensure_registry
from core.settings import Settings


@dataclass
class Child:
    name: str
    argv: list[str]
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, start_new_session=True)
        self.started = time.monotonic()


def _chainwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def _wait_subscribed(stats: Path, child: Child, stop: threading.Event, say: Callable[[str], None]) -> None:
    """Wait until ``child`` reports (in its stats file) that its subscriptions exist."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        try:
            if json.loads(stats.read_text()).get("connected"):
                return
        except (OSError, ValueError):
            pass
        if child.proc is not None and child.proc.poll() is not None:
            return  # it died: the supervision loop restarts it
        stop.wait(0.2)
    say(f"the {child.name} has not subscribed yet; going on anyway")


def run_all(settings: Settings, *, clinics: int, backfill: str, scenario: Path | None = None) -> int:
    from core import services

    def say(msg: str) -> None:
        print(f"[chainwatch] {msg}", flush=True)

    already = {s.name for s in services.status(settings) if s.running}
    services.up(settings, say)
    started_services = {"mosquitto", "influxdb"} - already
    sql = make_engine(settings.sql_url)
    if ensure_registry(sql, settings.registry_file):
        say("loaded the demo district (10 township clinics) into the registry")
    from web.users import demo_logins, ensure_demo_users

    ensure_demo_users(sql)
    from core.stock_demo import seed_demo_stock

    seed_demo_stock(sql, time.time())  # the demo district's opening vaccine stock, once
    logins = demo_logins(sql)

    start = "now" if backfill in ("", "0", "0h") else f"-{backfill}"
    children = [
        Child("collector", _chainwatch("collector")),
        Child("alerting", _chainwatch("alerting")),
        Child("web", _chainwatch("web")),
        Child(
            "simulator",
            # speed 0: the backfill as fast as possible, then live (simulated time never runs
            # ahead of the wall clock)
            _chainwatch("simulate", "--clinics", str(clinics), "--speed", "0", f"--start={start}", "--waste")
            + ["--stock"]  # the vaccine stock flow, written to SQL (simulators.stock)
            + (["--scenario", str(scenario)] if scenario else []),
            restart=False,
        ),
    ]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for name in ("collector", "alerting"):
        (settings.data_dir / f"{name}.json").unlink(missing_ok=True)
    for child in children:
        child.start()
        say(f"started {child.name} (pid {child.proc.pid if child.proc else '?'})")
        if child.name in ("collector", "alerting"):
            # their subscriptions must exist before the simulator publishes, or the broker has nobody
            # to queue the first (back-filled) messages for
            _wait_subscribed(settings.data_dir / f"{child.name}.json", child, stop, say)

    say(f"MQTT broker:  {settings.mqtt_url}   (watch: mosquitto_sub -p {settings.mqtt_port} -t 'cw/v1/#' -v)")
    say(f"InfluxDB:     {settings.influx_url}  database {settings.influx_db}")
    say(
        "try:          curl -s -G "
        f"{settings.influx_url}/query --data-urlencode db={settings.influx_db} --data-urlencode "
        '"q=SELECT last(celsius) FROM temperature GROUP BY clinic, equipment"'
    )
    say(f"web:          http://127.0.0.1:{settings.web_port}/login   (API docs: /docs)")
    for username, password, role, scope in logins:
        say(f"  demo login: {username} / {password}   ({role}{', ' + scope if scope else ''})")
    say(
        f"SMS:          channels {settings.notify_channels}; "
        f"the demo's outbox sends nothing: see http://127.0.0.1:{settings.web_port}/outbox"
    )
    say(f"data:         {settings.data_dir.resolve()}   (Ctrl-C stops everything started here)")

    try:
        while not stop.wait(1.0):
            for child in children:
                if child.proc is None or child.proc.poll() is None:
                    continue
                code = child.proc.returncode
                if not child.restart:
                    say(f"{child.name} finished (exit {code})")
                    child.proc = None
                    continue
                child.restarts += 1
                delay = min(30, 2**child.restarts) if time.monotonic() - child.started < 60 else 1
                say(f"{child.name} exited with {code}; restarting in {delay} s")
                if stop.wait(delay):
                    break
                child.start()
    finally:
        say("stopping")
        for child in children:
            if child.proc and child.proc.poll() is None:
                os.killpg(child.proc.pid, signal.SIGTERM)
        for child in children:
            if child.proc:
                try:
                    child.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.proc.pid, signal.SIGKILL)
        for name in sorted(started_services):
            services.stop_service(settings, name)
        say("stopped")
    return 0
