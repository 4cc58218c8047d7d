"""``python -m bench.notify``: the notification loop's cost (part of ``make bench``).

In this process, on a SQLite file (as the demo and a one-server deployment run it), with a synthetic
district of 1,000 clinics (a nurse and a head each, two bureau duty officers) and the routing of
``alerting.notify.routing``. The dispatcher runs every 15 s in the alerting service; what it costs:

1. **storm**: 2,000 warning/critical alerts open at once (two per clinic) and ``tick`` is timed until
   every level-0 SMS is out (one per clinic: its two alerts grouped): plan, grouping window, compose
   with signed links, and delivery through a channel that answers after ``--latency-ms`` (20 ms, a
   provider's HTTP round trip), side by side with 1 and with 4 sending threads;
2. **steady**: the same alerts still firing, nothing due: ``tick`` timed 20 times (the cost of every
   15 s of an incident);
3. **steady with check reminders**: as 2, plus 100,000 open ``info`` alerts (the twice-daily check
   reminders of 100,000 appliances at 10:00, which send no SMS).

Results: ``bench/results/notify-<UTC timestamp>.json`` and a table on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from alerting.notify.base import Message, SendResult, Status
from alerting.notify.dispatcher import Dispatcher, Options
from alerting.notify.links import init_link_tables
from alerting.notify.routing import build_routing
from alerting.notify.store import init_notify_tables
from alerting.store import AlertRow, init_alert_tables
from bench.run import write_results
from core.db import make_engine

T0 = datetime(2026, 11, 25, 19, 0, tzinfo=UTC).timestamp()


class NullChannel:
    """Takes every message after ``latency_s`` (a provider's round trip)."""

    name = "null"

    def __init__(self, latency_s: float = 0.0) -> None:
        self.sent = 0
        self.latency_s = latency_s
        self.lock = threading.Lock()

    def send(self, message: Message) -> SendResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        with self.lock:
            self.sent += 1
            return SendResult(Status.sent, self.name, f"n-{self.sent}")


def say(msg: str) -> None:
    print(f"[bench.notify] {msg}", file=sys.stderr, flush=True)


def _alert(i: int, clinic: str, subject: str, severity: str, family: str, rule: str) -> dict[str, Any]:
    return {
        "id": f"A-20261126-{i:06d}",
        "rule": rule,
        "family": family,
        "subject": subject,
        "clinic": clinic,
        "severity": severity,
        "state": "firing",
        "open_key": f"{family}/{subject}",
        "started_at": T0,
        "opened_by": f"bench-{i}",
        "last_change_at": T0,
        "last_decision_at": T0,
        "message": "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C，已高于 +8°C 35 分钟。请立即转移疫苗。",
        "message_en": "[Cold chain ALARM] fridge: 9.2 °C above +8 °C for 35 min.",
        "values": {"celsius": 9.2, "minutes": 35},
    }


def run(
    clinics: int, incidents: int, reminders: int, workdir: Path, workers: int = 1, latency_s: float = 0.0
) -> dict[str, Any]:
    sql = make_engine(f"sqlite:///{workdir / f'notify-{workers}.sqlite'}")
    init_alert_tables(sql)
    init_link_tables(sql)
    init_notify_tables(sql)
    people = [(f"c{c}-nurse", f"c{c}", "N", f"+86138{c:08d}", "nurse", "zh-CN") for c in range(clinics)]
    people += [(f"c{c}-head", f"c{c}", "H", f"+86139{c:08d}", "clinic_head", "zh-CN") for c in range(clinics)]
    people += [("duty1", "b", "D1", "+8613700000001", "duty_officer", "zh-CN")]
    routing = build_routing(people, {f"c{c}": f"t{c // 10}" for c in range(clinics)}, "b", [])
    channel = NullChannel(latency_s)
    options = Options(group_wait_s=30.0, rate_limit=1000, send_workers=workers)
    d = Dispatcher(sql, routing, [channel], b"k" * 32, None, options)
    rows = [
        _alert(i, f"c{i % clinics}", f"c{i % clinics}-fridge{i // clinics}", ("warning", "critical")[i % 2],
               "heat", ("heat_warning", "heat_alarm")[i % 2])
        for i in range(incidents)
    ]  # fmt: skip
    with Session(sql) as s, s.begin():
        s.execute(insert(AlertRow), rows)
    say(
        f"{incidents} alerts open in {clinics} clinics; "
        f"{workers} sending thread(s), {latency_s * 1000:.0f} ms per SMS"
    )
    storm: list[float] = []
    t = T0
    expected = min(clinics, incidents)  # one grouped SMS per clinic's nurse
    while channel.sent < expected:
        start = time.perf_counter()
        d.tick(t)
        storm.append(time.perf_counter() - start)
        t += 15.0
        if len(storm) > 20:
            raise RuntimeError(f"only {channel.sent} of {expected} SMS out after 20 ticks")
    say(f"storm: {channel.sent} SMS in {len(storm)} ticks, {sum(storm):.2f} s")
    steady = _ticks(d, t, 20)
    say(f"steady: median {statistics.median(steady) * 1000:.1f} ms")
    extra = [
        _alert(n, f"c{i % clinics}", f"c{i % clinics}-eq{i}", "info", "check", "twice_daily_check")
        for i, n in enumerate(range(incidents, incidents + reminders))
    ]
    with Session(sql) as s, s.begin():
        s.execute(insert(AlertRow), extra)
    say(f"+{reminders} info alerts (check reminders)")
    steady_info = _ticks(d, t + 20 * 15.0, 20)
    say(f"steady with reminders: median {statistics.median(steady_info) * 1000:.1f} ms")
    return {
        "send_workers": workers,
        "provider_latency_ms": round(latency_s * 1000),
        "clinics": clinics,
        "incident_alerts": incidents,
        "info_alerts": reminders,
        "storm": {"ticks": len(storm), "sms": channel.sent, "seconds": round(sum(storm), 3),
                  "max_tick_ms": round(max(storm) * 1000, 1)},
        "steady_tick_ms": _summary(steady),
        "steady_with_reminders_tick_ms": _summary(steady_info),
    }  # fmt: skip


def _ticks(d: Dispatcher, t: float, n: int) -> list[float]:
    out = []
    for k in range(n):
        start = time.perf_counter()
        d.tick(t + k * 15.0)
        out.append(time.perf_counter() - start)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"median": round(statistics.median(ms), 1), "max": round(ms[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.splitlines()[0])
    p.add_argument("--clinics", type=int, default=1000)
    p.add_argument("--incidents", type=int, default=2000)
    p.add_argument("--reminders", type=int, default=100_000)
    p.add_argument("--latency-ms", type=float, default=20.0)
    args = p.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = []
    with tempfile.TemporaryDirectory(prefix="cw-bench-notify-") as tmp:
        for workers in (1, 4):
            runs.append(
                run(args.clinics, args.incidents, args.reminders, Path(tmp), workers, args.latency_ms / 1000)
            )
    path = write_results({"benchmark": "notify", "runs": runs}, stamp, kind="notify")
    print(f"{'measure':<40} {'1 thread':>10} {'4 threads':>10}")
    rows = [
        ("storm: SMS out", lambda r: r["storm"]["sms"]),
        ("storm: ticks until all out", lambda r: r["storm"]["ticks"]),
        ("storm: seconds in ticks", lambda r: r["storm"]["seconds"]),
        ("storm: slowest tick (ms)", lambda r: r["storm"]["max_tick_ms"]),
        ("steady tick, median (ms)", lambda r: r["steady_tick_ms"]["median"]),
        ("steady tick + 100k info alerts (ms)", lambda r: r["steady_with_reminders_tick_ms"]["median"]),
    ]
    for label, get in rows:
        print(f"{label:<40} {get(runs[0]):>10} {get(runs[1]):>10}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
