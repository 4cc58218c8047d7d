"""``chainwatch simulate``: simulated clinics publishing protocol v1 telemetry over MQTT.

``core.cli`` imports ``add_simulate_arguments`` and ``simulate_main``. Progress goes to stderr about
every 5 s; at the end the ``SimulationResult`` is printed as one JSON line on stdout. Errors are raised
as ``SimulateError`` with a one-line message (``core.cli`` prints it). With ``--waste`` the clinics'
waste scanners and the plant's publish the medical-waste chain of custody too (``simulators.waste``):
the result then has a ``waste`` object, the ground truth of the waste anomalies in the scenario, and
``--waste-jsonl FILE`` keeps every published waste event (one JSON object per line). With ``--stock``
the clinics' vaccine stock flow is written straight to SQL (``simulators.stock``): the result then has
a ``stock`` object; ``--stock-mismatch CLINIC`` makes that clinic check in fewer doses than were issued.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from pydantic import ValidationError

from core.clock import SystemClock
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.settings import Settings
from simulators.engine import District, Progress, Simulation, build_district
from simulators.publisher import MqttPublisher, PublishError
from simulators.scenario import (
    LOCAL_TZ,
    ResolvedEvent,
    ScenarioError,
    iso_utc,
    load_scenario,
    parse_duration,
    resolve_events,
)
from simulators.stock import SideStreams, StockFlow, StockSites, build_stock_sites
from simulators.waste import WasteFlow, WasteMessage, WasteSites, build_sites, jsonl_lines

FUTURE_START_TOLERANCE_S = 5.0
MAX_AGE_S = 390 * 86400.0  # the collector refuses readings older than 400 days (core.protocol.Limits)
FLUSH_TIMEOUT_S = 30.0
# "-6h" and "-90m" are values of --start, not options (argparse would take them for options)
_RELATIVE_OR_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-(?:\d+(?:\.\d+)?[dhms])+$")


class SimulateError(Exception):
    """A problem for the user: bad arguments, a bad scenario or registry, an unreachable broker."""


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clinics", type=int, default=10, help="simulate the first N clinics (default 10)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second (default 1); 0: as fast as possible up to now, then live",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same messages")
    parser.add_argument(
        "--start",
        default="now",
        help="simulated start: ISO 8601 UTC (2026-11-20T00:00:00Z), 'now' (default) or relative (-24h, -90m)",
    )
    parser.add_argument(
        "--duration", default=None, help="simulated time to run (24h, 90m, 3600s); default: until stopped"
    )
    parser.add_argument(
        "--scenario", default=None, metavar="FILE", help="scenario YAML (simulators/scenarios/)"
    )
    parser.add_argument(
        "--registry",
        default=None,
        metavar="FILE",
        help="registry YAML (default: settings, else the demo district)",
    )
    parser.add_argument(
        "--waste",
        action="store_true",
        help="also simulate the medical-waste chain of custody (clinic and plant waste scanners)",
    )
    parser.add_argument(
        "--waste-jsonl",
        default=None,
        metavar="FILE",
        help="write every published waste event to FILE, one JSON object per line (implies --waste)",
    )
    parser.add_argument(
        "--stock",
        action="store_true",
        help="also simulate the clinics' vaccine stock (deliveries, sessions, wastage), written to SQL",
    )
    parser.add_argument(
        "--stock-mismatch",
        default=None,
        metavar="CLINIC",
        help="CLINIC checks in fewer doses than were issued: a stock-reconciliation flag (implies --stock)",
    )
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = _RELATIVE_OR_NEGATIVE


def parse_start(text: str, now: float) -> float:
    """``now``, ``-24h`` (before now) or ISO 8601 with a time zone; whole seconds."""
    start = _parse_start(text, now)
    if start < now - MAX_AGE_S:
        raise SimulateError(
            f"--start {text} is more than {MAX_AGE_S / 86400:.0f} days ago: the collector refuses readings "
            "that old (it takes them for a gateway whose clock was never set)"
        )
    return start


def _parse_start(text: str, now: float) -> float:
    value = text.strip()
    if value == "now":
        return float(math.floor(now))
    if value.startswith("-"):
        try:
            return float(math.floor(now - parse_duration(value[1:])))
        except ValueError:
            raise SimulateError(f"--start {text}: after '-' comes a duration such as 24h or 90m") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SimulateError(
            f"--start {text}: not a time; use ISO 8601 UTC (2026-11-20T00:00:00Z), 'now' or -24h"
        ) from None
    if parsed.tzinfo is None:
        raise SimulateError(f"--start {text}: add a time zone, e.g. {value}Z for UTC")
    start = float(math.floor(parsed.timestamp()))
    if start > now + FUTURE_START_TOLERANCE_S:
        raise SimulateError(
            f"--start {text} is in the future; readings are never published ahead of the clock (use 'now')"
        )
    return start


def _registry_path(args: argparse.Namespace, settings: Settings) -> Path:
    if getattr(args, "registry", None):
        return Path(args.registry)
    return settings.registry_file or DEMO_REGISTRY


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked simulation request: what to simulate, from when, for how long."""

    district: District
    events: tuple[ResolvedEvent, ...]
    start: float
    duration: float | None
    speed: float
    seed: int
    scenario_name: str | None
    waste: WasteSites | None = None  # --waste: who scans the waste
    waste_jsonl: Path | None = None
    stock: StockSites | None = None  # --stock: whose vaccine stock is simulated
    stock_mismatch: str | None = None

    @property
    def telemetry_events(self) -> tuple[ResolvedEvent, ...]:
        return tuple(e for e in self.events if not e.waste)

    def waste_flow(self, on_publish: Callable[[WasteMessage], None] | None = None) -> WasteFlow | None:
        """The waste flow of this plan (None without --waste); ``ScenarioError`` for an anomaly that
        does not fit the registry."""
        if self.waste is None:
            return None
        end = None if self.duration is None else self.start + self.duration
        return WasteFlow(
            self.waste, seed=self.seed, start=self.start, end=end, events=self.events, on_publish=on_publish
        )


