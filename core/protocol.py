"""MQTT protocol v1 (DESIGN §3): topics, telemetry (SenML), waste events and device status.

Every way a message can be wrong raises ``ProtocolError`` with a short ``reason`` code (stable: it is
counted, stored with the dead letter and shown in the API) and a detail sentence naming the record
or field. Probe readings that are valid messages but physically suspect (DS18B20 error codes 85.0 and
−127.0, values outside −60…+70 °C) are not errors: they are kept and flagged (``TemperatureReading.fault``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from core import senml
from core.ids import ID_RE

TOPIC_PREFIX = "cw/v1/"
PROBE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z")
BAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
FREE_TEXT_MAX = 200

PROBE_MIN_C = -60.0  # DESIGN §5 probe fault: outside −60…+70 °C
PROBE_MAX_C = 70.0
DS18B20_CODES = {85.0: "ds18b20_85", -127.0: "ds18b20_minus127"}
ABSOLUTE_ZERO_C = -273.15


class Kind(StrEnum):
    telemetry = "telemetry"
    waste = "waste"
    status = "status"
    config = "config"


class ProtocolError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Topic:
    clinic: str
    device: str
    kind: Kind


@lru_cache(maxsize=1 << 16)  # topics repeat per device; a refused topic raises and is not cached
def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "cw" or parts[1] != "v1":
        raise ProtocolError("bad_topic", f"topic {topic!r:.120} is not cw/v1/{{clinic}}/{{device}}/{{kind}}")
    _, _, clinic, device, kind = parts
    if not ID_RE.match(clinic):
        raise ProtocolError("bad_topic", f"clinic id {clinic!r:.80} does not match [a-z0-9][a-z0-9-]{{0,63}}")
    if not ID_RE.match(device):
        raise ProtocolError("bad_topic", f"device id {device!r:.80} does not match [a-z0-9][a-z0-9-]{{0,63}}")
    try:
        return Topic(clinic, device, Kind(kind))
    except ValueError:
        raise ProtocolError("bad_topic", f"unknown message kind {kind!r:.40} in topic") from None


@dataclass(frozen=True, slots=True)
class Limits:
    max_records: int = 500
    future_tolerance_s: float = 600.0
    max_age_s: float = 400 * 86400.0  # older readings point at a gateway whose clock was never set


# ---------------------------------------------------------------- telemetry


@dataclass(frozen=True, slots=True)
class TemperatureReading:
    probe: str
    time: float
    celsius: float
    fault: str | None = None  # "ds18b20_85", "ds18b20_minus127", "out_of_range"


@dataclass(slots=True)
class HealthSample:
    """Device health records sharing one timestamp (they become one InfluxDB point)."""

    time: float
    battery_pct: float | None = None
    mains_on: bool | None = None
    rssi: float | None = None


@dataclass(frozen=True, slots=True)
class DoorReading:
    probe: str
    time: float
    open: bool


@dataclass(slots=True)
class Telemetry:
    clinic: str
    device: str
    temperatures: list[TemperatureReading] = field(default_factory=list)
    health: list[HealthSample] = field(default_factory=list)
    doors: list[DoorReading] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        return (
            len(self.temperatures)
            + len(self.doors)
            + sum(
                (h.battery_pct is not None) + (h.mains_on is not None) + (h.rssi is not None)
                for h in self.health
            )
        )


def probe_fault(celsius: float) -> str | None:
    code = DS18B20_CODES.get(celsius)
    if code:
        return code
    if celsius < PROBE_MIN_C or celsius > PROBE_MAX_C:
        return "out_of_range"
    return None


def _check_time(t: float, now: float, limits: Limits, where: str) -> None:
    if t > now + limits.future_tolerance_s:
        raise ProtocolError(
            "future_timestamp",
            f"{where}: time {t:.0f} is {t - now:.0f} s ahead of the server clock "
            f"(tolerance {limits.future_tolerance_s:.0f} s): is the gateway's clock set?",
        )
    if t < now - limits.max_age_s:
        raise ProtocolError(
            "stale_timestamp", f"{where}: time {t:.0f} is {(now - t) / 86400:.0f} days old: is the clock set?"
        )


def _unit(rec: senml.Record, expected: str, where: str) -> None:
    if rec.unit != expected:
        got = "no unit" if rec.unit is None else f"unit {rec.unit!r:.20}"
        raise ProtocolError("unknown_unit", f"{where}: {got}, expected {expected!r}")


def _numeric(rec: senml.Record, where: str) -> float:
    if rec.value is None:
        raise ProtocolError("wrong_value_type", f"{where}: needs a numeric value 'v'")
    return rec.value


def _boolean(rec: senml.Record, where: str) -> bool:
    if rec.bool_value is None:
        raise ProtocolError("wrong_value_type", f"{where}: needs a boolean value 'vb'")
    return rec.bool_value


def parse_telemetry(
    clinic: str, device: str, payload: bytes | str, now: float, limits: Limits = Limits()
) -> Telemetry:
    try:
        pack = senml.loads(payload)
        if isinstance(pack, list) and len(pack) > limits.max_records:
            raise ProtocolError(
                "too_many_records", f"{len(pack)} records in one message, at most {limits.max_records}"
            )
        if isinstance(pack, list) and not pack:
            raise ProtocolError("empty_pack", "the message holds no records")
        records = senml.resolve(pack, now)
    except senml.SenMLError as exc:
        raise ProtocolError(exc.reason, exc.detail) from None

    prefix = f"urn:dev:{device}:"
    out = Telemetry(clinic, device)
    health: dict[float, HealthSample] = {}
    for i, rec in enumerate(records):
        name = rec.name
        if not name.startswith(prefix):
            if name.startswith("urn:dev:"):
                other = name[8:].split(":", 1)[0]
                raise ProtocolError(
                    "device_mismatch", f"record {i}: device {other!r:.70} in payload, {device!r} in topic"
                )
            raise ProtocolError("bad_name", f"record {i}: name {name!r:.80} does not start with {prefix!r}")
        key = name[len(prefix) :]
        where = f"record {i} ({key})"
        _check_time(rec.time, now, limits, where)
        if key == "mains":
            sample = health.get(rec.time) or health.setdefault(rec.time, HealthSample(rec.time))
            sample.mains_on = _boolean(rec, where)
        elif key == "battery":
            _unit(rec, "%EL", where)
            pct = _numeric(rec, where)
            if not 0.0 <= pct <= 100.0:
                raise ProtocolError("impossible_value", f"{where}: battery {pct} % is not within 0…100")
            sample = health.get(rec.time) or health.setdefault(rec.time, HealthSample(rec.time))
            sample.battery_pct = pct
        elif key == "rssi":
            _unit(rec, "dBm", where)
            dbm = _numeric(rec, where)
            if not -150.0 <= dbm <= 30.0:
                raise ProtocolError("impossible_value", f"{where}: rssi {dbm} dBm is not within −150…30")
            sample = health.get(rec.time) or health.setdefault(rec.time, HealthSample(rec.time))
            sample.rssi = dbm
        elif key.endswith(".door"):
            probe = key[:-5]
            if not PROBE_RE.match(probe):
                raise ProtocolError("bad_name", f"{where}: probe id {probe!r:.40} is not valid")
            out.doors.append(DoorReading(probe, rec.time, _boolean(rec, where)))
        elif PROBE_RE.match(key):
            _unit(rec, "Cel", where)
            celsius = _numeric(rec, where)
            if celsius < ABSOLUTE_ZERO_C:
                raise ProtocolError("impossible_value", f"{where}: {celsius} °C is below absolute zero")
            out.temperatures.append(TemperatureReading(key, rec.time, celsius, probe_fault(celsius)))
        else:
            raise ProtocolError(
                "unknown_measurement", f"{where}: {key!r:.60} is not a protocol v1 measurement"
            )
    out.health = list(health.values())
    return out


# ---------------------------------------------------------------- waste


class Stage(StrEnum):
    generated = "generated"
    collected = "collected"
    stored = "stored"
    handed_over = "handed_over"
    received = "received"
    disposed = "disposed"


class Category(StrEnum):
    infectious = "infectious"
    sharps = "sharps"
    pathological = "pathological"
    pharmaceutical = "pharmaceutical"
    chemical = "chemical"


STAGES_NEEDING_MANIFEST = {Stage.handed_over, Stage.received, Stage.disposed}
MAX_BAG_KG = 100.0
_WASTE_FIELDS = {
    "event_id",
    "bag_id",
    "stage",
    "category",
    "weight_kg",
    "ts",
    "operator",
    "manifest_id",
    "counterparty",
    "refused_kg",
    "refusal_reason",
    "vehicle",
}


@dataclass(frozen=True, slots=True)
class WasteEvent:
    event_id: str
    bag_id: str
    stage: Stage
    category: Category
    weight_kg: float
    ts: float
    operator: str
    manifest_id: str | None = None
    counterparty: str | None = None
    refused_kg: float | None = None
    refusal_reason: str | None = None
    vehicle: str | None = None  # the transporter's vehicle (number plate), on handed_over and received


def _text(
    obj: dict[str, Any], key: str, where: str, *, required: bool, pattern: re.Pattern[str] | None = None
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError("missing_field", f"{where}: '{key}' is required")
        return None
    if not isinstance(value, str):
        raise ProtocolError("wrong_value_type", f"{where}: '{key}' must be a string")
    if pattern is not None and not pattern.match(value):
        raise ProtocolError(
            "bad_value", f"{where}: '{key}' {value!r:.70} has characters that are not allowed"
        )
    if not value.strip() or len(value) > FREE_TEXT_MAX or any(c in value for c in "\r\n\t\x00"):
        raise ProtocolError("bad_value", f"{where}: '{key}' must be 1…{FREE_TEXT_MAX} printable characters")
    return value


def _num(obj: dict[str, Any], key: str, where: str, *, required: bool) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError("missing_field", f"{where}: '{key}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("not_a_number", f"{where}: '{key}' must be a number, not {value!r:.40}")
    if not math.isfinite(value):
        raise ProtocolError("not_a_number", f"{where}: '{key}' is not finite")
    return float(value)


def _waste_event(obj: Any, where: str, now: float, limits: Limits) -> WasteEvent:
    if not isinstance(obj, dict):
        raise ProtocolError("bad_record", f"{where} is not a JSON object")
    unknown = sorted(set(obj) - _WASTE_FIELDS)
    if unknown:
        raise ProtocolError("unknown_field", f"{where}: unknown field(s) {', '.join(unknown)[:80]}")
    event_id = _text(obj, "event_id", where, required=True, pattern=EVENT_ID_RE)
    bag_id = _text(obj, "bag_id", where, required=True, pattern=BAG_RE)
    try:
        stage = Stage(obj.get("stage"))
    except ValueError:
        raise ProtocolError(
            "bad_value", f"{where}: stage {obj.get('stage')!r:.40} is not a waste stage"
        ) from None
    try:
        category = Category(obj.get("category"))
    except ValueError:
        raise ProtocolError(
            "bad_value", f"{where}: category {obj.get('category')!r:.40} is not a waste category"
        ) from None
    weight = _num(obj, "weight_kg", where, required=True)
    assert weight is not None
    if not 0.0 < weight <= MAX_BAG_KG:
        raise ProtocolError(
            "impossible_value", f"{where}: weight {weight} kg is not within 0…{MAX_BAG_KG:.0f}"
        )
    ts = _num(obj, "ts", where, required=True)
    assert ts is not None
    _check_time(ts, now, limits, where)
    operator = _text(obj, "operator", where, required=True)
    needs_manifest = stage in STAGES_NEEDING_MANIFEST
    manifest_id = _text(obj, "manifest_id", where, required=needs_manifest)
    counterparty = _text(obj, "counterparty", where, required=needs_manifest)
    refused = _num(obj, "refused_kg", where, required=False)
    reason = _text(obj, "refusal_reason", where, required=False)
    if (refused is not None or reason is not None) and stage != Stage.received:
        raise ProtocolError("bad_value", f"{where}: only a 'received' event may carry a refusal")
    if refused is not None and not 0.0 <= refused <= weight:
        raise ProtocolError("impossible_value", f"{where}: refused {refused} kg is not within 0…{weight}")
    vehicle = _text(obj, "vehicle", where, required=False)
    if vehicle is not None and stage not in (Stage.handed_over, Stage.received):
        raise ProtocolError("bad_value", f"{where}: only 'handed_over' and 'received' events carry a vehicle")
    assert event_id is not None and bag_id is not None and operator is not None
    return WasteEvent(
        event_id,
        bag_id,
        stage,
        category,
        weight,
        ts,
        operator,
        manifest_id,
        counterparty,
        refused,
        reason,
        vehicle,
    )


def parse_waste(payload: bytes | str, now: float, limits: Limits = Limits()) -> list[WasteEvent]:
    try:
        doc = senml.loads(payload)
    except senml.SenMLError as exc:
        raise ProtocolError(exc.reason, exc.detail) from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise ProtocolError("empty_pack", "the message holds no waste events")
    if len(items) > limits.max_records:
        raise ProtocolError(
            "too_many_records", f"{len(items)} events in one message, at most {limits.max_records}"
        )
    where = "event" if not isinstance(doc, list) else "event {}"
    return [_waste_event(obj, where.format(i), now, limits) for i, obj in enumerate(items)]


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class Status:
    state: str  # online | offline
    fw: str | None
    ts: float | None
    buffered: int | None = None  # sampling instants waiting in the gateway's buffer when it sent this
    dropped: int | None = None  # sampling instants its full buffer had to drop, since it was installed


def parse_status(payload: bytes | str, now: float, limits: Limits = Limits()) -> Status:
    try:
        doc = senml.loads(payload)
    except senml.SenMLError as exc:
        raise ProtocolError(exc.reason, exc.detail) from None
    if not isinstance(doc, dict):
        raise ProtocolError("bad_record", "a status message is one JSON object")
    unknown = sorted(set(doc) - {"state", "fw", "ts", "buffered", "dropped"})
    if unknown:
        raise ProtocolError("unknown_field", f"status: unknown field(s) {', '.join(unknown)[:80]}")
    state = doc.get("state")
    if state not in ("online", "offline"):
        raise ProtocolError("bad_value", f"status: state {state!r:.30} is not 'online' or 'offline'")
    fw = _text(doc, "fw", "status", required=False)
    ts = _num(doc, "ts", "status", required=False)
    if ts is not None:
        _check_time(ts, now, limits, "status")
    return Status(state, fw, ts, _count(doc, "buffered"), _count(doc, "dropped"))


def _count(doc: dict[str, Any], key: str) -> int | None:
    """An optional whole number, 0 or more (a status message's ``buffered``, ``dropped``)."""
    value = _num(doc, key, "status", required=False)
    if value is None:
        return None
    if value < 0 or value != int(value) or value > 2**53:
        raise ProtocolError("impossible_value", f"status: {key} {value!r:.30} is not a whole number ≥ 0")
    return int(value)
