"""docker-compose.yml, checked by the real ``docker-compose config`` (Debian's package) with
``.env.example`` as the .env, and then for what matters in production: state in named volumes, health
checks that gate the start order, pinned images, no secret in the file, no container holding another
server's secret, the broker's plain port not published, and a .env.example that lists every setting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core import mosquitto_auth
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_SERVICES = ("collector", "alerting", "web")
STATE = {  # service -> where its state lives in the container
    "mosquitto": "/mosquitto/data",
    "influxdb": "/var/lib/influxdb",
    "grafana": "/var/lib/grafana",
    "collector": "/data",
    "alerting": "/data",
    "web": "/data",
}
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")
# variables docker-compose.yml reads that are not ChainWatch settings (core/settings.py)
COMPOSE_ONLY = {
    "CHAINWATCH_INFLUX_ADMIN_USER",
    "CHAINWATCH_INFLUX_ADMIN_PASSWORD",
    "CHAINWATCH_GRAFANA_INFLUX_USERNAME",
    "CHAINWATCH_GRAFANA_INFLUX_PASSWORD",
    "CHAINWATCH_GRAFANA_ADMIN_PASSWORD",
    "CHAINWATCH_GRAFANA_ROOT_URL",
    "CHAINWATCH_GRAFANA_PUBLISH",
    "CHAINWATCH_WEB_PUBLISH",
    "CHAINWATCH_MQTT_TLS_PUBLISH",
    "CHAINWATCH_MQTT_AUTH_DIR",
    "CHAINWATCH_MQTT_CERTS_DIR",
    "CHAINWATCH_DEMO_CLINICS",
    *mosquitto_auth.SERVICE_ACCOUNTS.values(),
}


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not installed: run `chainwatch services install` (Debian's docker-compose)"
    return exe


def _config(tmp: Path, env: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` on a copy of docker-compose.yml with ``env`` as its .env."""
    tmp.mkdir(exist_ok=True)
    shutil.copy(COMPOSE, tmp / "docker-compose.yml")
    (tmp / ".env").write_text(env)
    return subprocess.run(
        [_docker_compose(), *args, "config"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    proc = _config(tmp_path_factory.mktemp("compose"), ENV_EXAMPLE.read_text(), "--profile", "demo")
    assert proc.returncode == 0, f"docker-compose config failed: {proc.stderr}"
    return yaml.safe_load(proc.stdout)


def test_docker_compose_config_accepts_the_file_with_env_example(resolved) -> None:
    assert set(resolved["services"]) == {*STATE, "simulator"}


def test_every_stateful_service_keeps_its_state_in_a_named_volume(resolved) -> None:
    named = set(resolved.get("volumes") or {})
    for service, path in STATE.items():
        mounts = [str(v).split(":") for v in resolved["services"][service].get("volumes", [])]
        sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == path]
        assert sources and sources[0] in named, f"{service}: {path} is not on a named volume ({mounts})"
    app = {tuple(str(v).split(":")[:2]) for v in resolved["services"]["collector"]["volumes"]}
    for service in APP_SERVICES:  # one SQLite file, spool and ack-link key for the three
        assert {tuple(str(v).split(":")[:2]) for v in resolved["services"][service]["volumes"]} == app


def test_health_checks_gate_the_start_order(resolved) -> None:
    services = resolved["services"]
    for name in STATE:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}: {cond}"
    assert set(services["collector"]["depends_on"]) == {"mosquitto", "influxdb"}
    assert {"mosquitto", "influxdb"} <= set(services["alerting"]["depends_on"])
    assert "influxdb" in services["grafana"]["depends_on"]


def test_images_are_pinned_and_the_services_share_one_built_image(resolved) -> None:
    services = resolved["services"]
    for name in ("mosquitto", "influxdb", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), f"{name}: {image} is not a pinned version"
    assert services["influxdb"]["image"].startswith("influxdb:1.")  # the v1 API the tests use
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:")
    images = {services[n]["image"] for n in (*APP_SERVICES, "simulator")}
    assert len(images) == 1 and all(services[n].get("build") for n in APP_SERVICES)
    assert services["simulator"].get("profiles") == ["demo"]
    commands = {n: services[n]["command"][0] for n in (*APP_SERVICES, "simulator")}
    assert commands == {
        "collector": "collector",
        "alerting": "alerting",
        "web": "web",
        "simulator": "simulate",
    }


def _targets(service: dict[str, Any]) -> set[int]:
    """The container ports a service publishes on the host."""
    out = set()
    for p in service.get("ports", []):
        out.add(int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[-1].split("/")[0]))
    return out


def test_only_the_tls_listener_web_and_grafana_are_published(resolved) -> None:
    published = {n: _targets(s) for n, s in resolved["services"].items()}
    assert published == {
        "mosquitto": {8883},  # never the plain 1883
        "influxdb": set(),
        "grafana": {3000},
        "collector": set(),
        "alerting": set(),
        "web": {8080},
        "simulator": set(),
    }
    assert resolved["networks"]["backend"].get("internal") is True
    assert set(resolved["services"]["influxdb"]["networks"]) == {"backend"}


