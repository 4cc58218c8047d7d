"""Grafana for the district bureau: provisioning and dashboard JSON (``provisioning/``, ``json/``), the
query expansion Grafana applies before it sends InfluxQL (``macros``) and ``chainwatch dashboards push``
(``push``). See docs/dashboards.md."""

from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "json"
PROVISIONING_DIR = Path(__file__).resolve().parent / "provisioning"
DATASOURCE_UID = "chainwatch-influx"
FOLDER_UID = "chainwatch"
FOLDER_TITLE = "ChainWatch 冷链与医疗废物"
