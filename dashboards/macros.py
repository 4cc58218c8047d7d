"""What Grafana does to a raw InfluxQL query of our dashboards before InfluxDB sees it, as a pure
function, so that tests run exactly the text Grafana would send (tests/e2e/test_dashboards.py).

Two steps, as in Grafana (8 and later, where InfluxQL queries go through its backend):

1. the browser replaces template variables (``$clinic``, ``${clinic}``, ``${clinic:regex}``,
   ``[[clinic]]``). A multi-value or "All" variable becomes its values regex-escaped and joined as
   ``(a|b)`` (one value: just that value, escaped); "All" with a custom ``allValue`` becomes that value
   as it is; a single-value variable used inside a ``=~ /.../`` regex is escaped, elsewhere it is put in
   as it is. ``:regex`` always escapes, ``:raw`` never does.
2. the backend replaces ``$timeFilter`` with ``time >= {from}ms and time <= {to}ms``, ``$interval`` and
   ``$__interval`` with the interval text (``5m``, ``1h``, ``1d``) and ``$__interval_ms`` with its
   milliseconds. The interval is the range divided by the panel's data points, rounded to Grafana's
   steps, and never below the data source's (or the panel's) minimum interval.

Time ranges use Grafana's relative syntax (``now-24h``, ``now/d``, ``now/M``); days and months are
rounded in the dashboard's time zone (``tz_offset_s``: the clinics' UTC+8 by default). A variable the
query names and ``variables`` does not hold is an error here (Grafana would send ``$name`` on and
InfluxDB would reject it).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.clinic_time import CLINIC_UTC_OFFSET_S

MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_RELATIVE = re.compile(r"^now(?:-(\d+)(ms|s|m|h|d|w|M|y))?(?:/([dwMy]))?$")
# Grafana's templateSrv: $var, [[var]], [[var:format]], ${var}, ${var:format}
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")
# a regex literal after =~ or !~, as Grafana's InfluxQL data source looks for it
_REGEX_CONTEXT = re.compile(r"[=!]~\s*/((?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)/")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_BACKEND = ("timeFilter", "__timeFilter", "interval", "__interval", "__interval_ms")
# Grafana's rangeutil.roundInterval: (below this many ms, use this interval)
_STEPS = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10_000), (17500, 15_000), (25000, 20_000), (45000, 30_000), (90000, 60_000),
    (210_000, 120_000), (450_000, 300_000), (780_000, 600_000), (1_200_000, 900_000),
    (2_700_000, 1_200_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000),
    (32_400_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip
_YEAR_MS = 31_536_000_000


class ExpandError(ValueError):
    """A query that Grafana could not turn into valid InfluxQL (e.g. it names an unknown variable)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """An absolute range in epoch milliseconds, as Grafana's backend receives it."""

    from_ms: int
    to_ms: int

    @property
    def span_ms(self) -> int:
        return self.to_ms - self.from_ms


@dataclass(frozen=True, slots=True)
class Selection:
    """What is selected in one template variable: its values (all the options' values when "All" is
    selected), and how the variable is defined."""

    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False
    all_selected: bool = False
    all_value: str | None = None


def parse_time(raw: str | int, now_ms: int, *, round_up: bool, tz_offset_s: int = CLINIC_UTC_OFFSET_S) -> int:
    """Grafana's dateMath: ``now``, ``now-6h``, ``now-7d/d``, ``now/M`` or epoch milliseconds."""
    if isinstance(raw, int) or str(raw).isdigit():
        return int(raw)
    m = _RELATIVE.match(str(raw).strip())
    if not m:
        raise ExpandError(f"{raw!r} is not a Grafana time (now, now-6h, now/d, now-7d/d, epoch ms)")
    amount, unit, round_to = m.groups()
    local = datetime.fromtimestamp(now_ms / 1000, UTC) + timedelta(seconds=tz_offset_s)
    if amount:
        local = _minus(local, int(amount), unit)
    if round_to:
        local = _round(local, round_to, round_up)
    return round((local - timedelta(seconds=tz_offset_s)).timestamp() * 1000)


def _minus(t: datetime, n: int, unit: str) -> datetime:
    if unit == "M":
        months = t.year * 12 + t.month - 1 - n
        year, month = divmod(months, 12)
        return t.replace(year=year, month=month + 1, day=min(t.day, calendar.monthrange(year, month + 1)[1]))
    if unit == "y":
        return t.replace(year=t.year - n)
    return t - timedelta(milliseconds=n * MS[unit])


def _round(t: datetime, unit: str, up: bool) -> datetime:
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        start, end = day, day + timedelta(days=1)
    elif unit == "w":  # Grafana's weeks start on Monday by default (ISO)
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif unit == "M":
        start = day.replace(day=1)
        end = _minus(start, -1, "M")
    else:
        start = day.replace(month=1, day=1)
        end = start.replace(year=start.year + 1)
    return end - timedelta(milliseconds=1) if up else start