def plan_simulation(args: argparse.Namespace, settings: Settings, now: float) -> Plan:
    """Check the arguments, registry and scenario (before connecting); raises ``SimulateError``."""
    if args.speed < 0 or not math.isfinite(args.speed):
        raise SimulateError(f"--speed {args.speed}: use 0 (as fast as possible) or a positive factor")
    duration = None
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as exc:
            raise SimulateError(f"--duration: {exc}") from None
    start = parse_start(args.start, now)

    path = _registry_path(args, settings)
    if not path.is_file():
        raise SimulateError(f"registry file {path} not found (--registry or CHAINWATCH_REGISTRY_FILE)")
    try:
        registry = load_registry_file(path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SimulateError(f"{path}:{where}: {first['msg']}") from None
    except (OSError, ValueError) as exc:
        raise SimulateError(f"{path}: {str(exc).splitlines()[0]}") from None
    try:
        district = build_district(registry, args.clinics)
    except ValueError as exc:
        raise SimulateError(str(exc)) from None

    events: list[ResolvedEvent] = []
    scenario_name = None
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario)
            events = resolve_events(scenario, list(district.sites), start, district.registry_clinics)
        except ScenarioError as exc:
            raise SimulateError(str(exc)) from None
        scenario_name = scenario.name
    jsonl = getattr(args, "waste_jsonl", None)
    waste: WasteSites | None = None
    if getattr(args, "waste", False) or jsonl:
        try:
            waste = build_sites(registry, district.clinics)
        except ValueError as exc:
            raise SimulateError(str(exc)) from None
    else:
        anomaly = next((e for e in events if e.waste), None)
        if anomaly is not None:
            raise SimulateError(f"{anomaly.where}: {anomaly.kind} is a waste anomaly: add --waste")
    mismatch = getattr(args, "stock_mismatch", None)
    stock: StockSites | None = None
    if getattr(args, "stock", False) or mismatch:
        try:
            stock = build_stock_sites(registry, district.clinics)
        except ValueError as exc:
            raise SimulateError(str(exc)) from None
        if mismatch and mismatch not in {c.clinic for c in stock.clinics}:
            raise SimulateError(f"--stock-mismatch {mismatch}: not a simulated clinic with a refrigerator")
    plan = Plan(
        district,
        tuple(events),
        start,
        duration,
        args.speed,
        args.seed,
        scenario_name,
        waste,
        Path(jsonl) if jsonl else None,
        stock,
        mismatch,
    )
    try:
        plan.waste_flow()  # checks the waste anomalies against the registry
    except ScenarioError as exc:
        raise SimulateError(str(exc)) from None
    return plan


