"""``chainwatch waste replay EVENTS.jsonl [--until TIME]``: the production waste rules over a file of
protocol-v1 waste events.

Each line is one waste event (DESIGN §3) plus a ``clinic`` field (the clinic of its topic); blank lines
and lines starting with ``#`` are skipped. Events are taken in the order of the file, which is the
order they arrived in: a late scan is simply a line whose ``ts`` is older than the lines before it. The
clock is the newest ``ts`` seen so far; after the last line it is advanced to ``--until`` (ISO 8601 or
epoch seconds; default: the newest ``ts``), so timers that fell due by then fire. Output: one JSON line
per decision, ``{"time","rule","severity","subject","action"}`` (``time`` ISO 8601 UTC); ``--verbose``
adds the clinic and the decision's numbers, ``--updates`` the updates. The same file gives the same
output, byte for byte. Pickup schedules come from the registry (``--registry``, else the settings'
registry file, else the demo district); ``--profile`` picks the jurisdiction profile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from alerting.replay import parse_time
from alerting.rules.types import Action, Decision, iso
from alerting.waste.engine import PickupSchedule, WasteEngine, schedule_from
from alerting.waste.profiles import all_profiles
from core.protocol import Limits, ProtocolError, WasteEvent, parse_waste
from core.registry_model import DEMO_REGISTRY, RegistryFile, load_registry_file

_ONE_EVENT = Limits(max_records=1, future_tolerance_s=0.0)


class ReplayError(ValueError):
    """A bad events file or option: the message names the line and what is wrong."""


def read_events(fh: TextIO, name: str = "events") -> list[tuple[int, str | None, WasteEvent]]:
    out: list[tuple[int, str | None, WasteEvent]] = []
    for n, line in enumerate(fh, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ReplayError(f"{name}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ReplayError(f"{name}:{n}: not a JSON object")
        clinic = obj.pop("clinic", None)
        if clinic is not None and not isinstance(clinic, str):
            raise ReplayError(f"{name}:{n}: 'clinic' must be a string")
        ts = obj.get("ts")
        try:  # judged against its own time: a replay has no "now" that could make it look too old or new
            (ev,) = parse_waste(
                json.dumps(obj), float(ts) if isinstance(ts, int | float) else 0.0, _ONE_EVENT
            )
        except ProtocolError as exc:
            raise ReplayError(f"{name}:{n}: {exc.detail}") from None
        out.append((n, clinic, ev))
    if not out:
        raise ReplayError(f"{name}: no waste events")
    return out


def schedules(reg: RegistryFile) -> dict[str, PickupSchedule]:
    return {
        c.id: schedule_from([d.value for d in c.waste_pickup.days], c.waste_pickup.by)
        for c in reg.clinics()
        if c.waste_pickup is not None
    }


def replay(
    events: list[tuple[int, str | None, WasteEvent]], engine: WasteEngine, until: float | None = None
) -> Iterator[Decision]:
    clock: float | None = None
    for _line, clinic, ev in events:
        if clock is None or ev.ts > clock:
            clock = ev.ts
            yield from engine.tick(clock)
        yield from engine.add(clinic, ev)
    end = max(clock or 0.0, until if until is not None else clock or 0.0)
    yield from engine.tick(end)


def decision_json(d: Decision, *, verbose: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "time": iso(d.time),
        "rule": d.rule.value,
        "severity": d.severity.value,
        "subject": d.subject,
        "action": d.action.value,
    }
    if verbose:
        out["clinic"] = d.clinic
        out.update({k: v for k, v in sorted(d.values.items())})
    return out


def replay_main(
    path: Path,
    *,
    until: str | None,
    registry: Path | None,
    profile: str | None,
    verbose: bool,
    updates: bool,
    out: TextIO,
) -> int:
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    reg = load_registry_file(registry or DEMO_REGISTRY)
    profiles = all_profiles(reg.waste_profiles)
    name = profile or reg.waste_profile
    if name not in profiles:
        raise ReplayError(f"unknown waste profile {name!r} (known: {', '.join(sorted(profiles))})")
    try:
        end = parse_time(until) if until else None
    except ValueError:
        raise ReplayError(f"--until {until!r} is neither ISO 8601 nor epoch seconds") from None
    with path.open(encoding="utf-8-sig") as fh:
        events = read_events(fh, str(path))
    engine = WasteEngine(schedules(reg), profiles[name])
    for d in replay(events, engine, end):
        if d.action is Action.update and not updates:
            continue
        out.write(json.dumps(decision_json(d, verbose=verbose), ensure_ascii=False) + "\n")
    return 0
