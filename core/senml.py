"""SenML JSON (RFC 8428) decoding: validation and resolution of a pack into records with absolute
names, times and values. Knows nothing about ChainWatch; ``core.protocol`` interprets the records.

Decisions where the RFC leaves room (see docs/protocol.md):
- a record must carry exactly one value (``v``/``bv``, ``vs``, ``vb``, ``vd``) unless it has a sum:
  the RFC's own actuator example (§5.1.7, a record with only ``bn``) is rejected, as §4.2 says;
- the version (``bver``) may be stated by the first record only and never changes within a pack;
- numbers must be finite and use a lower-case exponent (§5: JSON numbers as in RFC 8259, "e");
- labels ending in ``_`` are must-understand (§4.4): we understand none, so the pack is rejected;
  other unknown labels are ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-:./_]*\Z")
RELATIVE_TIME_LIMIT = 2**28  # §4.5.3: smaller times are relative to "now"
SENML_VERSION = 10

_NUMERIC_LABELS = ("bt", "bv", "bs", "bver", "t", "v", "s", "ut")
_STRING_LABELS = ("bn", "bu", "n", "u", "vs", "vd")


class SenMLError(ValueError):
    """A pack that is not valid SenML. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Record:
    """A resolved record (RFC 8428 §4.6): full name, absolute time, unit and exactly one value."""

    name: str
    time: float
    unit: str | None
    value: float | None = None
    string_value: str | None = None
    bool_value: bool | None = None
    data_value: str | None = None
    sum: float | None = None


def _reject_constant(token: str) -> Any:
    raise SenMLError("not_a_number", f"{token} is not a number JSON allows")


def _strict_float(token: str) -> float:
    if "E" in token:
        raise SenMLError("bad_number", f"number {token} uses an upper-case exponent (RFC 8428 §5)")
    return float(token)


def loads(payload: bytes | str) -> Any:
    """JSON as SenML requires it: UTF-8, finite numbers, lower-case exponents."""
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SenMLError("bad_json", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = payload
    try:
        if "E" in text:  # rare: only then pay for a per-number hook
            return _STRICT_DECODER.decode(text)
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise SenMLError("bad_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


# built once: json.loads with hooks builds a new decoder for every message
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_strict_float)


def _number(rec: dict[str, Any], label: str, index: int) -> float | None:
    value = rec.get(label)
    if value is None:
        if label in rec:
            raise SenMLError("not_a_number", f"record {index}: '{label}' is null")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SenMLError("not_a_number", f"record {index}: '{label}' must be a number, not {value!r:.40}")
    if not math.isfinite(value):
        raise SenMLError("not_a_number", f"record {index}: '{label}' is not finite")
    return float(value)


def _string(rec: dict[str, Any], label: str, index: int) -> str | None:
    value = rec.get(label)
    if value is None:
        if label in rec:
            raise SenMLError("bad_record", f"record {index}: '{label}' is null")
        return None
    if not isinstance(value, str):
        raise SenMLError("bad_record", f"record {index}: '{label}' must be a string, not {value!r:.40}")
    return value


def resolve(pack: Any, now: float) -> list[Record]:
    """Validate a decoded SenML pack and return its resolved records.

    ``now`` resolves relative times (§4.5.3): a resolved time below 2**28 is relative to ``now``.
    """
    if not isinstance(pack, list):
        raise SenMLError("not_a_pack", f"a SenML pack is a JSON array, got {type(pack).__name__}")
    out: list[Record] = []
    bn = ""
    bt = 0.0
    bu: str | None = None
    bv: float | None = None
    bs: float | None = None
    version: float | None = None
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise SenMLError("bad_record", f"record {i} is not a JSON object")
        for label in rec:
            if label.endswith("_"):
                raise SenMLError("must_understand", f"record {i}: label '{label}' must be understood")
        for label in _NUMERIC_LABELS:
            if label in rec:
                _number(rec, label, i)
        for label in _STRING_LABELS:
            if label in rec:
                _string(rec, label, i)
        if "bver" in rec:
            ver = float(rec["bver"])
            if ver > SENML_VERSION or ver < 1 or ver != int(ver):
                raise SenMLError("bad_version", f"record {i}: SenML version {rec['bver']} is not supported")
            if i > 0 and ver != version:
                raise SenMLError("bad_version", f"record {i}: version changes within the pack")
            version = ver
        if "bn" in rec:
            bn = rec["bn"]
        if "bt" in rec:
            bt = float(rec["bt"])
        if "bu" in rec:
            bu = rec["bu"]
        if "bv" in rec:
            bv = float(rec["bv"])
        if "bs" in rec:
            bs = float(rec["bs"])

        name = bn + rec.get("n", "")
        if not name:
            raise SenMLError("bad_name", f"record {i} has no name")
        if not NAME_RE.match(name):
            raise SenMLError("bad_name", f"record {i}: name {name!r:.80} is not a valid SenML name")

        # a record's own base value counts as its value (RFC 8428 §4.1, as farshidtz/senml reads it)
        value_kinds = ["v" in rec or "bv" in rec, "vs" in rec, "vb" in rec, "vd" in rec]
        n_values = sum(value_kinds)
        has_sum = "s" in rec or bs is not None
        if n_values > 1:
            raise SenMLError("multiple_values", f"record {i} ({name}) has more than one value field")
        if n_values == 0 and not has_sum:
            raise SenMLError("no_value", f"record {i} ({name}) has no value")
        if "vb" in rec and not isinstance(rec["vb"], bool):
            raise SenMLError("not_a_boolean", f"record {i} ({name}): 'vb' must be true or false")

        t = bt + (float(rec["t"]) if "t" in rec else 0.0)
        if t < RELATIVE_TIME_LIMIT:
            t = now + t
        value = None
        if "v" in rec:
            value = float(rec["v"]) + (bv or 0.0)
        elif "bv" in rec:
            value = bv
        total = None
        if "s" in rec:
            total = float(rec["s"]) + (bs or 0.0)
        elif bs is not None:
            total = bs
        if value is not None and not math.isfinite(value):
            raise SenMLError("not_a_number", f"record {i} ({name}): value is not finite")
        out.append(
            Record(
                name=name,
                time=t,
                unit=rec.get("u", bu),
                value=value,
                string_value=rec.get("vs"),
                bool_value=rec.get("vb"),
                data_value=rec.get("vd"),
                sum=total,
            )
        )
    return out
