"""Alert changes as what the two sinks take: an InfluxDB line of the ``alert`` measurement (DESIGN §4)
and a JSON event on ``cw/v1/{clinic}/alerts`` (DESIGN §3). Pure converters; the I/O is elsewhere.

Point time: the change's time in nanoseconds, at millisecond precision (the precision of a decision's
identity) plus a per-kind offset of a few nanoseconds. Writing the same change twice writes the same
point (a replay is harmless), while two changes of one alert at the same millisecond and with the same
tags (fired and updated, say) stay two points instead of the second overwriting the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from alerting.lifecycle import AlertChange
from alerting.rules.types import iso
from alerting.store import EventKind
from core.ids import ID_RE
from core.lineprotocol import encode_line

if TYPE_CHECKING:
    from core.registry_model import RegistryFile

ALERT_MEASUREMENT = "alert"
_KIND_OFFSET_NS = {kind: i for i, kind in enumerate(EventKind)}


def change_time_ns(change: AlertChange) -> int:
    return round(change.at * 1000) * 1_000_000 + _KIND_OFFSET_NS[EventKind(change.kind)]


def _one_line(text: str) -> str:
    return " ".join(text.split())  # line protocol cannot carry a line break


def alert_line(change: AlertChange, tags: Mapping[str, str | None]) -> str:
    """One ``alert`` point. ``tags`` gives ``district`` and ``township`` (and ``clinic`` when the change
    has none), e.g. from ``alert_tags``; tags that are missing or empty are left out."""
    point_tags = {
        "district": tags.get("district"),
        "township": tags.get("township"),
        "clinic": change.clinic or tags.get("clinic"),
        "rule": change.rule,
        "severity": str(change.severity),
    }
    fields = {
        "alert_id": change.alert_id,
        "state": str(change.state),
        "subject": change.subject,
        "message": _one_line(change.message),
    }
    return encode_line(ALERT_MEASUREMENT, point_tags, fields, change_time_ns(change))


def alert_topic(clinic: str) -> str:
    if not ID_RE.match(clinic or ""):
        raise ValueError(f"clinic id {clinic!r:.80} does not match [a-z0-9][a-z0-9-]{{0,63}}")
    return f"cw/v1/{clinic}/alerts"


def alert_event(change: AlertChange) -> dict[str, Any]:
    return {
        "id": change.alert_id,
        "clinic": change.clinic,
        "subject": change.subject,
        "rule": change.rule,
        "severity": str(change.severity),
        "state": str(change.state),
        "event": str(change.kind),
        "message": {"zh-CN": change.message, "en": change.message_en},
        "time": iso(change.at),
        "started_at": iso(change.started_at),
    }


def alert_payload(change: AlertChange) -> bytes:
    """The MQTT payload: compact UTF-8 JSON (Chinese as it is, not as \\u escapes)."""
    return json.dumps(alert_event(change), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def alert_tags(reg: RegistryFile) -> dict[str, dict[str, str]]:
    """clinic id -> the location tags of its alert points."""
    return {
        c.id: {"district": reg.district.id, "township": t.id, "clinic": c.id}
        for t, c in reg.clinic_townships()
    }
