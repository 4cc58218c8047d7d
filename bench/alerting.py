"""``python -m bench.alerting``: the alerting benchmark (part of ``make bench``).

Two measurements, as the performance issue asks:

1. **Rule tick** (in this process, no servers): an ``Engine`` over 100,000 pieces of equipment (33,334
   gateways with 3 probes each, 9 pieces of equipment per clinic, the refrigerator profile). Every gateway
   reports once, then ``engine.tick(now)`` is timed 30 times with ``now`` advancing 60 s while every
   gateway keeps reporting (the steady state: no decisions); then one tick after every gateway went silent
   (one offline decision per clinic: the worst case), and one more while they stay silent. Also the
   engine's build time, and ``CheckMachine.evaluate`` for 100,000 machines with no checks recorded (the
   service's tick runs it as well when check reminders are on): the first call (which catches up on
   yesterday and today) and the next minute's.
2. **Alert latency**: on the ingest benchmark's own servers and registry (``bench.run.Bench``: Mosquitto
   on 18930, InfluxDB on 18186, files in ``.chainwatch/bench``, 1,000 gateways with probes p1..p10 in
   SQLite), a collector and ``chainwatch alerting`` run as child processes, the alerting service with a
   fresh client id and check reminders off. A client of the bench publishes *trigger* messages at a steady
   pace: one reading of exactly 85.0 °C (a DS18B20 error code: ``probe_fault`` fires at once) for a
   different (gateway, probe) each, reading time = now. Latency = ``recorded_at`` of the alert's ``fired``
   event (the service's clock when it stored the change) minus the wall time just before the publish.
   Once with no other traffic; once while 3 paced publishers offer the ingest benchmark's live load
   (6,000 messages/s of 1 reading at 4.0-7.9 °C for 30 s), which the alerting service receives too.

The load comes from ``bench.loadgen`` with ``forward=True``: each device's readings go forward in time
(base time + k for its k-th message), as a gateway sends them. The ingest benchmark sends them back in
time (base time - k), which only needs distinct points; for the rule engine that would make every
message an out-of-order sample and a replay of its series, a case production does not look like.

Results: ``bench/results/alerting-<UTC timestamp>.json`` and a summary table on stdout; progress on
stderr. Exit status: 0 when everything ran and every trigger raised its alert (targets missed are
reported, not fatal), 1 on an error, 2 when a trigger raised no alert.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bench import loadgen
from bench.loadgen import PublishError, make_jobs, run_publishers
from bench.run import (
    ROOT,
    Bench,
    BenchError,
    CollectorProcess,
    _errors,
    _find_pyspy,
    _frame,
    _git,
    _n,
    _on_sigterm,
    _publish_summary,
    _rate,
    add_common_options,
    bench_registry,
    machine_info,
    parse_common,
    say,
    summarize_collapsed,
    write_results,
)
from bench.run import parse_args as ingest_args
from core.db import make_engine

TARGET_TICK_MS = 100.0
TARGET_P99_S = 1.0
PROBES_PER_GATEWAY = 3  # the tick bench's synthetic district
EQUIPMENT_PER_CLINIC = 9
LOAD_PROBE = "p1"  # the probe bench.loadgen's 1-reading messages carry; triggers use the others
TRIGGER_CELSIUS = 85.0  # DS18B20 power-on value: a probe fault at once
# the tick bench's clock: 2026-11-26 07:00 UTC = 15:00 in the clinics (+8 h), after the morning check
# reminder (10:00) and its slot's end (12:00), before the afternoon one (16:00): a fixed time makes the
# check decisions the same every run
TICK_T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC).timestamp()
PHASES = ("tick", "latency")


@dataclass(frozen=True)
class Sizes:
    equipment: int  # rule tick: pieces of equipment (and CheckMachines)
    ticks: int  # timed steady-state ticks
    idle_triggers: int  # latency with no load: trigger messages
    idle_rate: float  # triggers/s
    load_rate: float  # latency under load: messages/s offered by the paced publishers
    load_seconds: float
    load_triggers: int  # spread evenly over the load


FULL = Sizes(100_000, 30, 300, 20.0, 6_000.0, 30.0, 300)
QUICK = Sizes(20_000, 10, 50, 20.0, 3_000.0, 10.0, 50)


# ---------------------------------------------------------------------------------------- rule tick


class GcWatch:
    """Time the cyclic garbage collector takes while ``active`` (a full collection of a heap holding
    100,000 rule machines takes hundreds of ms, and can land in any tick)."""

    def __init__(self) -> None:
        self.active = False
        self.ms = 0.0
        self.full = 0  # generation-2 collections
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._t = time.perf_counter()
            return
        self.ms += (time.perf_counter() - self._t) * 1000
        self.full += info.get("generation") == 2

    def reset(self) -> None:
        self.ms, self.full = 0.0, 0


def _pcts(values_ms: Sequence[float], qs: Sequence[int] = (50, 95)) -> dict[str, float]:
    arr = np.asarray(values_ms, dtype=float)
    out = {f"p{q}_ms": round(float(np.percentile(arr, q)), 2) for q in qs}
    out["max_ms"] = round(float(arr.max()), 2)
    return out


def tick_bench(sz: Sizes) -> dict[str, Any]:
    from alerting.rules.checks import CheckMachine
    from alerting.rules.engine import Engine, EquipmentRef
    from core.profiles import profile_settings

    n = sz.equipment
    settings = profile_settings("refrigerator")

    def gateway(i: int) -> str:
        return f"gw-{i // PROBES_PER_GATEWAY + 1:05d}"

    say(f"rule tick: an engine over {n:,} pieces of equipment, {PROBES_PER_GATEWAY} probes a gateway")
    t0 = time.perf_counter()
    refs = [
        EquipmentRef(
            f"{gateway(i)}-f{i % PROBES_PER_GATEWAY + 1}",
            f"c{i // EQUIPMENT_PER_CLINIC + 1:05d}",
            gateway(i),
            f"p{i % PROBES_PER_GATEWAY + 1}",
            settings,
        )
        for i in range(n)
    ]
    t1 = time.perf_counter()
    engine = Engine(refs)
    build_s = time.perf_counter() - t1
    devices = list(engine.gateways)
    clinics = len({r.clinic for r in refs})
    say(f"rule tick: engine built in {build_s:.1f} s ({len(devices):,} gateways, {clinics:,} clinics)")

    watch = GcWatch()
    gc.callbacks.append(watch)

    def timed(call: Any, *args: Any) -> tuple[Any, float, float]:
        """(result, ms, ms of it in the garbage collector)"""
        watch.reset()
        watch.active = True
        start = time.perf_counter()
        try:
            result = call(*args)
        finally:
            ms = (time.perf_counter() - start) * 1000
            watch.active = False
        return result, ms, watch.ms

    try:
        now = TICK_T0
        for d in devices:
            engine.seen(d, now, now)
        steady: list[float] = []
        steady_gc: list[float] = []
        full_gcs = decisions = 0
        seen_s = 0.0
        say(f"rule tick: {sz.ticks} ticks, the clock 60 s further each, every gateway reporting in between")
        for _ in range(sz.ticks):
            now += 60.0
            start = time.perf_counter()
            for d in devices:
                engine.seen(d, now, now)
            seen_s += time.perf_counter() - start
            out, ms, gc_ms = timed(engine.tick, now)
            steady.append(ms)
            steady_gc.append(gc_ms)
            full_gcs += watch.full
            decisions += len(out)

        silent_at = now + 20 * 60.0  # past every gateway's offline limit (15 min), no message since `now`
        fired, silent_ms, silent_gc = timed(engine.tick, silent_at)
        again, again_ms, _ = timed(engine.tick, silent_at + 60.0)
        kinds = Counter("clinic" if d.subject == d.clinic else "gateway" for d in fired)
        say(
            f"rule tick: steady p50 {np.percentile(steady, 50):.1f} ms, max {max(steady):.1f} ms; "
            f"every gateway silent {silent_ms:.1f} ms ({len(fired):,} decisions)"
        )

        say(f"rule tick: CheckMachine.evaluate for {n:,} machines, no checks recorded")
        machines = [CheckMachine(r.id, clinic=r.clinic) for r in refs]

        def evaluate_all(at: float) -> int:
            return sum(len(m.evaluate(at, [])) for m in machines)

        first, first_ms, first_gc = timed(evaluate_all, TICK_T0)
        following, next_ms, next_gc = timed(evaluate_all, TICK_T0 + 60.0)
    finally:
        watch.active = False
        gc.callbacks.remove(watch)
    machines.clear()
    del engine, refs
    gc.collect()
    say(
        f"rule tick: checks, first call {first_ms:,.0f} ms ({first:,} decisions), "
        f"next minute {next_ms:.0f} ms"
    )
    return {
        "equipment": n,
        "gateways": len(devices),
        "clinics": clinics,
        "probes_per_gateway": PROBES_PER_GATEWAY,
        "equipment_per_clinic": EQUIPMENT_PER_CLINIC,
        "clock_start": TICK_T0,
        "refs_s": round(t1 - t0, 2),
        "build_s": round(build_s, 2),
        "steady": {
            "ticks": len(steady),
            **_pcts(steady),
            "max_without_gc_ms": round(max(t - g for t, g in zip(steady, steady_gc, strict=True)), 2),
            "gc_full_collections": full_gcs,
            "gc_ms_max": round(max(steady_gc), 2),
            "decisions": decisions,
            "ticks_ms": [round(x, 2) for x in steady],
            "seen_all_gateways_ms": round(seen_s * 1000 / len(steady), 2),
        },
        "all_silent": {
            "ms": round(silent_ms, 2),
            "gc_ms": round(silent_gc, 2),
            "decisions": len(fired),
            "clinic_alerts": kinds["clinic"],
            "gateway_alerts": kinds["gateway"],
            "next_tick_ms": round(again_ms, 2),
            "next_tick_decisions": len(again),
        },
        "checks": {
            "machines": n,
            "first_ms": round(first_ms, 2),
            "first_gc_ms": round(first_gc, 2),
            "first_decisions": first,
            "next_minute_ms": round(next_ms, 2),
            "next_minute_gc_ms": round(next_gc, 2),
            "next_minute_decisions": following,
        },
    }


# ---------------------------------------------------------------------------------------- processes


class AlertingProcess(CollectorProcess):
    """``chainwatch alerting`` as a child process: ``bench.run``'s collector wrapper (environment, log,
    stats file, CPU and memory, stop and kill) with the alerting command, client id and stats file.
    With ``pyspy``, under ``py-spy record --gil`` writing ``profile_out``."""

    def __init__(self, bench: Bench, client_id: str, db: str, pyspy: str | None, profile_out: Path) -> None:
        super().__init__(bench, client_id, db)
        self.pyspy = pyspy
        self.profile_out = profile_out

    @property
    def stats_path(self) -> Path:
        return self.data_dir / "alerting.json"

    def environ(self) -> dict[str, str]:
        env = super().environ()
        env["CHAINWATCH_ALERTING_CLIENT_ID"] = self.client_id
        env["CHAINWATCH_ALERTING_CHECKS"] = "false"  # no check reminders among the alerts measured
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "core.cli", "alerting"]
        if self.pyspy:
            argv = [self.pyspy, "record", "--gil", "--format", "raw", "--rate", "100",
                    "--output", str(self.profile_out), "--", *argv]  # fmt: skip
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                argv, env=self.environ(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()
        self.proc = psutil.Process(self.popen.pid)
        if self.pyspy:
            self.proc = self._child_python()

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(
                f"chainwatch alerting ({self.client_id}) exited (status {self.popen.returncode}): "
                f"{self.last_log_line()} (log: {self.log})"
            )

    def wait_connected(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().get("connected"):
                return
            time.sleep(0.1)
        raise BenchError(
            f"chainwatch alerting ({self.client_id}) did not subscribe at {self.bench.settings.mqtt_url} "
            f"in {timeout:.0f} s: {self.last_log_line()} (log: {self.log})"
        )


# ---------------------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Target:
    clinic: str
    device: str
    probe: str
    equipment: str


@dataclass(frozen=True)
class Sent:
    target: Target
    published: float  # wall clock just before the publish


def trigger_targets(clinics: int) -> list[Target]:
    """Every piece of equipment of the bench registry on a probe the load does not use, ordered so that
    consecutive ones are on different gateways (p2 of every gateway, then p3, ...)."""
    reg = bench_registry(clinics)
    rows = [
        Target(c.id, e.device, e.probe, e.id)
        for c in reg.clinics()
        for e in c.equipment
        if e.probe != LOAD_PROBE
    ]
    return sorted(rows, key=lambda t: (int(t.probe.removeprefix("p")), t.device))


def trigger_payload(target: Target, t: float) -> bytes:
    return (
        f'[{{"bn":"urn:dev:{target.device}:","bt":{t:.3f},"n":"{target.probe}","u":"Cel",'
        f'"v":{TRIGGER_CELSIUS}}}]'
    ).encode()


class TriggerClient:
    """The bench's own paho client (QoS 1) for the trigger readings, apart from the load's publishers."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311
        )
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        try:
            self.client.connect(host, port, keepalive=60)
        except OSError as exc:
            raise BenchError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
        self.client.loop_start()
        if not connected.wait(15):
            self.close()
            raise BenchError(f"the MQTT broker at {host}:{port} did not accept the trigger client")

    def run(
        self, targets: Sequence[Target], rate: float, start_at: float, stop: threading.Event
    ) -> list[Sent]:
        """Publish one trigger per target, ``rate`` a second from ``start_at`` (wall clock); wait for
        every PUBACK."""
        sent: list[Sent] = []
        infos: list[mqtt.MQTTMessageInfo] = []
        for i, target in enumerate(targets):
            ahead = start_at + i / rate - time.time()
            if ahead > 0 and stop.wait(ahead):
                break
            topic = loadgen.topic(target.clinic, target.device)
            body = trigger_payload(target, time.time())  # the reading time: now
            published = time.time()
            info = self.client.publish(topic, body, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BenchError(f"paho refused a trigger publish: {mqtt.error_string(info.rc)}")
            sent.append(Sent(target, published))
            infos.append(info)
        for info in infos:
            info.wait_for_publish(30)
            if not info.is_published():
                raise BenchError("the MQTT broker did not acknowledge a trigger message in 30 s")
        return sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------------------------- the alert store


def fired_at(sql: SqlEngine, equipment: Sequence[str]) -> dict[str, float]:
    """When the alert store recorded the first ``fired`` event of each of ``equipment`` (its
    ``recorded_at``: the service's clock)."""
    from alerting.store import AlertEventRow, AlertRow, EventKind

    q = (
        select(AlertRow.subject, func.min(AlertEventRow.recorded_at))
        .join(AlertRow, AlertEventRow.alert_id == AlertRow.id)
        .where(AlertEventRow.kind == EventKind.fired.value, AlertRow.subject.in_(list(equipment)))
        .group_by(AlertRow.subject)
    )
    try:
        with Session(sql) as s:
            return {subject: float(t) for subject, t in s.execute(q)}
    except OperationalError:  # no alert table yet, or busy: the next poll
        return {}


def other_alerts(sql: SqlEngine, equipment: Sequence[str]) -> dict[str, int]:
    """Alerts on anything but ``equipment``, by rule (the load should raise none)."""
    from alerting.store import AlertRow

    q = select(AlertRow.rule, func.count()).where(AlertRow.subject.not_in(list(equipment)))
    with Session(sql) as s:
        return {rule: int(n) for rule, n in s.execute(q.group_by(AlertRow.rule))}


def latency_stats(sent: Sequence[Sent], got: dict[str, float]) -> dict[str, Any]:
    lat = [(got[s.target.equipment] - s.published) * 1000 for s in sent if s.target.equipment in got]
    out: dict[str, Any] = {"triggers": len(sent), "alerted": len(lat), "no_alert": len(sent) - len(lat)}
    if lat:
        arr = np.asarray(lat)
        out.update({f"p{q}_ms": round(float(np.percentile(arr, q)), 1) for q in (50, 90, 99)})
        out.update({"min_ms": round(float(arr.min()), 1), "max_ms": round(float(arr.max()), 1)})
        out["mean_ms"] = round(float(arr.mean()), 1)
    out["latencies_ms"] = [round(x, 1) for x in lat]  # in publish order
    return out


# ---------------------------------------------------------------------------------------- latency


class Latency:
    """The latency cases on the ingest benchmark's servers, registry and clean-up (``bench.run.Bench``)."""

    def __init__(self, bench: Bench, args: argparse.Namespace, sizes: Sizes) -> None:
        self.bench = bench
        self.args = args
        self.sizes = sizes
        self.sql: SqlEngine | None = None
        self.collector: CollectorProcess | None = None
        self.alerting: AlertingProcess | None = None
        self.targets = trigger_targets(args.clinics)
        self.next_target = 0
        self.published = 0  # telemetry messages the bench has had acknowledged by the broker so far
        self.profile_out = bench.log_dir / "profile-alerting.pyspy.txt"

    def take_targets(self, n: int) -> list[Target]:
        if self.next_target + n > len(self.targets):
            raise BenchError(
                f"the registry has only {len(self.targets):,} probes for triggers; use --clinics"
            )
        out = self.targets[self.next_target : self.next_target + n]
        self.next_target += n
        return out

    def start(self) -> None:
        b = self.bench
        db = b.fresh_db("alerting")
        cid = f"chainwatch-collector-bench-alerting-{b.tag}"
        aid = f"chainwatch-alerting-bench-{b.tag}"
        b.sessions.add(cid)
        b.sessions.add(aid)
        self.collector = CollectorProcess(b, cid, db)
        pyspy = _find_pyspy() if self.args.profile else None
        if self.args.profile and not pyspy:
            raise BenchError("--profile needs py-spy: install it with .venv/bin/python -m pip install "
                             "--target /tmp/pyspy py-spy, or set BENCH_PYSPY")  # fmt: skip
        self.alerting = AlertingProcess(b, aid, db, pyspy, self.profile_out)
        say("latency: starting a collector and chainwatch alerting" + (" under py-spy" if pyspy else ""))
        for p in (self.collector, self.alerting):
            p.start()
            b.running.append(p)
        self.collector.wait_connected()
        self.alerting.wait_connected()
        time.sleep(1.0)  # the collector's subscription is acknowledged right after it connects
        self.sql = make_engine(b.settings.sql_url)

    def received(self) -> int:
        assert self.alerting is not None
        return int(self.alerting.stats().get("received", 0))

    def wait_alerts(self, label: str, sent: Sequence[Sent], timeout: float) -> tuple[dict[str, float], float]:
        """Poll the alert store until every trigger has its fired event and the alerting service has
        received every message published so far (or ``timeout``). Returns the fired times, and when the
        service had received everything (wall clock, up to ~1 s late: its stats file is written every
        second; 0 if it had not)."""
        assert self.sql is not None and self.alerting is not None and self.collector is not None
        want = [s.target.equipment for s in sent]
        t0 = time.monotonic()
        next_say = t0 + 5.0
        caught_up = 0.0
        got: dict[str, float] = {}
        while True:
            self.collector.check_alive()
            received = self.received()
            if not caught_up and received >= self.published:
                caught_up = time.time()
            if len(got) < len(want):
                got = fired_at(self.sql, want)
            if (len(got) >= len(want) and caught_up) or time.monotonic() - t0 > timeout:
                break
            if time.monotonic() >= next_say:
                next_say += 5.0
                say(
                    f"{label}: {len(got):,} of {len(want):,} alerts stored; the alerting service has "
                    f"received {received:,} of {self.published:,} messages"
                )
            time.sleep(0.25)
        if len(got) < len(want):
            say(f"{label}: {len(want) - len(got):,} trigger(s) without an alert after {timeout:.0f} s")
        if not caught_up:
            say(f"{label}: the alerting service had not received every message after {timeout:.0f} s")
        return got, caught_up

    def idle(self) -> dict[str, Any]:
        sz = self.sizes
        label = "latency, no load"
        targets = self.take_targets(sz.idle_triggers)
        b = self.bench
        client = TriggerClient(b.settings.mqtt_host, b.settings.mqtt_port, f"bench-trigger-idle-{b.tag}")
        say(f"{label}: {len(targets)} trigger readings of {TRIGGER_CELSIUS} °C at {sz.idle_rate:g}/s")
        try:
            sent = client.run(targets, sz.idle_rate, time.time() + 0.5, threading.Event())
        finally:
            client.close()
        self.published += len(sent)
        got, _ = self.wait_alerts(label, sent, self.args.wait)
        res = {"label": label, "trigger_rate": sz.idle_rate, **latency_stats(sent, got)}
        say(f"{label}: p50 {_n(res.get('p50_ms'))} ms, p99 {_n(res.get('p99_ms'))} ms, "
            f"no alert {res['no_alert']}")  # fmt: skip
        return res

    def load(self) -> dict[str, Any]:
        sz = self.sizes
        b = self.bench
        assert self.alerting is not None and self.collector is not None
        rate, duration = sz.load_rate, sz.load_seconds
        label = f"latency, {rate:,.0f} msgs/s load"
        messages = int(rate * duration)
        targets = self.take_targets(sz.load_triggers)
        start_at = time.time() + 3.0  # the publisher processes start meanwhile
        jobs = make_jobs(
            b.devices,
            messages,
            1,
            host=b.settings.mqtt_host,
            port=b.settings.mqtt_port,
            name=f"bench-alerting-{b.tag}",
            base_time=b.base_time,
            processes=self.args.publishers,
            rate=rate,
            start_at=start_at,
            # each device's readings forward in time, as a gateway sends them: readings sent backwards
            # would each be a late reading for the rule engine, a replay of that probe's history
            forward=True,
        )
        trigger_rate = len(targets) / max(duration - 1.0, 1.0)
        client = TriggerClient(b.settings.mqtt_host, b.settings.mqtt_port, f"bench-trigger-load-{b.tag}")
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def triggers() -> None:
            try:
                outcome["sent"] = client.run(targets, trigger_rate, start_at + 0.5, stop)
            except BaseException as exc:  # reported by the main thread
                outcome["error"] = exc

        # (wall clock, alerting received, collector messages, alerting CPU s)
        samples: list[tuple[float, int, int, float]] = []

        def tick() -> None:
            assert self.alerting is not None and self.collector is not None
            samples.append(
                (
                    time.time(),
                    self.received(),
                    int(self.collector.stats().get("messages", 0)),
                    self.alerting.cpu_s(),
                )
            )

        say(
            f"{label}: {len(jobs)} paced publishers offer {rate:,.0f} msgs/s of 1 reading for "
            f"{duration:.0f} s; {len(targets)} trigger readings at {trigger_rate:.1f}/s meanwhile"
        )
        received0 = self.received()
        thread = threading.Thread(target=triggers, name="triggers", daemon=True)
        thread.start()
        try:
            pubs = run_publishers(jobs, tick=tick, progress=lambda m: say(f"{label}: {m}"))
        except PublishError as exc:
            stop.set()
            raise BenchError(f"{label}: {exc}") from None
        except BaseException:
            stop.set()
            raise
        finally:
            thread.join(60)
            client.close()
        if "error" in outcome:
            err = outcome["error"]
            raise err if isinstance(err, BenchError) else BenchError(f"{label}: trigger client: {err}")
        sent: list[Sent] = outcome["sent"]
        load_sent = sum(p.acked for p in pubs)
        self.published += load_sent + len(sent)
        pub_start = min(p.started for p in pubs)
        pub_end = max(p.started + p.total_s for p in pubs)
        tick()
        say(f"{label}: publishers done ({load_sent:,} messages); waiting for every trigger's alert")
        got, caught_up = self.wait_alerts(label, sent, self.args.wait)
        window = [s for s in samples if pub_start + 1.0 <= s[0] <= pub_end]
        alerting_rate = collector_rate = cores = None
        if len(window) >= 2 and window[-1][0] - window[0][0] >= 2.0:
            dt = window[-1][0] - window[0][0]
            alerting_rate = _rate(window[-1][1] - window[0][1], dt)
            collector_rate = _rate(window[-1][2] - window[0][2], dt)
            cores = round((window[-1][3] - window[0][3]) / dt, 2)
        received_end = max((s[1] for s in samples if s[0] <= pub_end + 0.5), default=received0)
        behind = self.published - received_end
        drain_rate = _rate(behind, caught_up - pub_end) if caught_up and behind > 0 else None
        res = {
            "label": label,
            "offered_msgs_per_s": rate,
            "seconds": duration,
            "messages": load_sent,
            "published_msgs_per_s": _rate(load_sent, pub_end - pub_start),
            "trigger_rate": round(trigger_rate, 2),
            **latency_stats(sent, got),
            "alerting_msgs_per_s": alerting_rate,
            "alerting_cpu_cores": cores,
            "collector_msgs_per_s": collector_rate,
            "alerting_backlog_at_publish_end": behind,
            "alerting_caught_up_s": round(caught_up - pub_end, 1) if caught_up else None,
            "alerting_drain_msgs_per_s": drain_rate,  # its backlog after the publishers stopped
            "publish": _publish_summary(pubs),
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        say(
            f"{label}: p50 {_n(res.get('p50_ms'))} ms, p99 {_n(res.get('p99_ms'))} ms, no alert "
            f"{res['no_alert']}; the alerting service took {_n(alerting_rate)} msgs/s, "
            f"{res['alerting_backlog_at_publish_end']:,} behind at the end"
        )
        return res

    def finish(self) -> dict[str, Any]:
        """Stop both processes; what they used, the service's counters, and alerts the load raised."""
        b = self.bench
        assert self.alerting is not None and self.collector is not None and self.sql is not None
        out: dict[str, Any] = {}
        stats = self.alerting.stats()
        used = {}
        for name, p in (("alerting", self.alerting), ("collector", self.collector)):
            use = p.stop()
            b.running.remove(p)
            used[name] = {
                "cpu_s": use.cpu_s,
                "peak_rss_mb": use.peak_rss_mb,
                "threads_cpu_s": use.threads_cpu_s,
            }
        out["processes"] = used
        out["alerting_stats"] = {k: stats.get(k) for k in ("received", "decisions", "changes", "ticks",
                                                           "parse_errors", "rebuild_seconds")}  # fmt: skip
        triggered = [t.equipment for t in self.targets[: self.next_target]]
        out["other_alerts"] = other_alerts(self.sql, triggered)
        self.sql.dispose()
        if self.args.profile:
            out["profile"] = summarize_alerting(self.profile_out)
            out["profile_file"] = str(self.profile_out)
        return out


# ---------------------------------------------------------------------------------------- profile

# Stages of the alerting service's work, recognised by a frame (bare function name, file name ending); a
# sample belongs to the stage of its innermost matching frame (as bench.run does for the collector).
_STAGES = (
    ("flush", "rules/engine.py", "Engine.flush: every series checked for out-of-order samples, per message"),
    ("seen", "rules/engine.py", "Engine.seen (device offline bookkeeping)"),
    ("temperature", "rules/engine.py", "Engine.temperature: the rule machines"),
    ("parse_telemetry", "core/protocol.py", "protocol v1 + SenML parsing (parse_telemetry)"),
    ("parse_topic", "core/protocol.py", "topic parsing"),
    ("handle", "alerting/service.py", "decisions -> SQL alert store, InfluxDB, MQTT (handle)"),
    ("tick", "alerting/service.py", "tick (device offline)"),
    ("_write_stats", "alerting/service.py", "stats file"),
    ("_on_message", "alerting/service.py", "on_message: the rest (lock, acknowledgement)"),
    ("_thread_main", "paho/mqtt/client.py", "paho: MQTT packets, v5 properties, socket (outside on_message)"),
)


def summarize_alerting(path: Path, top: int = 15) -> dict[str, Any]:
    """py-spy's collapsed stacks of the alerting service: stages (above), plus bench.run's tables of
    functions by own time and including callees (start-up in the main thread left out)."""
    base = summarize_collapsed(path, top)
    if "error" in base:
        return base
    stages: Counter[str] = Counter()
    work = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if "<module>" in {f[1] for f in frames}:
            continue  # the main thread: start-up
        n = int(count_text)
        work += n
        stage = "other"
        for _key, name, file in reversed(frames):
            found = next(
                (s for marker, suffix, s in _STAGES if name == marker and file.endswith(suffix)), None
            )
            if found:
                stage = found
                break
        stages[stage] += n
    rows = [
        {"function": s, "samples": v, "pct": round(100 * v / max(work, 1), 1)}
        for s, v in stages.most_common()
    ]
    return {**{k: base[k] for k in ("profiler", "samples", "startup_pct", "self", "total")}, "stages": rows}


# ---------------------------------------------------------------------------------------- report


def targets(results: dict[str, Any]) -> dict[str, Any]:
    tick = results.get("tick")
    load = results.get("latency", {}).get("load")
    cases = [c for c in results.get("latency", {}).values() if isinstance(c, dict) and "no_alert" in c]
    tick_value = max(tick["steady"]["p95_ms"], tick["all_silent"]["ms"]) if tick else None
    p99 = load.get("p99_ms") if load else None
    return {
        "tick_ms": {"target": TARGET_TICK_MS, "value": tick_value,
                    "met": None if tick_value is None else tick_value < TARGET_TICK_MS,
                    "judged_on": "steady p95 and the all-silent tick"},
        "p99_under_load_ms": {"target": TARGET_P99_S * 1000, "value": p99,
                              "met": None if load is None else (p99 is not None and p99 < TARGET_P99_S * 1000
                                                                and load["no_alert"] == 0)},
        "every_trigger_alerted": {"target": 0, "value": sum(c["no_alert"] for c in cases),
                                  "met": None if not cases else not any(c["no_alert"] for c in cases)},
    }  # fmt: skip


def summary(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        f"ChainWatch alerting benchmark {results['started_at']} - {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"Python {m['python']}, Mosquitto {m['mosquitto']}, InfluxDB {m['influxdb']}",
        f"machine busy {m['cpu_busy_pct_before']:.0f} % before the bench, load average {m['loadavg_before']} "
        f"-> {m.get('loadavg_after')}; code at {m.get('git_commit')}"
        + (" with local changes in alerting/ or core/" if m.get("git_changes_alerting") else ""),
    ]
    tick = results.get("tick")
    if tick:
        s, a, c = tick["steady"], tick["all_silent"], tick["checks"]
        out += [
            "",
            f"rule tick: {tick['equipment']:,} pieces of equipment, {tick['gateways']:,} gateways, "
            f"{tick['clinics']:,} clinics; engine built in {tick['build_s']:.1f} s",
        ]
        head = f"  {'case':<52} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'decisions':>10}"
        out += [head, "  " + "-" * (len(head) - 2)]
        label = f"Engine.tick, steady ({s['ticks']} ticks, all reporting)"
        out.append(
            f"  {label:<52} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} {s['max_ms']:>8.1f} {s['decisions']:>10,}"
        )
        if s["gc_full_collections"]:
            out.append(
                f"  {'':<52} max without the garbage collector {s['max_without_gc_ms']:.1f} ms "
                f"({s['gc_full_collections']} full collection(s), up to {s['gc_ms_max']:.0f} ms)"
            )
        out.append(f"  {'Engine.tick, every gateway silent (once)':<52} {'':>8} {'':>8} {a['ms']:>8.1f} "
                   f"{a['decisions']:>10,}")  # fmt: skip
        out.append(f"  {'Engine.tick, still silent (the next minute)':<52} {'':>8} {'':>8} "
                   f"{a['next_tick_ms']:>8.1f} {a['next_tick_decisions']:>10,}")  # fmt: skip
        label = f"CheckMachine.evaluate x {c['machines']:,}, first call"
        out.append(f"  {label:<52} {'':>8} {'':>8} {c['first_ms']:>8.0f} {c['first_decisions']:>10,}")
        label = f"CheckMachine.evaluate x {c['machines']:,}, next minute"
        out.append(f"  {label:<52} {'':>8} {'':>8} {c['next_minute_ms']:>8.1f} "
                   f"{c['next_minute_decisions']:>10,}")  # fmt: skip
    lat = results.get("latency")
    if lat:
        out += ["", f"alert latency: a {TRIGGER_CELSIUS} °C reading published -> its fired event stored"]
        head = (f"  {'case':<30} {'triggers':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                f"{'no alert':>8} {'alerting msgs/s':>15} {'behind at end':>13}")  # fmt: skip
        out += [head, "  " + "-" * (len(head) - 2)]
        for key in ("idle", "load"):
            c = lat.get(key)
            if not c:
                continue
            out.append(
                f"  {c['label']:<30} {c['triggers']:>8,} {_n(c.get('p50_ms'), 1):>8} "
                f"{_n(c.get('p90_ms'), 1):>8} {_n(c.get('p99_ms'), 1):>8} {_n(c.get('max_ms'), 1):>8} "
                f"{c['no_alert']:>8,} "
                f"{_n(c.get('alerting_msgs_per_s')):>15} {_n(c.get('alerting_backlog_at_publish_end')):>13}"
            )
        load = lat.get("load")
        if load:
            out.append(
                f"  load: offered {load['offered_msgs_per_s']:,.0f} msgs/s, publishers achieved "
                f"{load['published_msgs_per_s']:,.0f}, collector {_n(load['collector_msgs_per_s'])} msgs/s, "
                f"alerting service {_n(load['alerting_msgs_per_s'])} msgs/s on "
                f"{_n(load['alerting_cpu_cores'], 2)} cores; it had received everything "
                f"{_n(load['alerting_caught_up_s'], 1)} s after the publishers stopped "
                f"({_n(load['alerting_drain_msgs_per_s'])} msgs/s)"
            )
        if lat.get("other_alerts"):
            out.append(f"  alerts other than the triggers': {lat['other_alerts']}")
        prof = lat.get("profile")
        if prof and "stages" in prof:
            out += ["", f"where chainwatch alerting's time goes (py-spy --gil, {prof['samples']:,} samples, "
                        f"start-up {prof['startup_pct']:.0f} % left out):"]  # fmt: skip
            out += [f"  {r['pct']:5.1f} %  {r['function']}" for r in prof["stages"]]
            out.append("  top functions by own time:")
            out += [f"  {r['pct']:5.1f} %  {r['function']}" for r in prof["self"][:10]]
        elif prof:
            out.append(f"profile: {prof.get('error')}")
    t = results["targets"]

    def verdict(x: dict[str, Any], unit: str = "", digits: int = 1) -> str:
        if x["met"] is None:
            return "not run"
        return f"{'MET' if x['met'] else 'NOT MET'} ({_n(x['value'], digits)}{unit})"

    out.append("")
    if results["setup"].get("quick"):
        out.append("--quick: smaller sizes; judge the targets on a full run")
    if results["setup"].get("profile"):
        out.append("--profile: the alerting service ran under py-spy (about 10 % slower)")
    out.append(
        f"targets: tick < {TARGET_TICK_MS:.0f} ms: {verdict(t['tick_ms'], ' ms')}; "
        f"p99 under load < {TARGET_P99_S:g} s: {verdict(t['p99_under_load_ms'], ' ms')}; "
        f"every trigger alerted: {verdict(t['every_trigger_alerted'], ' without', 0)}"
    )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.alerting", description="ChainWatch alerting benchmark")
    p.add_argument("--quick", action="store_true", help="small sizes: to try the bench out")
    p.add_argument("--phases", default="", help=f"comma-separated subset of: {','.join(PHASES)}")
    p.add_argument("--profile", action="store_true", help="run chainwatch alerting under py-spy")
    p.add_argument("--load-rate", type=float, default=0.0, help="msgs/s offered under load (default 6,000)")
    p.add_argument("--load-seconds", type=float, default=0.0, help="seconds of load (default 30)")
    p.add_argument("--wait", type=float, default=150.0, help="seconds to wait for the alerts (default 150)")
    add_common_options(p)
    args = parse_common(p, argv)
    args.phase_set = set(args.phases.split(",")) if args.phases else set(PHASES)
    unknown = args.phase_set - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}: choose from {', '.join(PHASES)}")
    return args


def make_bench(args: argparse.Namespace) -> Bench:
    """bench.run's set-up and tear-down (servers, registry, sessions, databases) with our options."""
    argv = ["--clinics", str(args.clinics), "--publishers", str(args.publishers),
            "--mqtt-url", args.mqtt_url, "--influx-url", args.influx_url]  # fmt: skip
    argv += [
        flag for flag, on in (("--keep-services", args.keep_services), ("--keep-data", args.keep_data)) if on
    ]
    return Bench(ingest_args(argv))


def run(args: argparse.Namespace, phases: set[str], bench: Bench, results: dict[str, Any]) -> None:
    sizes = QUICK if args.quick else FULL
    changes = {"load_rate": args.load_rate, "load_seconds": args.load_seconds}
    sizes = Sizes(**{**asdict(sizes), **{k: v for k, v in changes.items() if v}})
    latency: Latency | None = None
    if "latency" in phases:
        bench.setup()  # also measures the machine (bench.run.machine_info)
        latency = Latency(bench, args, sizes)
    results["machine"] = bench.results.get("machine") or machine_info()
    results["machine"]["git_changes_alerting"] = _git(
        ["status", "--porcelain", "--untracked-files=no", "--", "alerting", "core"]
    )
    results["setup"] = {
        "sizes": asdict(sizes),
        "quick": bool(args.quick),
        "profile": bool(args.profile),
        "phases": sorted(phases),
    }
    if latency is not None:
        results["setup"].update(
            {
                "devices": len(bench.devices),
                "clinics": args.clinics,
                "mqtt_url": bench.settings.mqtt_url,
                "influx_url": bench.settings.influx_url,
                "publisher_processes": args.publishers,
                "load_readings": "1 reading (p1) a message, 4.0-7.9 °C, each device's forward in time",
                "trigger": f"1 reading of {TRIGGER_CELSIUS} °C on p2..p10, reading time = now",
            }
        )
    if "tick" in phases:
        results["tick"] = tick_bench(sizes)
    if latency is not None:
        lat: dict[str, Any] = {}
        results["latency"] = lat
        latency.start()
        lat["idle"] = latency.idle()
        lat["load"] = latency.load()
        lat.update(latency.finish())
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = make_bench(args)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
    }
    failed: str | None = None
    try:
        with _errors(args):
            try:
                run(args, args.phase_set, bench, results)
            finally:
                if (
                    "latency" in args.phase_set
                ):  # bench.run's clean-up: processes, sessions, database, servers
                    bench.teardown()
    except BenchError as exc:
        failed = str(exc)
    except KeyboardInterrupt:
        failed = "interrupted"
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if failed is not None:
        print(f"bench: {failed}", file=sys.stderr)
        if "machine" not in results:
            return 1
        results["error"] = failed
        path = write_results({**results, "targets": targets(results)}, bench.stamp, "alerting")
        print(f"bench: partial results in {path.relative_to(ROOT)}", file=sys.stderr)
        return 1
    results["targets"] = targets(results)
    path = write_results(results, bench.stamp, "alerting")
    print(summary(results))
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0 if results["targets"]["every_trigger_alerted"]["met"] is not False else 2


if __name__ == "__main__":
    sys.exit(main())