def test_grafana_mounts_the_agreed_dashboard_paths(resolved) -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in resolved["services"]["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"].endswith("/dashboards/provisioning")
    assert mounts["/var/lib/grafana/dashboards"].endswith("/dashboards/json")


def test_grafana_gets_every_variable_its_data_source_reads(resolved) -> None:
    env = resolved["services"]["grafana"]["environment"]
    files = sorted((ROOT / "dashboards" / "provisioning" / "datasources").glob("*.yaml"))
    assert files, "no Grafana data source in dashboards/provisioning/datasources/"
    wanted = {v for f in files for v in re.findall(r"\$\{?(CHAINWATCH_[A-Z0-9_]+)", f.read_text())}
    assert wanted and wanted <= set(env), f"not set for Grafana: {sorted(wanted - set(env))}"
    assert env["CHAINWATCH_INFLUX_URL"] == "http://influxdb:8086"


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_no_secret_is_written_in_the_compose_file() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())  # before interpolation
    secrets = [(p, v) for p, v in _walk(raw) if SECRET_KEY.search(p.rsplit(".", 1)[-1])]
    assert len(secrets) >= 8
    for path, value in secrets:
        assert value == "" or re.fullmatch(r"\$\{CHAINWATCH_[A-Z_]+(:\?[^}]*)?\}", str(value)), (path, value)
    text = COMPOSE.read_text()
    for literal in ("change-me", "BEGIN PRIVATE KEY", "-P secret"):
        assert literal not in text


def test_no_container_gets_another_servers_secret(tmp_path) -> None:
    env = _env_values(ENV_EXAMPLE.read_text())
    marked = {k: f"{k.lower()}-value" if SECRET_KEY.search(k) else v for k, v in env.items()}
    proc = _config(tmp_path, "".join(f"{k}={v}\n" for k, v in marked.items()))
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    own = {  # the secrets each container needs
        "collector": {"CHAINWATCH_INFLUX_PASSWORD", "CHAINWATCH_MQTT_COLLECTOR_PASSWORD"},
        "alerting": {"CHAINWATCH_INFLUX_PASSWORD", "CHAINWATCH_MQTT_ALERTING_PASSWORD"},
        "web": {"CHAINWATCH_INFLUX_PASSWORD"},
    }
    for name, needs in own.items():
        values = set((services[name].get("environment") or {}).values())
        held = {k for k in marked if SECRET_KEY.search(k) and marked[k] in values}
        assert held == needs, f"{name} holds {sorted(held)}"
    assert services["collector"]["environment"]["CHAINWATCH_MQTT_USERNAME"] == mosquitto_auth.COLLECTOR
    assert services["alerting"]["environment"]["CHAINWATCH_MQTT_USERNAME"] == mosquitto_auth.ALERTING
    hc = " ".join(services["mosquitto"]["healthcheck"]["test"])
    assert f"-u {mosquitto_auth.HEALTHCHECK}" in hc and mosquitto_auth.HEALTHCHECK_TOPIC in hc.replace(
        "$$", "$"
    )


def test_a_missing_secret_stops_docker_compose_with_its_name(tmp_path) -> None:
    env = ENV_EXAMPLE.read_text()
    without = re.sub(r"(?m)^CHAINWATCH_INFLUX_PASSWORD=.*$", "", env)
    proc = _config(tmp_path, without)
    assert proc.returncode != 0
    assert "CHAINWATCH_INFLUX_PASSWORD" in proc.stderr


def test_env_example_lists_every_setting_and_holds_no_real_secret() -> None:
    text = ENV_EXAMPLE.read_text()
    named = set(re.findall(r"(?m)^#?\s*(CHAINWATCH_[A-Z0-9_]+)=", text))
    settings = {f"CHAINWATCH_{name.upper()}" for name in Settings.model_fields}
    assert settings - named == set(), "settings missing from .env.example"
    assert named - settings - COMPOSE_ONLY == set(), "unknown variables in .env.example"
    compose_vars = set(re.findall(r"\$\{(CHAINWATCH_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert compose_vars - named == set(), "docker-compose.yml reads variables .env.example does not show"
    for key, value in _env_values(text).items():
        if SECRET_KEY.search(key):
            assert value == "" or value.startswith("change-me"), f"{key} looks like a real secret"


def test_dockerfile_builds_a_non_root_image_with_the_cjk_font() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim", text)
    assert "fonts-wqy-zenhei" in text and re.search(r"(?m)^RUN pip install \.", text)
    users = re.findall(r"(?m)^USER (\S+)", text)
    assert users and users[-1] not in ("root", "0")
    ignored = [
        ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    assert ignored[0] == "*"  # nothing goes into the image unless it is named
    assert not any(ln.startswith("!") and (".env" in ln or "deploy" in ln) for ln in ignored)


def test_every_variable_the_app_containers_get_is_a_setting(resolved) -> None:
    settings = {f"CHAINWATCH_{name.upper()}" for name in Settings.model_fields}
    for name in (*APP_SERVICES, "simulator"):
        env = set(resolved["services"][name].get("environment") or {})
        unknown = {v for v in env if v.startswith("CHAINWATCH_")} - settings - COMPOSE_ONLY
        assert unknown == set(), f"{name}: {sorted(unknown)}"