class ProgressPrinter:
    """Progress on stderr: every ``every_s`` while messages flow, once a minute while waiting."""

    def __init__(self, every_s: float = 5.0, quiet_s: float = 60.0) -> None:
        self.every_s = every_s
        self.quiet_s = quiet_s
        self._last_wall = -math.inf
        self._last_messages = -1

    def __call__(self, p: Progress) -> None:
        since = p.wall_elapsed_s - self._last_wall
        if p.messages == self._last_messages and since < self.quiet_s:
            return
        self._last_wall = p.wall_elapsed_s
        self._last_messages = p.messages
        local = datetime.fromtimestamp(p.sim_time, LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        rate = p.messages / p.wall_elapsed_s if p.wall_elapsed_s > 0 else 0.0
        pace = p.sim_elapsed_s / p.wall_elapsed_s if p.wall_elapsed_s > 0 else 0.0
        print(
            f"[simulate] simulated up to {iso_utc(p.sim_time)} (clinic local {local}): "
            f"{p.messages} messages, {rate:.0f} msg/s, {pace:.1f}x real time",
            file=sys.stderr,
            flush=True,
        )


def simulate_main(args: argparse.Namespace, settings: Settings) -> int:
    clock = SystemClock()
    plan = plan_simulation(args, settings, clock.now())
    jsonl: TextIO | None = None
    if plan.waste_jsonl is not None:
        try:
            jsonl = plan.waste_jsonl.open("w", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise SimulateError(
                f"--waste-jsonl {plan.waste_jsonl}: cannot write it ({exc.strerror})"
            ) from None

    def _write(message: WasteMessage) -> None:
        assert jsonl is not None
        for line in jsonl_lines(message):
            jsonl.write(line + "\n")

    waste = plan.waste_flow(_write if jsonl is not None else None)
    stock = _stock_flow(plan, settings)
    side = SideStreams(*(f for f in (waste, stock) if f is not None)) if stock is not None else waste
    devices = plan.district.device_refs() + (plan.waste.device_refs() if plan.waste is not None else [])
    publisher = MqttPublisher(
        settings.mqtt_host, settings.mqtt_port, clock=clock, passwords=_device_passwords(settings)
    )
    try:
        publisher.connect(devices)
    except PublishError as exc:
        if jsonl is not None:
            jsonl.close()
        raise SimulateError(str(exc)) from None

    stop = threading.Event()
    sim = Simulation(
        plan.district,
        seed=plan.seed,
        start=plan.start,
        duration=plan.duration,
        speed=plan.speed,
        events=plan.telemetry_events,
        sink=publisher,
        clock=clock,
        sleep=stop.wait,
        stop=stop,
        progress=ProgressPrinter(),
        scenario_name=plan.scenario_name,
        waste=side,
    )
    previous: dict[int, Any] = {}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()  # stop cleanly: flush, say offline, print the result
        signal.signal(signum, previous.get(signum, signal.SIG_DFL))  # a second signal: no waiting

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    failure: str | None = None
    try:
        result = sim.run()
        try:
            publisher.flush(timeout=FLUSH_TIMEOUT_S)
        except PublishError as exc:
            failure = str(exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        publisher.close()
        if jsonl is not None:
            jsonl.close()
    print(_with_stock(result.to_json(), stock, waste is not None), flush=True)
    if failure:
        raise SimulateError(f"{failure}; the counts above include them")
    return 0


def _stock_flow(plan: Plan, settings: Settings) -> StockFlow | None:
    """--stock: the stock flow, recording into the settings' SQL database (None without --stock)."""
    if plan.stock is None:
        return None
    from core.db import make_engine

    end = None if plan.duration is None else plan.start + plan.duration

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return StockFlow(
        plan.stock,
        make_engine(settings.sql_url),
        seed=plan.seed,
        start=plan.start,
        end=end,
        mismatch=plan.stock_mismatch,
        progress=progress,
    )


def _with_stock(result: str, stock: StockFlow | None, waste: bool) -> str:
    """The result's JSON with the stock summary under ``stock`` (and no ``waste`` without --waste)."""
    if stock is None:
        return result
    import json

    doc = json.loads(result)
    if not waste:
        doc.pop("waste", None)
    end = datetime.fromisoformat(doc["end"].replace("Z", "+00:00")).timestamp()
    doc["stock"] = stock.summary(end)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _device_passwords(settings: Settings) -> dict[str, str]:
    """The gateways' broker passwords from ``mqtt_device_passwords_file`` (none set: {})."""
    path = settings.mqtt_device_passwords_file
    if path is None:
        return {}
    from core.mosquitto_auth import read_device_csv

    try:
        passwords = read_device_csv(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SimulateError(f"CHAINWATCH_MQTT_DEVICE_PASSWORDS_FILE {path}: cannot read it ({exc})") from None
    if not passwords:
        raise SimulateError(
            f"CHAINWATCH_MQTT_DEVICE_PASSWORDS_FILE {path}: no device passwords in it "
            "(expected the site,device,password CSV of `chainwatch deploy mosquitto-auth`)"
        )
    return passwords