def resolve_range(
    from_raw: str | int, to_raw: str | int, now_ms: int, tz_offset_s: int = CLINIC_UTC_OFFSET_S
) -> TimeRange:
    return TimeRange(
        parse_time(from_raw, now_ms, round_up=False, tz_offset_s=tz_offset_s),
        parse_time(to_raw, now_ms, round_up=True, tz_offset_s=tz_offset_s),
    )


def panel_range(
    dashboard: tuple[str, str], time_from: str | None, now_ms: int, tz_offset_s: int = CLINIC_UTC_OFFSET_S
) -> TimeRange:
    """The range a panel queries: the dashboard's, or up to now from the panel's "relative time"
    override (``timeFrom``: ``30d`` means now-30d, ``now/M`` this month so far, ``now-30d/d`` the last 30
    days from their first midnight), as Grafana's describeTextRange reads it."""
    if not time_from:
        return resolve_range(*dashboard, now_ms, tz_offset_s)
    start = time_from if "now" in time_from else f"now-{time_from}"
    return resolve_range(start, "now", now_ms, tz_offset_s)


def parse_duration_ms(text: str) -> int:
    """``60s``, ``5m``, ``>1m`` (Grafana's "at least") -> milliseconds."""
    m = re.fullmatch(r">?\s*(\d+)(ms|s|m|h|d|w)", text.strip())
    if not m:
        raise ExpandError(f"{text!r} is not an interval (e.g. 60s, 5m, 1h)")
    return int(m.group(1)) * MS[m.group(2)]


def round_interval_ms(ms: float) -> int:
    return next((step for below, step in _STEPS if ms < below), _YEAR_MS)


def format_interval(ms: int) -> str:
    """Grafana's gtime.FormatInterval: the largest whole unit (``1d``, ``12h``, ``5m``, ``500ms``)."""
    for unit, size in (("y", _YEAR_MS), ("d", MS["d"]), ("h", MS["h"]), ("m", MS["m"]), ("s", MS["s"])):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{max(ms, 1)}ms"


def interval_ms(rng: TimeRange, max_data_points: int, min_interval: str | None = None) -> int:
    """``$__interval`` in ms: the range over the data points, rounded, at least ``min_interval``."""
    floor = parse_duration_ms(min_interval) if min_interval else 0
    return max(round_interval_ms(rng.span_ms / max(max_data_points, 1)), floor)


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _in_regex(query: str, start: int) -> bool:
    return any(m.start(1) <= start < m.end(1) for m in _REGEX_CONTEXT.finditer(query))


def format_value(sel: Selection, fmt: str | None, *, in_regex: bool) -> str:
    if sel.all_selected and sel.all_value is not None:
        return sel.all_value  # Grafana puts a custom "All" value in as it is, whatever the format
    if fmt not in (None, "regex", "raw"):
        raise ExpandError(f"variable format {fmt!r} is not one our dashboards use (regex, raw)")
    values = list(sel.values)
    if fmt == "raw" or not (fmt == "regex" or sel.multi or sel.include_all or in_regex):
        return ",".join(values)
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand_variables(query: str, variables: Mapping[str, Selection]) -> str:
    """Step 1 (the browser): template variables. The backend's macros are left for ``expand``."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in _BACKEND:
            return m.group(0)
        if name not in variables:
            raise ExpandError(f"the query names ${name}, which is not a template variable of the dashboard")
        return format_value(variables[name], fmt, in_regex=_in_regex(query, m.start()))

    return _VARIABLE.sub(replace, query)


def expand_macros(query: str, rng: TimeRange, interval: int) -> str:
    """Step 2 (Grafana's backend): time filter and interval, in the order Grafana replaces them."""
    text = format_interval(interval)
    time_filter = f"time >= {rng.from_ms}ms and time <= {rng.to_ms}ms"
    query = query.replace("$__timeFilter", time_filter).replace("$timeFilter", time_filter)
    query = query.replace("$interval", text)
    query = query.replace("$__interval_ms", str(interval)).replace("${__interval_ms}", str(interval))
    return query.replace("$__interval", text).replace("${__interval}", text)


def expand(
    query: str,
    *,
    variables: Mapping[str, Selection],
    rng: TimeRange,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> str:
    """The InfluxQL Grafana sends for ``query`` with this selection, range and panel width."""
    return expand_macros(
        expand_variables(query, variables), rng, interval_ms(rng, max_data_points, min_interval)
    )


def variable_order(templating: Sequence[Mapping[str, object]]) -> list[str]:
    """The dashboard's variable names in the order Grafana resolves them (the order listed)."""
    return [str(v["name"]) for v in templating]
