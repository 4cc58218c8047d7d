"""InfluxDB line protocol encoding (the v1 ``/write`` body) and InfluxQL quoting.

Escaping follows InfluxData's reference (checked against their line-protocol corpus in the tests):
- measurement: ``,`` and space;
- tag keys, tag values, field keys: ``,``, ``=`` and space;
- string field values: ``"`` and ``\\``.
Line breaks cannot be escaped in names or tags, and a backslash cannot be escaped at all, so
line breaks and a trailing backslash are refused; tags with empty values are
left out (InfluxDB rejects them). Floats are written with ``repr`` (shortest round-trip form), so a
value read back equals the value written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

FieldValue = float | int | bool | str

_MEAS = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR = str.maketrans({'"': r"\"", "\\": r"\\"})


class LineProtocolError(ValueError):
    pass


def _check_name(value: str, what: str) -> None:
    if not value:
        raise LineProtocolError(f"{what} is empty")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} {value!r:.60} contains a line break")


def escape_measurement(name: str) -> str:
    _check_name(name, "measurement")
    return name.translate(_MEAS)


def escape_key(key: str) -> str:
    """Tag key, tag value or field key."""
    _check_name(key, "key")
    if key.endswith("\\"):
        # line protocol has no escape for a backslash: a trailing one would escape the separator
        raise LineProtocolError(f"key or tag value {key!r:.60} ends with a backslash")
    return key.translate(_KEY)


def format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value} is not finite")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_STR) + '"'
    raise LineProtocolError(f"unsupported field type {type(value).__name__}")


def encode_line(
    measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, FieldValue | None], time: int
) -> str:
    """One point. ``time`` is an integer in the precision the write uses. Tags and fields whose value
    is None (or, for tags, empty) are left out; a point needs at least one field."""
    field_parts = [f"{escape_key(k)}={format_field(v)}" for k, v in fields.items() if v is not None]
    if not field_parts:
        raise LineProtocolError(f"point of {measurement!r} has no fields")
    return tag_prefix(measurement, tags) + " " + ",".join(field_parts) + f" {int(time)}"


def tag_prefix(measurement: str, tags: Mapping[str, str | None]) -> str:
    """The series key part of a line (measurement and tags), for callers that write many points of
    one series and want to escape it once."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):  # sorted tags are what InfluxDB stores: cheaper to index
        value = tags[key]
        if value:
            parts.append(f",{escape_key(key)}={escape_key(value)}")
    return "".join(parts)


# ---------------------------------------------------------------- InfluxQL


def quote_ident(name: str) -> str:
    """An identifier (database, measurement, tag or field key) as a double-quoted InfluxQL identifier."""
    if "\n" in name:
        raise LineProtocolError("identifier contains a line break")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    """A string as a single-quoted InfluxQL literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
