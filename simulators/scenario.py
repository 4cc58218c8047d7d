"""Scenario files: what goes wrong, where and when, in a simulation.

A scenario is YAML::

    name: power cut at clinic 3          # required
    description: optional free text
    events:
      - kind: power_cut       # see the kinds below
        clinic: 3             # 1-based index into the simulated clinics, a clinic id, or "all"
        at: "14:00"           # when it starts (see the time forms below)
        duration: 6h          # how long: 45s, 90m, 6h, 2d, 1h30m, or a number of seconds
      - kind: probe_fault
        clinic: qingshui-thc
        equipment: fridge1    # an equipment id, or its end after a '-' (qingshui-fridge1 -> fridge1)
        at: "day 2 09:30"
        duration: 3h
        fault: disconnected   # disconnected (reads -127.0) | reset (85.0) | stuck (same value)

Kinds and the fields they take (``clinic``, ``at`` and ``duration`` always for these):

- ``power_cut``: the mains of the whole clinic fail: no appliance cools, every gateway runs on its
  battery (reports ``mains`` false, the battery drains, a flat battery silences the gateway until the
  power returns). No ``equipment``: to take the power from one appliance, use ``unplugged``.
- ``unplugged``: the appliance (``equipment``, or all of the clinic's) has no power; the gateway does.
- ``door_open``: the door of ``equipment`` (or of every appliance of the clinic) is held open.
- ``network_loss``: the clinic's gateways cannot reach the broker: they buffer their readings and
  replay them when the network returns. No ``equipment``.
- ``probe_fault``: the probe of ``equipment`` (or every probe of the clinic) fails; needs ``fault``.
- ``ambient``: the room around the appliances is at ``ambient_c`` °C (−40…55) instead of following
  the daily curve.

Waste anomalies (``chainwatch simulate --waste``; see ``simulators/waste.py``) take one clinic (a
number or an id, not ``all``), ``at``, no ``equipment`` and no ``duration`` unless said:

- ``missed_pickup``: on the local day of ``at`` the transporter comes ``late_h`` hours (default 6,
  at most 12) after the clinic's pickup time instead of before it.
- ``lost_bag``: one bag of the first pickup at or after ``at`` never reaches the plant.
- ``weight_loss``: one bag of the first pickup at or after ``at`` arrives ``loss_pct`` % lighter
  (default 30; 6…95).
- ``duplicate_scan``: the ``stored`` scan of the first bag stored at or after ``at`` is sent again
  with the same ``event_id`` and 0.4 kg more.
- ``out_of_order_scan``: the first bag handed over at or after ``at`` gets a ``stored`` scan after it.
- ``refused_bag``: the plant refuses one bag of the first pickup at or after ``at``
  (``refusal_reason``, optional).
- ``scanner_offline``: the clinic's waste scanner cannot publish for ``duration`` (at most 20 h).
- ``resend``: the first ``count`` (1…500, required) waste events of the clinic published at or after
  ``at`` are delivered twice (same ``event_id``, same content).

Time forms for ``at`` (clinic local time is UTC+8):

- ``"14:00"`` or ``"14:00:30"``: that local time on the first simulated day (the local date of the
  simulation start; it may lie before the start, then only the part after the start is simulated);
- ``"day 2 14:00"``: that local time on the second simulated day; ``"day 2"``: its midnight;
- ``"+3h"``: that long after the simulation start;
- ``"2026-11-20T06:00:00Z"``: ISO 8601 with ``Z`` or an offset such as ``+08:00``.

Quote times (``"14:00"``): YAML 1.1 reads an unquoted 14:00 as a number; the loader here reads it as
text anyway, but other YAML tools will not. An event covers ``[start, start + duration)``; events may
overlap. Errors are one line: ``FILE:WHERE: WHAT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

LOCAL_TZ = timezone(timedelta(hours=8))
AMBIENT_MIN_C = -40.0
AMBIENT_MAX_C = 55.0


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line: ``FILE:WHERE: WHAT``."""


class Kind(StrEnum):
    power_cut = "power_cut"
    unplugged = "unplugged"
    door_open = "door_open"
    network_loss = "network_loss"
    probe_fault = "probe_fault"
    ambient = "ambient"
    # waste anomalies (simulators/waste.py)
    missed_pickup = "missed_pickup"
    lost_bag = "lost_bag"
    weight_loss = "weight_loss"
    duplicate_scan = "duplicate_scan"
    out_of_order_scan = "out_of_order_scan"
    refused_bag = "refused_bag"
    scanner_offline = "scanner_offline"
    resend = "resend"


class FaultKind(StrEnum):
    disconnected = "disconnected"
    reset = "reset"
    stuck = "stuck"


