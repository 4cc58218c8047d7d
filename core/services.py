"""``chainwatch services up|down|status``: Debian's Mosquitto and InfluxDB on loopback, for one machine.

Each server runs with ChainWatch's own configuration (``deploy/local/*.template``) and keeps its files
under ``CHAINWATCH_DATA_DIR`` (``mosquitto/`` and ``influxdb/``), never the system's. A pid file there
records what ``up`` started, so ``down`` stops only that. ``up`` is idempotent: a server that is already
running (ours) is left alone; a port held by some other program is an error that says which port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import psutil

from core.influx import InfluxClient, InfluxError
from core.settings import Settings

Progress = Callable[[str], None]
SERVICES = ("mosquitto", "influxdb")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "local"
BINARIES = {"mosquitto": ("mosquitto", "/usr/sbin/mosquitto"), "influxdb": ("influxd", "/usr/bin/influxd")}
PACKAGES = {"mosquitto": "mosquitto", "influxdb": "influxdb"}
# `install` (make setup) also installs what the web tests and reports need: a headless browser, CJK fonts
# without which it draws Chinese as empty boxes. Each with a file that shows it is there.
BROWSER_PACKAGES = {
    "chromium": Path("/usr/bin/chromium"),
    "fonts-noto-cjk": Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    # a CJK TrueType font for the PDF reports (reportlab cannot read Noto CJK's PostScript outlines)
    "fonts-wqy-zenhei": Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    # `docker-compose config` validates docker-compose.yml in the tests (no Docker engine needed)
    "docker-compose": Path("/usr/bin/docker-compose"),
}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ServiceError(RuntimeError):
    """A problem the user can act on; the message is one line and says what to do."""


@dataclass(frozen=True)
class ServiceState:
    name: str
    address: str
    running: bool  # answering on its address
    pid: int | None  # the process ChainWatch started, if it is alive
    detail: str

    @property
    def managed(self) -> bool:
        return self.pid is not None


def _quiet(_msg: str) -> None:
    pass


# ------------------------------------------------------------------ install


def binary(name: str) -> str | None:
    exe, fallback = BINARIES[name]
    found = shutil.which(exe)
    if found:
        return found
    return fallback if os.access(fallback, os.X_OK) else None


def _missing(browser: bool) -> list[str]:
    missing = [PACKAGES[n] for n in SERVICES if binary(n) is None]
    if browser:
        missing += [pkg for pkg, path in BROWSER_PACKAGES.items() if not path.exists()]
    return missing


def ensure_installed(progress: Progress = _quiet, *, browser: bool = True) -> None:
    """Install Debian's mosquitto and influxdb when missing (apt-get update first), and with ``browser``
    chromium and fonts-noto-cjk for the web tests; nothing else."""
    missing = _missing(browser)
    if not missing:
        return
    names = " ".join(missing)
    apt = shutil.which("apt-get")
    if apt is None:
        raise ServiceError(f"{names} missing and this is not a Debian system: install them, then retry")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise ServiceError(f"{names} missing: run `sudo apt-get install {names}` as root, then retry")
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ("updating the package lists (apt-get update)", [*prefix, apt, "update", "-q"]),
        (
            f"installing {names} from Debian",
            [*prefix, apt, "install", "-y", "-q", "--no-install-recommends", *missing],
        ),
    ]
    for what, argv in steps:
        progress(what)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ServiceError(f"{what} failed (exit {proc.returncode}): {last}")
    still = _missing(browser)
    if still:
        raise ServiceError(f"apt-get finished but {' '.join(still)} is still not installed")
    progress(f"installed {names}")


# ------------------------------------------------------------------ layout


@dataclass(frozen=True)
class _Layout:
    name: str
    home: Path
    host: str
    port: int

    @property
    def conf(self) -> Path:
        return self.home / f"{self.name}.conf"

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _layout(settings: Settings, name: str) -> _Layout:
    home = settings.data_dir.resolve() / name
    if name == "mosquitto":
        return _Layout(name, home, settings.mqtt_host, settings.mqtt_port)
    return _Layout(name, home, settings.influx_host, settings.influx_port)


def _is_loopback(host: str) -> bool:
    try:
        return all(
            info[4][0].startswith("127.") or info[4][0] == "::1"
            for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        )
    except OSError:
        return False


def _render(lay: _Layout) -> None:
    (lay.home / "data").mkdir(parents=True, exist_ok=True)
    template = Template((DEPLOY / f"{lay.name}.conf.template").read_text(encoding="utf-8"))
    text = template.substitute(
        port=lay.port,
        rpc_port=lay.port + 2,
        data_dir=lay.home / "data",
        log_file=lay.log,
    )
    lay.conf.write_text(text, encoding="utf-8")


def _argv(lay: _Layout) -> list[str]:
    exe = binary(lay.name)
    if exe is None:
        raise ServiceError(f"{PACKAGES[lay.name]} is not installed: run `chainwatch services install`")
    if lay.name == "mosquitto":
        return [exe, "-c", str(lay.conf)]
    return [exe, "-config", str(lay.conf)]


# ------------------------------------------------------------------ probes


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers(lay: _Layout) -> bool:
    if lay.name == "influxdb":
        try:
            return httpx.get(f"http://{lay.address}/ping", timeout=1.0).status_code == 204
        except httpx.HTTPError:
            return False
    return _port_open(lay.host, lay.port)


def _our_pid(lay: _Layout) -> int | None:
    """The pid from our pid file, if that process is alive and is the server we started."""
    try:
        pid = int(lay.pid_file.read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if str(lay.conf) in proc.cmdline():
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def _state(settings: Settings, name: str) -> ServiceState:
    lay = _layout(settings, name)
    pid = _our_pid(lay)
    up = _answers(lay)
    if up and pid:
        detail = f"running (pid {pid}), files in {lay.home}"
    elif up:
        detail = "running, not started by chainwatch"
    elif pid:
        detail = f"starting or not answering (pid {pid}); log: {lay.log}"
    else:
        detail = "stopped"
    return ServiceState(name, lay.address, up, pid, detail)


def status(settings: Settings) -> list[ServiceState]:
    return [_state(settings, n) for n in SERVICES]


# ------------------------------------------------------------------ start / stop


def _log_tail(lay: _Layout, lines: int = 1) -> str:
    try:
        tail = [ln for ln in lay.log.read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    except OSError:
        return "no log"
    return " | ".join(tail) or "empty log"


def start_service(settings: Settings, name: str, progress: Progress = _quiet) -> ServiceState:
    lay = _layout(settings, name)
    current = _state(settings, name)
    if current.running:
        return current
    if not _is_loopback(lay.host):
        raise ServiceError(
            f"{name} at {lay.address} is not on this machine and does not answer: "
            "start it there, or point the CHAINWATCH_* URL at a local port"
        )
    if current.pid is None and _port_open(lay.host, lay.port):
        raise ServiceError(
            f"port {lay.port} is in use by another program: set the CHAINWATCH_* URL to a free port"
        )
    if name == "influxdb" and _port_open("127.0.0.1", lay.port + 2):
        raise ServiceError(
            f"InfluxDB's RPC port {lay.port + 2} (HTTP port + 2) is in use: "
            "choose another CHAINWATCH_INFLUX_URL"
        )
    proc: subprocess.Popen[bytes] | None = None
    if current.pid is None:
        lay.home.mkdir(parents=True, exist_ok=True)
        _render(lay)
        argv = _argv(lay)
        progress(f"starting {name} on {lay.address} (files in {lay.home})")
        with lay.log.open("ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=lay.home
            )
        lay.pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(lay):
            if name == "influxdb":
                _create_database(settings)
            progress(f"{name} is up on {lay.address}")
            return _state(settings, name)
        exited = proc.poll() is not None if proc else _our_pid(lay) is None
        if exited:
            lay.pid_file.unlink(missing_ok=True)
            raise ServiceError(f"{name} exited at start: {_log_tail(lay)} (log: {lay.log})")
        time.sleep(0.1)
    raise ServiceError(f"{name} did not answer on {lay.address} in {START_TIMEOUT_S:.0f} s; log: {lay.log}")


def _create_database(settings: Settings) -> None:
    client = InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
    )
    try:
        client.create_database()
    except InfluxError as exc:
        raise ServiceError(f"InfluxDB answers but CREATE DATABASE failed: {exc}") from None
    finally:
        client.close()


def stop_service(settings: Settings, name: str, progress: Progress = _quiet) -> bool:
    """Stop the server ChainWatch started (SIGTERM, then SIGKILL). False if there was none."""
    lay = _layout(settings, name)
    pid = _our_pid(lay)
    if pid is None:
        lay.pid_file.unlink(missing_ok=True)
        return False
    progress(f"stopping {name} (pid {pid})")
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    except psutil.NoSuchProcess:
        pass
    lay.pid_file.unlink(missing_ok=True)
    return True


def kill_service(settings: Settings, name: str) -> bool:
    """SIGKILL the server ChainWatch started: for fault-injection tests (a crash, not a shutdown)."""
    lay = _layout(settings, name)
    pid = _our_pid(lay)
    if pid is None:
        return False
    proc = psutil.Process(pid)
    proc.kill()
    proc.wait(10)
    lay.pid_file.unlink(missing_ok=True)
    return True


def up(settings: Settings, progress: Progress = _quiet) -> list[ServiceState]:
    ensure_installed(progress, browser=False)  # the servers only; `install` adds the browser
    return [start_service(settings, n, progress) for n in SERVICES]


def down(settings: Settings, progress: Progress = _quiet) -> list[str]:
    return [n for n in SERVICES if stop_service(settings, n, progress)]


def services_main(action: str, settings: Settings) -> int:
    def say(msg: str) -> None:
        print(f"[services] {msg}", flush=True)

    if action == "up":
        up(settings, say)
    elif action == "down":
        stopped = down(settings, say)
        if not stopped:
            say("nothing to stop: no server started by chainwatch is running")
    states = status(settings)
    width = max(len(s.name) for s in states)
    for s in states:
        print(f"{s.name:<{width}}  {s.address:<21}  {s.detail}")
    if action == "status":
        return 0 if all(s.running for s in states) else 3
    return 0
