"""The dashboard JSON files as data: load them, walk their queries (panel targets, template variables,
annotations) the way the tests and ``chainwatch dashboards push`` need. Pure apart from reading the
files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards import DASHBOARD_DIR


@dataclass(frozen=True, slots=True)
class Query:
    """One InfluxQL query of a dashboard, and where it sits (for messages)."""

    dashboard: str  # uid
    where: str  # 'panel "..." target A', 'variable clinic', 'annotation "..."'
    text: str
    time_from: str | None = None  # the panel's relative-time override
    max_data_points: int | None = None
    min_interval: str | None = None


def dashboard_files(folder: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(folder.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    """One dashboard; a file that is not a JSON object is an error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name}: not a readable dashboard JSON file: {exc}") from None
    if not isinstance(data, dict) or "uid" not in data:
        raise ValueError(f"{path.name}: a dashboard is a JSON object with a uid")
    return data


def load_dashboards(folder: Path = DASHBOARD_DIR) -> list[dict[str, Any]]:
    return [load_dashboard(p) for p in dashboard_files(folder)]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def panel_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield Query(
                dashboard["uid"],
                f'panel "{p.get("title")}" target {t.get("refId")}',
                t.get("query", ""),
                p.get("timeFrom"),
                p.get("maxDataPoints"),
                p.get("interval") or None,
            )


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Query]]:
    for v in variables(dashboard):
        if v.get("type") == "query":
            yield v, Query(dashboard["uid"], f"variable {v['name']}", _query_text(v.get("query")))


def annotation_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("query"):
            yield Query(dashboard["uid"], f'annotation "{a.get("name")}"', a["query"])


def datasource_refs(dashboard: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, datasource reference) of every panel, target, variable and annotation that has one."""
    for p in panels(dashboard):
        if "datasource" in p:
            yield f'panel "{p.get("title")}"', p["datasource"]
        for t in p.get("targets", []):
            yield f'panel "{p.get("title")}" target {t.get("refId")}', t.get("datasource")
    for v in variables(dashboard):
        if v.get("type") == "query":
            yield f"variable {v['name']}", v.get("datasource")
    for a in dashboard.get("annotations", {}).get("list", []):
        if not a.get("builtIn"):
            yield f'annotation "{a.get("name")}"', a.get("datasource")


def _query_text(q: Any) -> str:
    # newer Grafana stores a variable's query as {"query": "...", "refId": ...}
    return str(q.get("query", "")) if isinstance(q, dict) else str(q or "")
