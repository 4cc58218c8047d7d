"""Reader for the text export of a Berlinger Fridge-tag (2 L, Ultra Low, ...): the file a clinic gets
when the logger is plugged into a PC (WHO PQS E006 30-day temperature recorder).

The format, as seen in real exports (CRLF line ends, plain ASCII)::

    Device: Q-tag Fridge-tag 2 L          <- header lines
    Conf:                                 <- configuration: an indented tree of "key: value"
     Serial: 130500109088
     Alarm:
      0:                                  <- alarm 0 is the low alarm, 1 the high alarm
       T AL: +2.0, t AL: 60               <- several pairs on one line, separated by ", "
     Logging Interval: 5
    Hist:                                 <- the device's own daily summaries, newest first
     1:
      Date: 2022-06-08
      Min T: +4.0, TS Min T: 00:42
      ...
    Data:                                 <- one reading per line, tab separated
    \tyyyy-MM-dd hh:mm\tT\tOut of limits
    \t2022-05-02 04:44\t26.3\tx           <- "x": out of limits; "--.-": no reading
    Cert: / Sig: ...                      <- Berlinger's signature (kept out of the result)

Times carry no zone: they are the logger's local clock, returned as epoch seconds of that naive time
taken as UTC (use ``tz_offset_s=0`` for day boundaries). ``parse_fridgetag`` is pure;
``read_fridgetag`` only reads the file. Anything malformed raises ``FridgeTagError`` with a one-line
message naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

MISSING = "--.-"
_ROW_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})")
_TEMP = re.compile(r"[+-]?\d+(\.\d+)?")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


class FridgeTagError(ValueError):
    """The file is not a Fridge-tag text export we can read; the message says where and why."""


@dataclass(frozen=True)
class AlarmConfig:
    threshold_c: float
    delay_min: int


@dataclass(frozen=True)
class HistoryAlarm:
    """One alarm's day: ``t Acc`` (minutes out of range that day), ``TS A`` (local ``HH:MM`` the alarm
    was first active that day, absent when it was not), ``C A`` (the device's alarm counter flag)."""

    accumulated_min: int
    first_alarm: str | None = None
    ca: int | None = None


@dataclass(frozen=True)
class HistoryDay:
    date: str
    min_c: float | None
    min_time: str | None
    max_c: float | None
    max_time: str | None
    avg_c: float | None
    low: HistoryAlarm
    high: HistoryAlarm
    sensor_timeout_min: dict[str, int] = field(default_factory=dict)  # "Int Sensor" / "Ext Sensor"
    events: int | None = None


@dataclass(frozen=True, eq=False)
class FridgeTagLog:
    """A parsed export. ``times`` (epoch s of the naive local time as UTC), ``celsius`` and
    ``flagged`` (the device's "x") hold the rows that have a reading; ``missing`` counts ``--.-`` rows.
    ``history`` is in the file's order (newest day first)."""

    model: str
    firmware: str | None
    serial: str
    temp_unit: str
    interval_min: int
    low_alarm: AlarmConfig
    high_alarm: AlarmConfig
    activated: str | None
    report_created: str | None
    history: tuple[HistoryDay, ...]
    times: NDArray[np.float64]
    celsius: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    missing: int
    rows: int
    first_row: str | None
    last_row: str | None

    @property
    def interval_s(self) -> float:
        return self.interval_min * 60.0

    def history_by_date(self) -> dict[str, HistoryDay]:
        return {d.date: d for d in self.history}


@dataclass
class _Node:
    line: int
    path: str
    entries: dict[str, tuple[int, str | _Node]] = field(default_factory=dict)


def read_fridgetag(path: str | Path) -> FridgeTagLog:
    """Read and parse a Fridge-tag text export (the only I/O in this module)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise FridgeTagError(
            f"line {line}: byte {e.start} is not ASCII; not a Fridge-tag text export"
        ) from None
    return parse_fridgetag(text)


def parse_fridgetag(text: str) -> FridgeTagLog:
    lines = re.split(r"\r\n|\r|\n", text)  # CRLF as written by the device; LF or CR after an editor
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise FridgeTagError("line 1: empty file; not a Fridge-tag text export")
    root = _Node(line=0, path="")
    data_rows: list[tuple[int, str]] = []
    stack: list[tuple[int, _Node]] = [(-1, root)]
    in_data = False
    data_header_seen = False
    for no, line in enumerate(lines, start=1):
        if in_data and line.startswith("\t"):
            if not data_header_seen:
                if not line.strip().startswith("yyyy-MM-dd hh:mm"):
                    raise FridgeTagError(f"line {no}: expected the Data column header 'yyyy-MM-dd hh:mm ...'")
                data_header_seen = True
            else:
                data_rows.append((no, line))
            continue
        in_data = False
        if not line.strip():
            continue
        if "\t" in line:
            raise FridgeTagError(f"line {no}: tab outside the Data section")
        indent = len(line) - len(line.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        pairs = _split_pairs(line.strip(), no)
        for i, (key, value) in enumerate(pairs):
            if key in parent.entries:
                raise FridgeTagError(f"line {no}: '{key}' appears twice in {parent.path or 'the file'}")
            if value == "" and i == len(pairs) - 1:
                child = _Node(line=no, path=f"{parent.path}{key}/" if parent.path else f"{key}/")
                parent.entries[key] = (no, child)
                stack.append((indent, child))
                if parent is root and key == "Data":
                    in_data = True
            else:
                parent.entries[key] = (no, value)
    if "Data" not in root.entries:
        raise FridgeTagError(f"line {len(lines)}: no 'Data:' section; not a Fridge-tag text export")
    if not data_header_seen:
        raise FridgeTagError(f"line {root.entries['Data'][0]}: the Data section has no column header")
    return _build(root, data_rows)


def _split_pairs(text: str, no: int) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in text.split(", "):
        key, sep, value = part.partition(":")
        if not sep or not key.strip():
            raise FridgeTagError(f"line {no}: expected 'key: value', got '{_short(part)}'")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _build(root: _Node, data_rows: list[tuple[int, str]]) -> FridgeTagLog:
    model = _text(root, "Device")
    conf = _node(root, "Conf")
    unit_line, unit = _get(conf, "Temp unit")
    if unit != "C":
        raise FridgeTagError(
            f"line {unit_line}: temperature unit '{_short(str(unit))}' not supported (only C)"
        )
    alarms = _node(conf, "Alarm")
    low = _alarm_config(_node(alarms, "0"))
    high = _alarm_config(_node(alarms, "1"))
    if not low.threshold_c < high.threshold_c:
        raise FridgeTagError(
            f"line {alarms.line}: low alarm {low.threshold_c} is not below high alarm {high.threshold_c}"
        )
    interval = _int(conf, "Logging Interval")
    if interval <= 0:
        raise FridgeTagError(f"line {_get(conf, 'Logging Interval')[0]}: logging interval must be positive")
    hist = _node(root, "Hist")
    days: list[HistoryDay] = []
    for key, (no, value) in hist.entries.items():
        if key.isdigit():
            if not isinstance(value, _Node):
                raise FridgeTagError(f"line {no}: history entry '{key}' has no content")
            days.append(_history_day(value))
    times, celsius, flagged, missing, first, last = _data(data_rows)
    return FridgeTagLog(
        model=model,
        firmware=_opt_text(root, "Fw Vers"),
        serial=_text(conf, "Serial"),
        temp_unit=unit if isinstance(unit, str) else "C",
        interval_min=interval,
        low_alarm=low,
        high_alarm=high,
        activated=_opt_ts(hist, "TS Actv"),
        report_created=_opt_ts(hist, "TS Report Creation"),
        history=tuple(days),
        times=times,
        celsius=celsius,
        flagged=flagged,
        missing=missing,
        rows=len(data_rows),
        first_row=first,
        last_row=last,
    )


def _alarm_config(node: _Node) -> AlarmConfig:
    return AlarmConfig(threshold_c=_float(node, "T AL"), delay_min=_int(node, "t AL"))


def _history_day(node: _Node) -> HistoryDay:
    no, day = _get(node, "Date")
    if not isinstance(day, str) or not _DATE.fullmatch(day) or not _valid_date(day):
        raise FridgeTagError(f"line {no}: bad history date '{_short(str(day))}' (expected yyyy-mm-dd)")
    alarm = _opt_node(node, "Alarm")
    timeouts: dict[str, int] = {}
    for key, (_, value) in node.entries.items():
        if key.endswith("Sensor timeout") and isinstance(value, _Node):
            timeouts[key.removesuffix(" timeout")] = _int(value, "t AccST")
    return HistoryDay(
        date=day,
        min_c=_opt_float(node, "Min T"),
        min_time=_opt_hhmm(node, "TS Min T"),
        max_c=_opt_float(node, "Max T"),
        max_time=_opt_hhmm(node, "TS Max T"),
        avg_c=_opt_float(node, "Avrg T"),
        low=_history_alarm(alarm, "0"),
        high=_history_alarm(alarm, "1"),
        sensor_timeout_min=timeouts,
        events=_int(node, "Events") if "Events" in node.entries else None,
    )


def _history_alarm(alarm: _Node | None, key: str) -> HistoryAlarm:
    if alarm is None or key not in alarm.entries:
        return HistoryAlarm(accumulated_min=0)
    node = _node(alarm, key)
    return HistoryAlarm(
        accumulated_min=_int(node, "t Acc"),
        first_alarm=_opt_hhmm(node, "TS A"),
        ca=_int(node, "C A") if "C A" in node.entries else None,
    )


def _data(
    rows: list[tuple[int, str]],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], int, str | None, str | None]:
    times: list[float] = []
    temps: list[float] = []
    flags: list[bool] = []
    missing = 0
    for no, line in rows:
        parts = line.split("\t")
        if len(parts) not in (3, 4) or parts[0] != "":
            raise FridgeTagError(f"line {no}: expected '<TAB>yyyy-MM-dd hh:mm<TAB>T[<TAB>x]'")
        stamp, temp = parts[1], parts[2]
        flag = parts[3] if len(parts) == 4 else ""
        m = _ROW_TIME.fullmatch(stamp)
        if m is None:
            raise FridgeTagError(f"line {no}: bad time '{_short(stamp)}' (expected yyyy-MM-dd hh:mm)")
        try:
            year, month, day, hour, minute = (int(g) for g in m.groups())
            ts = datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
        except ValueError:
            raise FridgeTagError(f"line {no}: no such date or time '{stamp}'") from None
        if flag not in ("", "x"):
            raise FridgeTagError(
                f"line {no}: bad out-of-limits mark '{_short(flag)}' (expected x or nothing)"
            )
        if temp == MISSING:
            missing += 1
            continue
        if not _TEMP.fullmatch(temp):
            raise FridgeTagError(
                f"line {no}: bad temperature '{_short(temp)}' (expected e.g. 4.5 or {MISSING})"
            )
        times.append(ts)
        temps.append(float(temp))
        flags.append(flag == "x")
    t = np.array(times, dtype=np.float64)
    c = np.array(temps, dtype=np.float64)
    f = np.array(flags, dtype=np.bool_)
    for a in (t, c, f):
        a.flags.writeable = False
    first = rows[0][1].split("\t")[1] if rows else None
    last = rows[-1][1].split("\t")[1] if rows else None
    return t, c, f, missing, first, last


# --- tree access with line numbers in every error ---------------------------------------------------


def _get(node: _Node, key: str) -> tuple[int, str | _Node]:
    if key not in node.entries:
        where = node.path.rstrip("/") or "the header"
        raise FridgeTagError(f"line {node.line}: '{key}' missing in {where}")
    return node.entries[key]


def _node(node: _Node, key: str) -> _Node:
    no, value = _get(node, key)
    if not isinstance(value, _Node):
        raise FridgeTagError(f"line {no}: '{key}' should be a section, got a value")
    return value


def _opt_node(node: _Node, key: str) -> _Node | None:
    return _node(node, key) if key in node.entries else None


def _text(node: _Node, key: str) -> str:
    no, value = _get(node, key)
    if not isinstance(value, str) or not value:
        raise FridgeTagError(f"line {no}: '{key}' has no value")
    return value


def _opt_text(node: _Node, key: str) -> str | None:
    return _text(node, key) if key in node.entries else None


def _float(node: _Node, key: str) -> float:
    no, value = _get(node, key)
    if not isinstance(value, str) or not _TEMP.fullmatch(value):
        raise FridgeTagError(f"line {no}: '{key}' should be a number, got '{_short(str(value))}'")
    return float(value)


def _opt_float(node: _Node, key: str) -> float | None:
    return _float(node, key) if key in node.entries else None


def _int(node: _Node, key: str) -> int:
    no, value = _get(node, key)
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?\d+", value):
        raise FridgeTagError(f"line {no}: '{key}' should be a whole number, got '{_short(str(value))}'")
    return int(value)


def _opt_hhmm(node: _Node, key: str) -> str | None:
    if key not in node.entries:
        return None
    no, value = node.entries[key]
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise FridgeTagError(f"line {no}: '{key}' should be hh:mm, got '{_short(str(value))}'")
    return value


def _opt_ts(node: _Node, key: str) -> str | None:
    if key not in node.entries:
        return None
    no, value = node.entries[key]
    if not isinstance(value, str) or not _TS.fullmatch(value):
        raise FridgeTagError(f"line {no}: '{key}' should be yyyy-mm-dd hh:mm, got '{_short(str(value))}'")
    return value


def _valid_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _short(text: str, limit: int = 40) -> str:
    text = text.replace("\r", "\\r").replace("\t", "\\t")
    return text if len(text) <= limit else text[: limit - 3] + "..."
