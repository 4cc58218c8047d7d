"""``python -m bench.waste``: the waste rules' cost (part of ``make bench``), in process, no servers.

A district of ``--clinics`` clinics (default 1,000, daily pickups) generates ~7.6 bags per clinic per
day (the simulator's mix); every bag goes through its six scans on schedule. The scans of
``--days`` days (default 3) are fed to ``WasteEngine`` in time order, as the alerting service gets
them, ticking whenever the judged time advances (the service's rule), and the per-scan cost is timed;
then ``tick`` alone with every bag of the last days in flight. Results in
``bench/results/waste-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from alerting.waste.engine import WasteEngine, schedule_from
from bench.run import write_results
from core.protocol import Category, Stage, WasteEvent

T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC).timestamp()  # a local midnight
H = 3600.0
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def scans(clinics: int, days: int, seed: int = 1) -> list[tuple[str, WasteEvent]]:
    rng = random.Random(seed)
    out: list[tuple[str, WasteEvent]] = []
    n = 0
    for c in range(clinics):
        clinic = f"c{c}"
        for d in range(days):
            day = T0 + d * 24 * H
            for k in range(rng.randint(5, 10)):
                bag = f"{clinic}-{d}-{k}"
                g = day + rng.uniform(8, 10.5) * H
                times = [g, day + 11 * H, day + 11.2 * H, day + 12 * H, day + 16 * H, day + 30 * H]
                kg = round(rng.uniform(0.5, 3.0), 2)
                for stage, t in zip(Stage, times, strict=True):
                    n += 1
                    needs = stage in (Stage.handed_over, Stage.received, Stage.disposed)
                    out.append(
                        (
                            clinic,
                            WasteEvent(
                                f"e{n}", bag, stage, Category.infectious, kg, t, "op",
                                f"MF-{clinic}-{d}" if needs else None, "t" if needs else None,
                            ),
                        )
                    )  # fmt: skip
    out.sort(key=lambda s: s[1].ts)
    return out


def run(clinics: int, days: int) -> dict[str, Any]:
    feed = scans(clinics, days)
    engine = WasteEngine({f"c{c}": schedule_from(DAYS, "16:00") for c in range(clinics)})
    decisions = 0
    judged = float("-inf")
    started = time.perf_counter()
    for clinic, ev in feed:
        if ev.ts > judged:
            judged = ev.ts
            decisions += len(engine.tick(judged))
        decisions += len(engine.add(clinic, ev))
    feed_s = time.perf_counter() - started
    in_flight = sum(1 for b in engine.bags.values() if not b.closed)
    ticks = []
    for k in range(10):
        t0 = time.perf_counter()
        decisions += len(engine.tick(judged + k * 60))
        ticks.append(time.perf_counter() - t0)
    return {
        "clinics": clinics,
        "days": days,
        "scans": len(feed),
        "bags": len(engine.bags),
        "bags_in_flight_at_end": in_flight,
        "decisions": decisions,
        "feed_seconds": round(feed_s, 2),
        "scans_per_second": round(len(feed) / feed_s),
        "tick_ms_median": round(statistics.median(ticks) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.waste", description=__doc__.splitlines()[0])
    p.add_argument("--clinics", type=int, default=1000)
    p.add_argument("--days", type=int, default=3)
    args = p.parse_args(argv)
    print(f"[bench.waste] {args.clinics} clinics, {args.days} days of scans", file=sys.stderr)
    result = run(args.clinics, args.days)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = write_results({"benchmark": "waste", **result}, stamp, kind="waste")
    for key, value in result.items():
        print(f"{key:<24} {value:>12}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
