"""``chainwatch dashboards push --url URL --token TOKEN``: put the ChainWatch dashboards and the alert
history into a Grafana that was not provisioned from dashboards/provisioning/ (an existing district
Grafana), through its HTTP API with the ``grafana-client`` package.

What it does, each step a progress line on stdout:

1. the folder ``chainwatch`` ("ChainWatch 冷链与医疗废物"), created when missing;
2. every dashboard JSON of dashboards/json/, uploaded into that folder with ``overwrite: true`` (same
   uid, so a push replaces the previous version; the Grafana keeps the history);
3. one region annotation per alert of the alert store (SQL, not InfluxDB: it knows when each alert
   started and was resolved, while InfluxDB holds only its changes), on the district overview, tagged
   ``chainwatch``, ``alert:{id}``, rule, severity and clinic. An alert pushed before is not added again;
   its end is updated when it has been resolved since.

The dashboards need a data source with uid ``chainwatch-influx`` in that Grafana (see
docs/dashboards.md). Errors are one line (``PushError``), e.g. a bad token: "Grafana refused the token
(401): check --token".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from dashboards import FOLDER_TITLE, FOLDER_UID

ANNOTATION_DASHBOARD = "cw-overview"
TAG = "chainwatch"


class PushError(RuntimeError):
    """A push that could not be completed: one line for the user."""


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """One alert as an annotation: from its start to its resolution (open: no end)."""

    alert_id: str
    rule: str
    severity: str
    clinic: str | None
    subject: str
    started_at: float
    resolved_at: float | None
    message: str
    message_en: str


class _Api(Protocol):  # the part of grafana_client.GrafanaApi we use
    folder: Any
    dashboard: Any
    annotations: Any


def annotation_tags(a: AlertSpan) -> list[str]:
    return [TAG, f"alert:{a.alert_id}", a.rule, a.severity, *([a.clinic] if a.clinic else [])]


def annotation_text(a: AlertSpan) -> str:
    return f"{a.message}\n{a.message_en}\n({a.rule}, {a.severity}, {a.subject})"


def upload_body(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``: the dashboard without its numeric id (a Grafana
    assigns its own; the uid identifies it), into our folder, replacing what has that uid."""
    clean = {k: v for k, v in dashboard.items() if k != "id"}
    return {
        "dashboard": clean,
        "folderUid": FOLDER_UID,
        "overwrite": True,
        "message": "chainwatch dashboards push",
    }


def push(
    url: str,
    token: str,
    dashboards: Iterable[dict[str, Any]],
    alerts: Iterable[AlertSpan],
    out: TextIO,
    *,
    connect: Callable[[str, str], _Api] | None = None,
) -> None:
    """Folder, dashboards, annotations; raises PushError with one line on the first failure."""
    api = (connect or _connect)(url, token)
    step = f"creating the folder {FOLDER_UID}"
    try:
        print(f"folder {FOLDER_UID}: {_ensure_folder(api)}", file=out, flush=True)
        for d in dashboards:
            step = f"uploading the dashboard {d.get('uid')}"
            resp = api.dashboard.update_dashboard(upload_body(d)) or {}
            print(
                f"dashboard {d.get('uid')} ({d.get('title')}): uploaded, version {resp.get('version', '?')}",
                file=out,
                flush=True,
            )
        step = "writing the alert annotations"
        added, updated, kept = _push_annotations(api, list(alerts))
        print(
            f"annotations on {ANNOTATION_DASHBOARD}: {added} added, {updated} updated, {kept} already there",
            file=out,
            flush=True,
        )
    except GrafanaUnauthorizedError:
        raise PushError("Grafana refused the token (401): check --token") from None
    except GrafanaTimeoutError as exc:
        raise PushError(f"Grafana at {url} did not answer in time while {step}: {exc.message}") from None
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise PushError(
                f"Grafana refused {step} (403): the token's service account needs the Editor role"
            ) from None
        raise PushError(f"Grafana refused {step} ({exc.status_code}): {_short(exc)}") from None
    except GrafanaServerError as exc:
        raise PushError(f"Grafana failed while {step} ({exc.status_code}): {_short(exc)}") from None
    except GrafanaException as exc:  # no HTTP answer at all
        raise PushError(f"cannot reach Grafana at {url}: {_short(exc)}") from None
    except OSError as exc:  # the HTTP library's connection errors (refused, no such host, TLS)
        raise PushError(f"cannot reach Grafana at {url} while {step}: {_reason(exc)}") from None


def _connect(url: str, token: str) -> _Api:
    if not url.startswith(("http://", "https://")):
        raise PushError(f"--url {url!r} is not an http(s) URL, e.g. http://grafana.example:3000")
    api: _Api = GrafanaApi.from_url(url, credential=token, timeout=10.0)
    return api


def _ensure_folder(api: _Api) -> str:
    try:
        api.folder.get_folder(FOLDER_UID)
        return "exists"
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    return "created"


def _push_annotations(api: _Api, alerts: list[AlertSpan]) -> tuple[int, int, int]:
    if not alerts:
        return 0, 0, 0
    start_ms = int(min(a.started_at for a in alerts) * 1000)
    found = api.annotations.find_annotations(
        time_from=start_ms, dashboard_uid=ANNOTATION_DASHBOARD, tags=[TAG], limit=100_000
    )
    existing: dict[str, dict[str, Any]] = {}
    for ann in found or []:
        for tag in ann.get("tags", []):
            if tag.startswith("alert:"):
                existing[tag.removeprefix("alert:")] = ann
    added = updated = kept = 0
    for a in alerts:
        start, end = int(a.started_at * 1000), _end_ms(a)
        old = existing.get(a.alert_id)
        if old is None:
            api.annotations.add_annotation(
                dashboard_uid=ANNOTATION_DASHBOARD,
                time_from=start,
                time_to=end,
                tags=annotation_tags(a),
                text=annotation_text(a),
            )
            added += 1
        elif int(old.get("timeEnd") or 0) != end:
            api.annotations.update_annotation(
                old["id"], time_from=start, time_to=end, tags=annotation_tags(a), text=annotation_text(a)
            )
            updated += 1
        else:
            kept += 1
    return added, updated, kept


def _end_ms(a: AlertSpan) -> int:
    # Grafana stores a point annotation with timeEnd = time
    return int((a.resolved_at if a.resolved_at is not None else a.started_at) * 1000)


def _reason(exc: OSError) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return m.group(1).strip() if m else " ".join(text.split())[:200]


def _short(exc: GrafanaException) -> str:
    return " ".join(str(exc.message).split())[:200]


def alerts_since(sql_url: str, since: float) -> list[AlertSpan]:
    """The alerts of the alert store that started at or after ``since``, or are still open."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import Session

    from alerting.store import AlertRow, init_alert_tables
    from core.db import make_engine

    engine = make_engine(sql_url)
    try:
        init_alert_tables(engine)
        with Session(engine) as s:
            rows = s.scalars(
                select(AlertRow)
                .where(or_(AlertRow.started_at >= since, AlertRow.resolved_at.is_(None)))
                .order_by(AlertRow.started_at)
            ).all()
            return [
                AlertSpan(
                    r.id,
                    r.rule,
                    r.severity,
                    r.clinic,
                    r.subject,
                    r.started_at,
                    r.resolved_at,
                    r.message,
                    r.message_en,
                )
                for r in rows
            ]
    finally:
        engine.dispose()
