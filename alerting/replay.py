"""``chainwatch rules replay TRACE.csv``: the production rules over a recorded trace.

The trace is CSV: ``time,celsius`` and optionally ``mains`` (1/0, true/false, on/off), with or without
a header line; ``time`` is ISO 8601 (a time without a zone is UTC) or epoch seconds. Rows are taken in
time order (the engine would reorder them anyway); an empty ``celsius`` is a missing reading. Offline
is judged from the gaps between rows, as the service's clock would see them. Output: one JSON line per
decision, ``{"time": ..., "rule": ..., "severity": ..., "action": ...}``, in time order; the same trace
gives byte-identical output.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from alerting.rules.engine import Engine, EquipmentRef
from alerting.rules.types import Action, Decision
from core.profiles import profile_settings

TRACE_DEVICE = "trace-gw"
TRACE_PROBE = "p1"
TRACE_EQUIPMENT = "trace"


class TraceError(ValueError):
    """A bad trace file: the message names the line and what is wrong."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    time: float
    celsius: float | None
    mains: bool | None


def parse_time(text: str) -> float:
    value = text.strip()
    try:
        t = float(value)
    except ValueError:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if not math.isfinite(t):
        raise ValueError(f"{value!r} is not a time")
    return t


_MAINS = {"1": True, "0": False, "true": True, "false": False, "on": True, "off": False, "": None}


def read_trace(fh: TextIO, name: str = "trace") -> list[Row]:
    rows: list[Row] = []
    columns = {"time": 0, "celsius": 1, "mains": 2}
    for n, record in enumerate(csv.reader(fh), start=1):
        if not record or all(not f.strip() for f in record) or record[0].lstrip().startswith("#"):
            continue
        if n == 1 and not _looks_like_time(record[0]):
            header = [h.strip().lower() for h in record]
            if "time" not in header or "celsius" not in header:
                raise TraceError(
                    f"{name}:1: the header must name the columns time and celsius (got {record})"
                )
            columns = {k: header.index(k) for k in ("time", "celsius", "mains") if k in header}
            continue
        try:
            t = parse_time(record[columns["time"]])
            raw_c = record[columns["celsius"]].strip() if len(record) > columns["celsius"] else ""
            celsius = float(raw_c) if raw_c else None
            if celsius is not None and not math.isfinite(celsius):
                raise ValueError(f"celsius {raw_c!r} is not a number")
            mains = None
            if "mains" in columns and len(record) > columns["mains"]:
                key = record[columns["mains"]].strip().lower()
                if key not in _MAINS:
                    raise ValueError(f"mains {key!r} is not 1/0, true/false or on/off")
                mains = _MAINS[key]
        except (ValueError, IndexError) as exc:
            raise TraceError(f"{name}:{n}: {exc}") from None
        rows.append(Row(n, t, celsius, mains))
    if not rows:
        raise TraceError(f"{name}: no readings")
    return sorted(rows, key=lambda r: (r.time, r.line))


def _looks_like_time(field: str) -> bool:
    try:
        parse_time(field)
    except ValueError:
        return False
    return True


def replay(rows: list[Row], profile: str = "refrigerator", interval_s: float = 60.0) -> Iterator[Decision]:
    settings = profile_settings(profile)
    engine = Engine([EquipmentRef(TRACE_EQUIPMENT, None, TRACE_DEVICE, TRACE_PROBE, settings, interval_s)])
    for row in rows:
        yield from engine.tick(row.time)
        yield from engine.seen(TRACE_DEVICE, row.time, row.time)
        if row.mains is not None:
            yield from engine.mains(TRACE_DEVICE, row.time, row.mains)
        if row.celsius is not None:
            yield from engine.temperature(TRACE_DEVICE, TRACE_PROBE, row.time, row.celsius)
    yield from engine.flush()


def replay_main(
    path: Path, profile: str, interval_s: float, *, verbose: bool, updates: bool, out: TextIO
) -> int:
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = read_trace(fh, str(path))
    for d in replay(rows, profile, interval_s):
        if d.action is Action.update and not updates:
            continue
        out.write(json.dumps(d.as_json(verbose=verbose), ensure_ascii=False) + "\n")
    return 0