CLINIC_WIDE = {Kind.power_cut, Kind.network_loss}
WASTE_KINDS = frozenset(
    {
        Kind.missed_pickup,
        Kind.lost_bag,
        Kind.weight_loss,
        Kind.duplicate_scan,
        Kind.out_of_order_scan,
        Kind.refused_bag,
        Kind.scanner_offline,
        Kind.resend,
    }
)
SCANNER_OFFLINE_MAX_S = 20 * 3600.0
LATE_H_DEFAULT = 6.0
LATE_H_MAX = 12.0  # with a pickup the day before, the oldest bag then waits < 36 h (storage warning)
LOSS_PCT_DEFAULT = 30.0
LOSS_PCT_MIN = 6.0  # a smaller loss hides in the scale's tolerance (5 %)
LOSS_PCT_MAX = 95.0
RESEND_MAX = 500
REFUSAL_REASON_DEFAULT = "damaged packaging"
# the fields only one kind takes
_OWN_FIELDS = {
    "late_h": Kind.missed_pickup,
    "loss_pct": Kind.weight_loss,
    "refusal_reason": Kind.refused_bag,
    "count": Kind.resend,
}

# ------------------------------------------------------------------ durations and times

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION_RE = re.compile(rf"^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?$")
_CLOCK_RE = re.compile(r"^(?:day\s+(\d+)\s+)?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_DAY_RE = re.compile(r"^day\s+(\d+)$")


def parse_duration(value: str | float) -> float:
    """Seconds in ``45s``, ``90m``, ``6h``, ``2d``, ``1h30m`` or a plain number of seconds; > 0."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use e.g. 45s, 90m, 6h, 2d)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        m = _DURATION_RE.match(text)
        if not text or not m or not any(m.groups()):
            raise ValueError(f"{value!r} is not a duration (use e.g. 45s, 90m, 6h, 2d, 1h30m)")
        d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = d * 86400 + h * 3600 + mi * 60 + s
    if not seconds > 0:
        raise ValueError(f"duration {value!r} must be longer than 0 s")
    return seconds


@dataclass(frozen=True, slots=True)
class When:
    """A parsed ``at``: an absolute time, an offset from the start, or a local clock time on day N."""

    absolute: float | None = None
    after_start_s: float | None = None
    day: int = 1
    seconds_of_day: float = 0.0

    def resolve(self, start: float) -> float:
        if self.absolute is not None:
            return self.absolute
        if self.after_start_s is not None:
            return start + self.after_start_s
        first_day: date = datetime.fromtimestamp(start, LOCAL_TZ).date()
        midnight = datetime(first_day.year, first_day.month, first_day.day, tzinfo=LOCAL_TZ)
        return midnight.timestamp() + (self.day - 1) * 86400.0 + self.seconds_of_day


def parse_when(value: str) -> When:
    text = value.strip()
    if text.startswith("+"):
        try:
            return When(after_start_s=parse_duration(text[1:]))
        except ValueError:
            raise ValueError(f"{value!r}: after '+' comes a duration such as 3h or 90m") from None
    m = _CLOCK_RE.match(text)
    if m:
        day = int(m.group(1) or 1)
        if day < 1:
            raise ValueError(f"{value!r}: days count from 1 (the first simulated day)")
        secs = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4) or 0)
        return When(day=day, seconds_of_day=float(secs))
    m = _DAY_RE.match(text)
    if m:
        if int(m.group(1)) < 1:
            raise ValueError(f"{value!r}: days count from 1 (the first simulated day)")
        return When(day=int(m.group(1)))
    if re.match(r"^\d{4}-\d\d-\d\d", text):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-20T06:00:00Z)") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: add Z (UTC) or +08:00 (clinic local time)")
        return When(absolute=parsed.timestamp())
    raise ValueError(f'{value!r} is not a time: use "14:00", "day 2 14:00", "+3h" or ISO 8601 with Z')


# ------------------------------------------------------------------ the file


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    clinic: StrictInt | StrictStr
    equipment: StrictStr | None = None
    at: StrictStr
    duration: StrictStr | StrictInt | StrictFloat | None = None
    fault: FaultKind | None = None
    ambient_c: StrictFloat | StrictInt | None = None
    late_h: StrictFloat | StrictInt | None = None
    loss_pct: StrictFloat | StrictInt | None = None
    refusal_reason: StrictStr | None = None
    count: StrictInt | None = None

    @field_validator("clinic")
    @classmethod
    def _clinic(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"clinic {value}: clinics are numbered from 1")
        if isinstance(value, str) and not value.strip():
            raise ValueError("clinic is empty")
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        parse_when(value)
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Event:
        for name, owner in _OWN_FIELDS.items():
            if getattr(self, name) is not None and self.kind != owner:
                raise ValueError(f"'{name}' belongs to {owner} events, not {self.kind}")
        if self.kind in WASTE_KINDS:
            self._check_waste()
            return self
        if self.duration is None:
            raise ValueError(f"{self.kind} needs 'duration' (e.g. 45s, 90m, 6h)")
        if self.kind in CLINIC_WIDE and self.equipment is not None:
            hint = " (use kind: unplugged for one appliance)" if self.kind == Kind.power_cut else ""
            raise ValueError(f"{self.kind} affects the whole clinic: remove 'equipment'{hint}")
        if self.kind == Kind.probe_fault and self.fault is None:
            raise ValueError("probe_fault needs 'fault': disconnected, reset or stuck")
        if self.kind != Kind.probe_fault and self.fault is not None:
            raise ValueError(f"'fault' belongs to probe_fault events, not {self.kind}")
        if self.kind == Kind.ambient:
            if self.ambient_c is None:
                raise ValueError("ambient needs 'ambient_c' (the room temperature in °C)")
            if not AMBIENT_MIN_C <= self.ambient_c <= AMBIENT_MAX_C:
                raise ValueError(
                    f"ambient_c {self.ambient_c} is not within {AMBIENT_MIN_C:.0f}…{AMBIENT_MAX_C:.0f} °C"
                )
        elif self.ambient_c is not None:
            raise ValueError(f"'ambient_c' belongs to ambient events, not {self.kind}")
        return self

    def _check_waste(self) -> None:
        kind = self.kind
        if self.clinic == "all":
            raise ValueError(f"{kind} happens at one clinic: give its number or id, not 'all'")
        if self.equipment is not None:
            raise ValueError(f"{kind} concerns waste, not equipment: remove 'equipment'")
        if self.fault is not None:
            raise ValueError(f"'fault' belongs to probe_fault events, not {kind}")
        if self.ambient_c is not None:
            raise ValueError(f"'ambient_c' belongs to ambient events, not {kind}")
        if kind == Kind.scanner_offline:
            if self.duration is None:
                raise ValueError("scanner_offline needs 'duration' (at most 20h)")
            if self.seconds > SCANNER_OFFLINE_MAX_S:
                raise ValueError(f"scanner_offline lasts at most 20h, not {self.duration}")
        elif self.duration is not None:
            raise ValueError(f"'duration' does not apply to {kind} (only scanner_offline has one)")
        if self.late_h is not None and not 0 < self.late_h <= LATE_H_MAX:
            raise ValueError(
                f"late_h {self.late_h} is not within 0…{LATE_H_MAX:.0f} h (later, bags would wait 36 h)"
            )
        if self.loss_pct is not None and not LOSS_PCT_MIN <= self.loss_pct <= LOSS_PCT_MAX:
            raise ValueError(
                f"loss_pct {self.loss_pct} is not within {LOSS_PCT_MIN:.0f}…{LOSS_PCT_MAX:.0f} % "
                "(a smaller loss is within the scale's 5 % tolerance)"
            )
        reason = self.refusal_reason
        if reason is not None and (
            not reason.strip() or len(reason) > 200 or any(c in reason for c in "\r\n\t\x00")
        ):
            raise ValueError("refusal_reason must be 1…200 characters on one line")
        if kind == Kind.resend:
            if self.count is None:
                raise ValueError("resend needs 'count' (how many events are delivered twice)")
            if not 1 <= self.count <= RESEND_MAX:
                raise ValueError(f"count {self.count} is not within 1…{RESEND_MAX}")

    @property
    def seconds(self) -> float:
        return 0.0 if self.duration is None else parse_duration(self.duration)

    @property
    def when(self) -> When:
        return parse_when(self.at)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1)
    description: StrictStr = ""
    events: tuple[Event, ...] = ()
    source: str = Field(default="<scenario>", exclude=True)


class _TextTimesLoader(yaml.SafeLoader):
    """SafeLoader that keeps 14:00 and 2026-11-20T14:00Z as text (YAML 1.1 turns them into a number
    and a datetime)."""


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_TextTimesLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_TextTimesLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))
_TextTimesLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9]+(?:[eE][-+]?[0-9]+)?$"), list("-+0123456789.")
)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "top level"


def _message(error: Any) -> str:
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        msg = (
            "unknown field (known: kind, clinic, equipment, at, duration, fault, ambient_c, late_h, "
            "loss_pct, refusal_reason, count)"
        )
        if len(error["loc"]) == 1:
            msg = "unknown field (known: name, description, events)"
    elif error["type"] == "missing":
        msg = "missing (required)"
    return msg


def parse_scenario(doc: Any, source: str = "<scenario>") -> Scenario:
    """Validate a decoded YAML document; raises ``ScenarioError`` naming the first problem."""
    if not isinstance(doc, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with 'name' and 'events'")
    try:
        return Scenario.model_validate({**doc, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        # a model_validator error on an event has loc ('events', i); say so, not "top level"
        more = f" ({exc.error_count()} problems in all)" if exc.error_count() > 1 else ""
        raise ScenarioError(f"{source}:{_where(loc)}: {_message(first)}{more}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every error is one line ``FILE:WHERE: WHAT``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{p}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: cannot read it ({exc})") from None
    try:
        doc = yaml.load(text, Loader=_TextTimesLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{p}:{where}: not valid YAML ({problem})") from None
    return parse_scenario(doc, str(p))


# ------------------------------------------------------------------ against the simulated clinics


@dataclass(frozen=True, slots=True)
class SiteEquipment:
    """What the resolver needs to know of a simulated clinic."""

    clinic: str
    equipment: tuple[str, ...]  # simulated appliances (refrigerators and freezers)
    other_equipment: tuple[str, ...] = ()  # in the registry but not simulated


@dataclass(frozen=True, slots=True)
class ResolvedEvent:
    kind: Kind
    start: float
    end: float
    clinics: tuple[str, ...]
    equipment: tuple[str, ...]  # empty: every appliance of the clinics
    fault: FaultKind | None = None
    ambient_c: float | None = None
    label: str = ""
    # waste anomalies
    late_h: float | None = None
    loss_pct: float | None = None
    refusal_reason: str | None = None
    count: int | None = None
    where: str = ""  # FILE:events[i], to name the event in errors found later

    @property
    def waste(self) -> bool:
        return self.kind in WASTE_KINDS

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


def _match_equipment(name: str, site: SiteEquipment) -> str:
    exact = [e for e in site.equipment if e == name]
    if exact:
        return exact[0]
    ends = [e for e in site.equipment if e.endswith("-" + name)]
    if len(ends) == 1:
        return ends[0]
    if len(ends) > 1:
        raise ValueError(f"equipment {name!r} is ambiguous in clinic {site.clinic}: {', '.join(ends)}")
    if name in site.other_equipment or any(e.endswith("-" + name) for e in site.other_equipment):
        raise ValueError(f"equipment {name!r} of clinic {site.clinic} is not a refrigerator or freezer")
    raise ValueError(
        f"clinic {site.clinic} has no equipment {name!r} (it has {', '.join(site.equipment) or 'none'})"
    )


def resolve_events(
    scenario: Scenario, sites: list[SiteEquipment], start: float, registry_clinics: tuple[str, ...] = ()
) -> list[ResolvedEvent]:
    """Absolute times and ids for each event; ``sites`` are the simulated clinics in order.

    Raises ``ScenarioError`` (one line) for a clinic or equipment that is not simulated.
    """
    out: list[ResolvedEvent] = []
    by_id = {s.clinic: s for s in sites}
    for i, ev in enumerate(scenario.events):
        where = f"{scenario.source}:events[{i}]"
        if ev.clinic == "all":
            chosen = list(sites)
        elif isinstance(ev.clinic, int):
            if ev.clinic > len(sites):
                raise ScenarioError(
                    f"{where}.clinic: clinic {ev.clinic} is not simulated: {len(sites)} clinic(s) are "
                    f"(raise --clinics or change the scenario)"
                )
            chosen = [sites[ev.clinic - 1]]
        elif ev.clinic in by_id:
            chosen = [by_id[ev.clinic]]
        elif ev.clinic in registry_clinics:
            raise ScenarioError(
                f"{where}.clinic: clinic {ev.clinic} is in the registry but not among the {len(sites)} "
                f"simulated clinic(s) (raise --clinics)"
            )
        else:
            raise ScenarioError(f"{where}.clinic: no clinic {ev.clinic!r} in the registry")
        equipment: tuple[str, ...] = ()
        if ev.equipment is not None:
            try:
                equipment = tuple(_match_equipment(ev.equipment, site) for site in chosen)
            except ValueError as exc:
                raise ScenarioError(f"{where}.equipment: {exc}") from None
        begin = ev.when.resolve(start)
        out.append(
            ResolvedEvent(
                kind=ev.kind,
                start=begin,
                end=begin + ev.seconds,
                clinics=tuple(s.clinic for s in chosen),
                equipment=equipment,
                fault=ev.fault,
                ambient_c=None if ev.ambient_c is None else float(ev.ambient_c),
                label=f"events[{i}] {ev.kind}",
                late_h=_waste_default(ev.late_h, ev.kind, Kind.missed_pickup, LATE_H_DEFAULT),
                loss_pct=_waste_default(ev.loss_pct, ev.kind, Kind.weight_loss, LOSS_PCT_DEFAULT),
                refusal_reason=(
                    ev.refusal_reason or REFUSAL_REASON_DEFAULT if ev.kind == Kind.refused_bag else None
                ),
                count=ev.count,
                where=where,
            )
        )
    return out


def _waste_default(value: float | None, kind: Kind, owner: Kind, default: float) -> float | None:
    if kind != owner:
        return None
    return default if value is None else float(value)


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
