"""``make bench`` (``python -m bench.run``): the ingest benchmark.

What it measures, on its own Mosquitto and InfluxDB (``.chainwatch/bench``, ports 18930 and 18186, so a
running ``make run`` is not disturbed), with a registry of 1,000 gateways (100 clinics x 10 gateways,
probes p1..p10 on refrigerators) so the collector enriches tags as in production:

- the collector's capacity, by **backlog drain**: the collector's persistent session is registered, the
  collector is stopped, the load is queued at the broker, then the collector is started and timed until
  InfluxDB holds every reading. The load generator cannot be the bottleneck this way (three Python
  publishers saturate this machine at about the rate one collector ingests). Cases: (a) 1-reading
  messages, (b) 10-reading messages, and optionally (a) with two collectors on a ``$share`` group;
- a live run: the collector running while three paced publishers offer a fixed rate; offered rate,
  achieved rate and the lag until InfluxDB holds everything after the publishers stop;
- the raw limits of the same servers in the same run: InfluxDB line-protocol writes in 5,000-line
  batches (1 and 2 writers), and a do-nothing paho QoS 1 subscriber draining the backlog of (a);
- where the collector's time goes: a separate drain of (a) and (b) under py-spy (or cProfile).

Results: ``bench/results/ingest-<UTC timestamp>.json`` and a summary table on stdout; progress on stderr.
Exit status: 0 when every case ran and nothing was lost (targets missed are reported, not fatal),
1 on an error, 2 when readings were lost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.loadgen import PublishError, PublishResult, make_jobs, run_publishers
from core import services
from core.db import make_engine
from core.influx import InfluxClient, InfluxError
from core.lineprotocol import quote_ident, tag_prefix
from core.registry_model import (
    Bureau,
    Clinic,
    Device,
    DeviceKind,
    District,
    Equipment,
    Profile,
    RegistryFile,
    Township,
)
from core.registry_store import store_registry
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
DATA_DIR = ROOT / ".chainwatch" / "bench"
MQTT_URL = "mqtt://127.0.0.1:18930"
INFLUX_URL = "http://127.0.0.1:18186"
GATEWAYS_PER_CLINIC = 10
CLINICS_PER_TOWNSHIP = 10
PROBES = 10
INFLUX_BATCH_LINES = 5_000
RECEIVE_MAXIMUM = 20_000  # the collector's default window, also used by the raw subscriber
TARGET_A_MSGS_PER_S = 10_000
TARGET_B_READINGS_PER_S = 50_000
STALL_S = 60.0  # no progress for this long: the case failed
PHASES = ("influx", "mqtt", "a", "b", "shared", "live", "profile")


class BenchError(RuntimeError):
    """One line for the user: what went wrong and what to do."""


@dataclass(frozen=True)
class Sizes:
    a_messages: int  # case (a): messages of 1 reading
    b_messages: int  # case (b): messages of 10 readings
    influx_lines: int  # raw InfluxDB write
    live_rate: float  # live run: messages/s offered (all publishers together)
    live_seconds: float
    profile_a: int  # profiled drains (separate from the measured ones)
    profile_b: int


FULL = Sizes(200_000, 50_000, 500_000, 6_000.0, 30.0, 100_000, 20_000)
QUICK = Sizes(20_000, 5_000, 50_000, 3_000.0, 10.0, 10_000, 2_000)

_T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


# ---------------------------------------------------------------------------------------- registry


def bench_registry(clinics: int) -> RegistryFile:
    """``clinics`` clinics x 10 gateways, each gateway with probes p1..p10 on refrigerators."""
    townships: list[Township] = []
    n_town = -(-clinics // CLINICS_PER_TOWNSHIP)
    gw = 0
    for t in range(n_town):
        cl: list[Clinic] = []
        for c in range(t * CLINICS_PER_TOWNSHIP, min((t + 1) * CLINICS_PER_TOWNSHIP, clinics)):
            cid = f"c{c + 1:03d}"
            devices: list[Device] = []
            equipment: list[Equipment] = []
            for _ in range(GATEWAYS_PER_CLINIC):
                gw += 1
                dev = f"gw-{gw:04d}"
                devices.append(Device(id=dev, kind=DeviceKind.gateway, interval_s=60))
                equipment.extend(
                    Equipment(
                        id=f"{dev}-f{p}",
                        name=f"Refrigerator {p} of {dev}",
                        profile=Profile.refrigerator,
                        device=dev,
                        probe=f"p{p}",
                    )
                    for p in range(1, PROBES + 1)
                )
            cl.append(
                Clinic(
                    id=cid, name=f"Bench clinic {c + 1}", devices=tuple(devices), equipment=tuple(equipment)
                )
            )
        townships.append(Township(id=f"t{t + 1:02d}", name=f"Bench township {t + 1}", clinics=tuple(cl)))
    district = District(
        id="bench",
        name="Bench district",
        bureau=Bureau(id="bench-bureau", name="Bench bureau"),
        townships=tuple(townships),
    )
    return RegistryFile(district=district)


def registry_devices(reg: RegistryFile) -> list[tuple[str, str]]:
    return [(c.id, d.id) for c in reg.clinics() for d in c.devices]


# ---------------------------------------------------------------------------------------- InfluxDB


class Influx:
    """The few InfluxDB calls the bench needs beyond ``core.influx``: databases and counts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=120.0)

    def close(self) -> None:
        self._http.close()

    def _q(self, q: str, db: str = "") -> dict[str, Any]:
        try:
            resp = self._http.post("/query", data={"q": q, "db": db})
        except httpx.HTTPError as exc:
            raise BenchError(f"cannot reach InfluxDB at {self.url}: {exc}") from None
        if resp.status_code != 200:
            raise BenchError(f"InfluxDB answered {resp.status_code} to {q!r}: {resp.text[:200]}")
        first = (resp.json().get("results") or [{}])[0]
        if "error" in first:
            raise BenchError(f"InfluxDB: {q!r} failed: {first['error']}")
        return dict(first)

    def create(self, db: str) -> None:
        self._q(f"CREATE DATABASE {quote_ident(db)}")

    def drop(self, db: str) -> None:
        self._q(f"DROP DATABASE {quote_ident(db)}")

    def databases(self) -> list[str]:
        series = self._q("SHOW DATABASES").get("series") or [{}]
        return [row[0] for row in series[0].get("values") or []]

    def count(self, db: str) -> int:
        series = self._q('SELECT count("celsius") FROM "temperature"', db).get("series")
        return int(series[0]["values"][0][1]) if series else 0


def sample_lines(devices: Sequence[tuple[str, str]], n: int, base_time: int) -> list[str]:
    """``n`` lines shaped as the collector writes them: temperature with the 6 tags, ns timestamps,
    series in the order a collector batch of 10-reading messages has them."""
    prefixes = [
        tag_prefix(
            "temperature",
            {
                "district": "bench",
                "township": f"t{(int(c[1:]) - 1) // CLINICS_PER_TOWNSHIP + 1:02d}",
                "clinic": c,
                "device": d,
                "equipment": f"{d}-f{p}",
                "probe": f"p{p}",
            },
        )
        for c, d in devices
        for p in range(1, PROBES + 1)
    ]
    out: list[str] = []
    k = 0
    while len(out) < n:
        ts = (base_time - k) * 1_000_000_000
        value = f"{4.0 + k % 40 / 10:.1f}"
        out.extend(f"{prefix} celsius={value} {ts}" for prefix in prefixes[: n - len(out)])
        k += 1
    return out


# ---------------------------------------------------------------------------------------- MQTT sessions


def forget_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session at the broker (clean start, expiry 0), so it stops queueing for it."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    done = threading.Event()
    client.on_connect = lambda *_a: done.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        client.connect(host, port, clean_start=True, properties=props)
    except OSError as exc:
        raise BenchError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(15):
            raise BenchError(f"the MQTT broker did not answer while ending session {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


class Sessions:
    """The persistent sessions the bench creates at the broker, listed in a file so that a run that was
    interrupted has them removed by the next one (the broker would queue every message for them)."""

    def __init__(self, settings: Settings) -> None:
        self.host, self.port = settings.mqtt_host, settings.mqtt_port
        self.path = settings.data_dir / "bench-sessions.json"

    def _read(self) -> list[str]:
        try:
            return list(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return []

    def _write(self, ids: list[str]) -> None:
        self.path.write_text(json.dumps(ids))

    def add(self, client_id: str) -> None:
        self._write([*self._read(), client_id])

    def forget(self, client_id: str) -> None:
        forget_session(self.host, self.port, client_id)
        self._write([c for c in self._read() if c != client_id])

    def forget_all(self) -> int:
        ids = self._read()
        for cid in ids:
            self.forget(cid)
        return len(ids)


# ---------------------------------------------------------------------------------------- profiling


class Profiler:
    """py-spy (sampling, from outside: barely slows the collector) when installed, else cProfile."""

    def __init__(self) -> None:
        self.pyspy = _find_pyspy()
        self.kind = "py-spy" if self.pyspy else "cProfile"

    def argv(self, out: Path) -> list[str]:
        if self.pyspy:
            # --gil: sample only the thread holding the GIL, i.e. where the collector's Python time goes
            # (its threads share one GIL, so that is its bottleneck); idle waits are left out
            return [self.pyspy, "record", "--gil", "--format", "raw", "--rate", "100",
                    "--output", str(out), "--", sys.executable, "-m", "core.cli", "collector"]  # fmt: skip
        return [sys.executable, "-m", "bench.profile_collector", str(out)]

    def output(self, base: Path) -> Path:
        return base.with_suffix(".pyspy.txt" if self.pyspy else ".pstats")

    def summarize(self, out: Path, top: int = 15) -> dict[str, Any]:
        if not out.is_file():
            return {"profiler": self.kind, "error": f"no profile written ({out})"}
        if self.pyspy:
            return summarize_collapsed(out, top)
        return summarize_pstats(out, top)


def _find_pyspy() -> str | None:
    for candidate in (os.environ.get("BENCH_PYSPY"), shutil.which("py-spy"), "/tmp/pyspy/bin/py-spy"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_THREAD_ROOTS = {
    "_thread_main": "paho network thread (receive, on_message: parse, convert, batch)",
    "_writer": "writer thread (InfluxDB write, PUBACKs)",
    "_flusher": "flusher thread",
    "_drainer": "spool drainer thread",
    "_stats_writer": "stats thread",
    "_registry_refresher": "registry refresher thread",
}


# Stages of the collector's work, recognised by a frame (bare function name, file name ending); a sample
# belongs to the stage of its innermost matching frame.
_STAGES = (
    ("series_prefix", "points.py", "line protocol: series keys (tag escaping, cached or not)"),
    ("tag_prefix", "lineprotocol.py", "line protocol: series keys (tag escaping, cached or not)"),
    ("telemetry_lines", "points.py", "line protocol: formatting lines (points.py)"),
    ("loads", "senml.py", "JSON decode (senml.loads)"),
    ("resolve", "senml.py", "SenML resolve (senml.resolve: records, dataclasses)"),
    ("parse_telemetry", "protocol.py", "protocol v1 checks (parse_telemetry)"),
    ("parse_topic", "protocol.py", "topic parsing (parse_topic)"),
    ("_on_message", "service.py", "on_message: registry lookup, batching, the rest"),
    ("_make_durable", "service.py", "writer: InfluxDB write (batch body, httpx)"),
    ("_writer", "service.py", "writer: PUBACKs (paho ack) and the rest"),
    ("_thread_main", "client.py", "paho: MQTT packets, v5 properties, socket (outside on_message)"),
)


def _stage(frames: list[tuple[str, str, str]]) -> str:
    for _key, name, file in reversed(frames):
        for marker, suffix, stage in _STAGES:
            if name == marker and file.endswith(suffix):
                return stage
    return "other threads"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail if marker == "site-packages/" else "python3" + tail
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _frame(raw: str) -> tuple[str, str, str]:
    """(function with its file, without the line number; bare function name; file) of a py-spy frame."""
    m = _FRAME.match(raw)
    if not m:
        return raw, raw, ""
    return f"{m['func']} ({_short_path(m['file'])})", m["func"].rsplit(".", 1)[-1], m["file"]


def summarize_collapsed(path: Path, top: int) -> dict[str, Any]:
    """py-spy's raw (collapsed stacks) output -> shares per thread, per stage and per function (own time
    and including callees). Stages and functions leave out the main thread (start-up: imports, registry
    load), which is reported on its own as ``startup_pct``, so they describe the ingest work."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    samples = work = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        samples += n
        names = [f[1] for f in frames]
        thread = next((_THREAD_ROOTS[x] for x in names if x in _THREAD_ROOTS), None)
        if thread is None and "<module>" in names:
            threads["main thread (start-up, signals)"] += n
            continue
        threads[thread or "other"] += n
        work += n
        stages[_stage(frames)] += n
        own[frames[-1][0]] += n
        for key in {f[0] for f in frames if not f[2].endswith("threading.py")}:
            total[key] += n

    def pct(c: Counter[str], k: int, of: int) -> list[dict[str, Any]]:
        return [
            {"function": f, "samples": v, "pct": round(100 * v / max(of, 1), 1)} for f, v in c.most_common(k)
        ]

    return {
        "profiler": "py-spy",
        "samples": samples,
        "startup_pct": round(100 * (samples - work) / max(samples, 1), 1),
        "threads": pct(threads, 10, samples),
        "stages": pct(stages, len(_STAGES) + 1, work),
        "self": pct(own, top, work),
        "total": pct(total, top, work),
    }


def summarize_pstats(path: Path, top: int) -> dict[str, Any]:
    st = pstats.Stats(str(path))
    entries = st.stats  # type: ignore[attr-defined]
    total_tt = sum(v[2] for v in entries.values()) or 1.0

    def name(key: tuple[str, int, str]) -> str:
        file, _line, func = key
        return f"{func} ({_short_path(file)})"

    def rows(index: int) -> list[dict[str, Any]]:
        ranked = sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True)[:top]
        return [
            {"function": name(k), "seconds": round(v[index], 3), "pct": round(100 * v[index] / total_tt, 1)}
            for k, v in ranked
        ]

    return {"profiler": "cProfile", "seconds": round(total_tt, 3), "self": rows(2), "total": rows(3)}


# ---------------------------------------------------------------------------------------- collector


@dataclass
class Usage:
    cpu_s: float
    peak_rss_mb: float
    threads_cpu_s: list[float]  # CPU seconds of each thread, busiest first


class CollectorProcess:
    """``chainwatch collector`` as a child process with its own client id and InfluxDB database."""

    def __init__(
        self,
        bench: Bench,
        client_id: str,
        db: str,
        *,
        shared_group: str = "",
        profiler: Profiler | None = None,
        profile_out: Path | None = None,
    ) -> None:
        self.bench = bench
        self.client_id = client_id
        self.db = db
        self.shared_group = shared_group
        self.profiler = profiler
        self.profile_out = profile_out
        self.log = bench.log_dir / f"{client_id}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.proc: psutil.Process | None = None
        self.started = 0.0

    @property
    def data_dir(self) -> Path:
        """Its own data directory (stats file, spool); the registry is the bench's SQLite database."""
        return self.bench.collectors_dir / self.client_id

    @property
    def stats_path(self) -> Path:
        """The stats file the collector writes every second (``collector*.json`` in its data directory)."""
        found = sorted(self.data_dir.glob("collector*.json"), key=_mtime)
        return found[-1] if found else self.data_dir / "collector.json"

    def environ(self) -> dict[str, str]:
        s = self.bench.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINWATCH_")}
        env.update(
            {
                "CHAINWATCH_DATA_DIR": str(self.data_dir),
                "CHAINWATCH_MQTT_URL": s.mqtt_url,
                "CHAINWATCH_INFLUX_URL": s.influx_url,
                "CHAINWATCH_INFLUX_DB": self.db,
                "CHAINWATCH_DATABASE_URL": s.sql_url,
                "CHAINWATCH_COLLECTOR_CLIENT_ID": self.client_id,
                "CHAINWATCH_COLLECTOR_SHARED_GROUP": self.shared_group,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for old in self.data_dir.glob("collector*.json"):
            old.unlink()
        argv = [sys.executable, "-m", "core.cli", "collector"]
        if self.profiler is not None and self.profile_out is not None:
            argv = self.profiler.argv(self.profile_out)
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                argv, env=self.environ(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()
        self.proc = psutil.Process(self.popen.pid)
        if self.profiler is not None and self.profiler.pyspy:
            self.proc = self._child_python()

    def _child_python(self) -> psutil.Process:
        assert self.proc is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.check_alive()
            kids = self.proc.children()
            if kids:
                return kids[0]
            time.sleep(0.02)
        raise BenchError(f"py-spy did not start the collector in 15 s; see {self.log}")

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(
                f"the collector {self.client_id} exited (status {self.popen.returncode}): "
                f"{self.last_log_line()} (log: {self.log})"
            )

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "empty log"

    def stats(self) -> dict[str, Any]:
        self.check_alive()
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def wait_connected(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().get("connected"):
                return
            time.sleep(0.1)
        raise BenchError(
            f"the collector {self.client_id} did not connect to {self.bench.settings.mqtt_url} "
            f"in {timeout:.0f} s: {self.last_log_line()} (log: {self.log})"
        )

    def usage(self) -> Usage:
        assert self.proc is not None
        try:
            t = self.proc.cpu_times()
            cpu = t.user + t.system
            per_thread = sorted((th.user_time + th.system_time for th in self.proc.threads()), reverse=True)
            hwm = 0.0
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
            return Usage(round(cpu, 2), round(hwm, 1), [round(x, 2) for x in per_thread if x >= 0.01])
        except (psutil.Error, OSError):
            return Usage(0.0, 0.0, [])

    def cpu_s(self) -> float:
        assert self.proc is not None
        try:
            t = self.proc.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def stop(self, timeout: float = 90.0) -> Usage:
        """Measure CPU and peak memory, then SIGTERM (the collector flushes and acknowledges)."""
        if self.popen is None or self.proc is None:
            return Usage(0.0, 0.0, [])
        self.check_alive()
        use = self.usage()
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.popen.wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(
                f"the collector {self.client_id} did not stop in {timeout:.0f} s (log: {self.log})"
            ) from None
        self.popen = None
        return use

    def kill(self) -> None:
        """SIGKILL what this object started (py-spy's collector child first), for clean-up after errors."""
        if self.proc is not None:
            try:
                self.proc.kill()
            except psutil.Error:
                pass
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait(10)
            self.popen = None


# ---------------------------------------------------------------------------------------- the bench


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq, influxd = services.binary("mosquitto"), services.binary("influxdb")
    say("measuring how busy the machine is before the bench (2 s)")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "paho_mqtt": _pkg_version("paho-mqtt"),
        "mosquitto": _version([mosq, "-h"]).removeprefix("mosquitto version ") if mosq else "missing",
        "influxdb": _version([influxd, "version"]).removeprefix("InfluxDB ").split(" (")[0]
        if influxd
        else "missing",
        "git_commit": _git(["rev-parse", "--short", "HEAD"]),
        "git_changes": _git(["status", "--porcelain", "--untracked-files=no", "--", "core", "collector"]),
        "cpu_busy_pct_before": psutil.cpu_percent(interval=2.0),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


def _git(args: list[str]) -> str:
    """The code measured: the commit, and whether core/ or collector/ differ from it."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes: Sizes = QUICK if args.quick else FULL
        if args.a_messages:
            self.sizes = _replace(self.sizes, a_messages=args.a_messages)
        if args.b_messages:
            self.sizes = _replace(self.sizes, b_messages=args.b_messages)
        self.settings = Settings(
            data_dir=DATA_DIR,
            mqtt_url=args.mqtt_url,
            influx_url=args.influx_url,
            database_url="",
            registry_file=None,
        )
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.tag = self.stamp.lower()
        self.log_dir = DATA_DIR / "logs" / self.stamp
        self.collectors_dir = DATA_DIR / "collectors"  # one data directory per collector client id
        self.started_services: list[str] = []
        self.sessions = Sessions(self.settings)
        self.influx = Influx(self.settings.influx_url)
        self.running: list[CollectorProcess] = []
        self.dbs: list[str] = []
        self.devices: list[tuple[str, str]] = []
        self.base_time = int(time.time()) - 3600
        self.results: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up and tear-down

    def setup(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        states = services.status(s)
        for st in states:
            if st.running and not st.managed:  # someone else's server: the bench would disturb it
                raise BenchError(
                    f"{st.name} on {st.address} was not started from {s.data_dir}: the bench uses servers of "
                    "its own; stop that one or choose other ports with --mqtt-url/--influx-url"
                )
        before = {st.name: st.running for st in states}
        self.empty_broker(before["mosquitto"])
        say(
            f"starting the bench's own Mosquitto ({s.mqtt_url}) and InfluxDB ({s.influx_url}), "
            f"files in {s.data_dir}"
        )
        services.up(s, lambda m: say(f"services: {m}"))
        self.started_services = [n for n, running in before.items() if not running]
        left = self.sessions.forget_all()
        if left:
            say(f"removed {left} persistent session(s) an interrupted earlier run left at the broker")
        for db in self.influx.databases():
            if db.startswith("bench_"):
                self.influx.drop(db)
        clinics = self.args.clinics
        say(
            f"storing the bench registry: {clinics} clinics x {GATEWAYS_PER_CLINIC} gateways "
            f"x {PROBES} probes"
        )
        reg = bench_registry(clinics)
        for old in s.data_dir.glob(
            "chainwatch.sqlite*"
        ):  # the bench's own: no dead letters from earlier runs
            old.unlink()
        engine = make_engine(s.sql_url)
        try:
            store_registry(engine, reg)
        finally:
            engine.dispose()
        self.devices = registry_devices(reg)
        self.results["machine"] = machine_info()
        self.results["setup"] = {
            "devices": len(self.devices),
            "clinics": clinics,
            "probes_per_device": PROBES,
            "mqtt_url": s.mqtt_url,
            "influx_url": s.influx_url,
            "publisher_processes": self.args.publishers,
            "collector_receive_maximum": s.collector_receive_maximum,
            "collector_batch_lines": s.collector_batch_lines,
            "sizes": asdict(self.sizes),
            "quick": bool(self.args.quick),
        }

    def empty_broker(self, running: bool) -> None:
        """Start from a broker without sessions or queued messages: a persistent session left by an
        interrupted run (or anything else) would have every message queued for it too, and its queue
        saved to disk every 30 s, which slows the broker down. The bench's broker holds nothing else."""
        s = self.settings
        if running:
            say("restarting the bench's Mosquitto with no stored sessions")
            services.stop_service(s, "mosquitto", lambda m: say(f"services: {m}"))
        for stored in (s.data_dir / "mosquitto" / "data").glob("*.db*"):
            stored.unlink()

    def teardown(self) -> None:
        for c in self.running:
            c.kill()
        self.running.clear()
        try:
            self.sessions.forget_all()
        except BenchError as exc:
            say(f"could not remove the bench's sessions at the broker: {exc}")
        if not self.args.keep_data:
            for db in self.dbs:
                try:
                    self.influx.drop(db)
                except BenchError:
                    pass
        self.influx.close()
        if not self.args.keep_data:
            shutil.rmtree(self.collectors_dir, ignore_errors=True)
        if self.args.keep_services:
            return
        for name in self.started_services:
            services.stop_service(self.settings, name, lambda m: say(f"services: {m}"))

    def fresh_db(self, name: str) -> str:
        db = f"bench_{name}_{self.tag}"
        self.influx.create(db)
        self.dbs.append(db)
        return db

    def done_with_db(self, db: str) -> None:
        if not self.args.keep_data:
            self.influx.drop(db)
            self.dbs.remove(db)

    def server_cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for st in services.status(self.settings):
            if st.pid:
                try:
                    t = psutil.Process(st.pid).cpu_times()
                    out[st.name] = t.user + t.system
                except psutil.Error:
                    pass
        return out

    # ------------------------------------------------------------------ raw limits

    def raw_influx(self) -> None:
        n = self.sizes.influx_lines
        say(f"raw InfluxDB: preparing {n:,} lines shaped like the collector's")
        lines = sample_lines(self.devices, n, self.base_time)
        bodies = [
            ("\n".join(lines[i : i + INFLUX_BATCH_LINES]) + "\n").encode()
            for i in range(0, n, INFLUX_BATCH_LINES)
        ]
        del lines
        out: dict[str, Any] = {}
        for writers in (1, 2):
            db = self.fresh_db(f"raw{writers}")
            say(
                f"raw InfluxDB: writing {n:,} lines in {len(bodies)} batches of {INFLUX_BATCH_LINES:,}, "
                f"{writers} writer(s)"
            )
            errors: list[str] = []
            cpu0 = self.server_cpu()

            def write(part: list[bytes], db: str = db, errors: list[str] = errors) -> None:
                with InfluxClient(self.settings.influx_url, db, timeout_s=120.0) as client:
                    for body in part:
                        try:
                            client.write(body, precision="ns")
                        except InfluxError as exc:
                            errors.append(str(exc))
                            return

            threads = [threading.Thread(target=write, args=(bodies[w::writers],)) for w in range(writers)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.monotonic() - t0
            cpu1 = self.server_cpu()
            if errors:
                raise BenchError(f"raw InfluxDB write failed: {errors[0]}")
            stored = self.influx.count(db)
            if stored != n:
                raise BenchError(f"raw InfluxDB write: {stored:,} of {n:,} points stored (expected all)")
            out[f"writers_{writers}"] = {
                "writers": writers,
                "lines": n,
                "batch_lines": INFLUX_BATCH_LINES,
                "seconds": round(seconds, 2),
                "lines_per_s": _rate(n, seconds),
                "influxdb_cpu_s": round(cpu1.get("influxdb", 0) - cpu0.get("influxdb", 0), 2),
            }
            say(f"raw InfluxDB, {writers} writer(s): {n / seconds:,.0f} lines/s")
            self.done_with_db(db)
        self.results["raw_influxdb"] = out

    def raw_mqtt(self) -> None:
        n = self.sizes.a_messages
        cid = f"bench-raw-sub-{self.tag}"
        host, port = self.settings.mqtt_host, self.settings.mqtt_port
        received = 0
        subscribed = threading.Event()
        connected = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
            nonlocal received
            received += 1

        def client(clean: bool) -> mqtt.Client:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=MQTTProtocolVersion.MQTTv5)
            c.on_message = on_message
            c.on_subscribe = lambda *_a: subscribed.set()
            c.on_connect = lambda *_a: connected.set()
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            c.connect(host, port, clean_start=clean, properties=props)
            return c

        say("raw MQTT: registering a do-nothing QoS 1 subscriber's persistent session")
        self.sessions.add(cid)
        sub = client(True)
        sub.loop_start()
        if not connected.wait(15):
            raise BenchError("raw MQTT: the broker did not accept the subscriber's connection")
        sub.subscribe("cw/v1/+/+/telemetry", qos=1)
        if not subscribed.wait(15):
            raise BenchError("raw MQTT: the broker did not confirm the subscription")
        sub.disconnect()
        sub.loop_stop()
        pubs = self.publish("raw MQTT", n, 1, "raw")
        say(f"raw MQTT: the subscriber comes back for {n:,} queued messages")
        connected.clear()
        cpu0 = self.server_cpu()
        t0 = time.monotonic()
        sub = client(False)
        sub.loop_start()
        last, still = -1, time.monotonic()
        next_say = t0 + 5
        while received < n:
            now = time.monotonic()
            if received != last:
                last, still = received, now
            elif now - still > 30:
                break
            if now >= next_say:
                next_say += 5
                say(f"raw MQTT: received {received:,} of {n:,}")
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        cpu1 = self.server_cpu()
        got = received
        sub.disconnect()
        sub.loop_stop()
        self.sessions.forget(cid)
        if got < n:
            raise BenchError(f"raw MQTT: the do-nothing subscriber received {got:,} of {n:,} queued messages")
        self.results["raw_mqtt_subscriber"] = {
            "messages": n,
            "seconds": round(seconds, 2),
            "msgs_per_s": _rate(n, seconds),
            "mosquitto_cpu_s": round(cpu1.get("mosquitto", 0) - cpu0.get("mosquitto", 0), 2),
            "publish": _publish_summary(pubs),
        }
        say(f"raw MQTT subscriber: {n / seconds:,.0f} msgs/s")

    # ------------------------------------------------------------------ load

    def publish(self, label: str, messages: int, readings: int, name: str) -> list[PublishResult]:
        jobs = make_jobs(
            self.devices,
            messages,
            readings,
            host=self.settings.mqtt_host,
            port=self.settings.mqtt_port,
            name=f"bench-{name}-{self.tag}",
            base_time=self.base_time,
            processes=self.args.publishers,
        )
        say(
            f"{label}: queueing {messages:,} messages of {readings} reading(s) at the broker "
            f"({len(jobs)} publishers)"
        )
        try:
            pubs = run_publishers(jobs, progress=lambda m: say(f"{label}: {m}"))
        except PublishError as exc:
            raise BenchError(f"{label}: {exc}") from None
        sent = sum(p.acked for p in pubs)
        seconds = max(p.total_s for p in pubs)
        say(f"{label}: the broker holds {sent:,} messages (published at {sent / seconds:,.0f} msgs/s)")
        return pubs

    # ------------------------------------------------------------------ backlog drain

    def drain(
        self,
        key: str,
        label: str,
        messages: int,
        readings: int,
        *,
        collectors: int = 1,
        profile: bool = False,
    ) -> dict[str, Any]:
        db = self.fresh_db(key)
        group = f"bench-{self.tag}" if collectors > 1 else ""
        ids = [f"chainwatch-collector-bench-{key}-{self.tag}" + (f"-{i + 1}" if collectors > 1 else "")
               for i in range(collectors)]  # fmt: skip
        profiler = Profiler() if profile else None
        outs = [self.log_dir / f"profile-{key}" for _ in ids]
        if profiler is not None:
            outs = [profiler.output(self.log_dir / f"profile-{key}-{i}") for i in range(len(ids))]

        say(f"{label}: registering the collector's persistent session (start, connect, stop)")
        procs = [CollectorProcess(self, cid, db, shared_group=group) for cid in ids]
        for cid in ids:
            self.sessions.add(cid)
        for c in procs:
            c.start()
            self.running.append(c)
        for c in procs:
            c.wait_connected()
        time.sleep(1.0)  # the subscription is acknowledged right after connecting: leave it a moment
        for c in procs:
            c.stop()
            self.running.remove(c)

        pubs = self.publish(label, messages, readings, key)
        expected = sum(p.acked for p in pubs) * readings
        procs = [
            CollectorProcess(self, cid, db, shared_group=group, profiler=profiler, profile_out=out)
            for cid, out in zip(ids, outs, strict=True)
        ]
        say(f"{label}: starting {'the collector' if collectors == 1 else f'{collectors} collectors'}; "
            f"timing until InfluxDB holds all {expected:,} readings")  # fmt: skip
        cpu0 = self.server_cpu()
        t0 = time.monotonic()
        for c in procs:
            c.start()
            self.running.append(c)
        wait = self.wait_stored(label, db, expected, procs, t0)
        cpu1 = self.server_cpu()
        uses = [c.stop() for c in procs]
        for c in procs:
            self.running.remove(c)
        stats = [_read_json(c.stats_path) for c in procs]
        stored = self.influx.count(db)
        for cid in ids:
            self.sessions.forget(cid)
        self.done_with_db(db)
        seconds = wait["seconds"]
        n_msgs = expected // readings
        cpu = sum(u.cpu_s for u in uses)
        res = {
            "label": label,
            "collectors": collectors,
            "messages": n_msgs,
            "readings_per_message": readings,
            "expected_readings": expected,
            "stored_readings": stored,
            "loss": expected - stored,
            "seconds": round(seconds, 2),
            "msgs_per_s": _rate(n_msgs, seconds),
            "readings_per_s": _rate(expected, seconds),
            "steady_msgs_per_s": wait["steady_msgs_per_s"],
            "steady_readings_per_s": wait["steady_readings_per_s"],
            "first_batch_s": wait["first_batch_s"],
            "stats_done_s": wait["stats_done_s"],
            "timeline": wait["timeline"],
            "collector_cpu_s": round(cpu, 2),
            "collector_cpu_cores": round(cpu / seconds, 2) if seconds else 0.0,
            "collector_peak_rss_mb": max(u.peak_rss_mb for u in uses),
            # the busiest thread is paho's network thread (on_message): near `seconds`, it is the bottleneck
            "collector_threads_cpu_s": [u.threads_cpu_s for u in uses],
            "busiest_thread_cpu_share": _busiest_share(uses, seconds),
            "collector_messages": sum(int(s.get("messages", 0)) for s in stats),
            "collector_dead_letters": sum(int(s.get("dead_letters", 0)) for s in stats),
            "collector_batches_spooled": sum(int(s.get("batches_spooled", 0)) for s in stats),
            "mosquitto_cpu_s": round(cpu1.get("mosquitto", 0) - cpu0.get("mosquitto", 0), 2),
            "influxdb_cpu_s": round(cpu1.get("influxdb", 0) - cpu0.get("influxdb", 0), 2),
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "publish": _publish_summary(pubs),
        }
        if profiler is not None:
            res["profile"] = [profiler.summarize(out) for out in outs]
            res["profile_files"] = [str(out) for out in outs]
        say(
            f"{label}: {res['msgs_per_s']:,.0f} msgs/s, {res['readings_per_s']:,.0f} readings/s, "
            f"collector CPU {cpu:.1f} s, peak RSS {res['collector_peak_rss_mb']:.0f} MB, loss {res['loss']:,}"
        )
        return res

    def wait_stored(
        self, label: str, db: str, expected: int, procs: Sequence[CollectorProcess], t0: float
    ) -> dict[str, Any]:
        """Poll the collectors' stats files (every 0.1 s) and InfluxDB's count (every 0.5 s) until InfluxDB
        holds ``expected`` readings. Returns the seconds from ``t0`` and the steady rate in between."""
        samples: list[tuple[float, int, int]] = []  # (s since t0, messages, readings) from the stats files
        stored = 0
        next_count = t0 + self.args.poll
        next_say = t0 + 5.0
        last_progress, progress_at = (-1, -1, -1), t0
        stats_done: float | None = None
        timeout = self.args.case_timeout
        while True:
            now = time.monotonic()
            st = [c.stats() for c in procs]
            msgs = sum(int(s.get("messages", 0)) for s in st)
            readings = sum(int(s.get("readings_written", 0)) for s in st)
            if not samples or samples[-1][1:] != (msgs, readings):
                samples.append((now - t0, msgs, readings))
            if stats_done is None and readings >= expected:
                stats_done = now - t0
            if now >= next_count or stats_done is not None:
                stored = self.influx.count(db)
                next_count = time.monotonic() + self.args.poll
                if stored >= expected:
                    end = time.monotonic()
                    break
            if (msgs, readings, stored) != last_progress:
                last_progress, progress_at = (msgs, readings, stored), now
            elif now - progress_at > STALL_S:
                raise BenchError(
                    f"{label}: no progress for {STALL_S:.0f} s at {stored:,} of {expected:,} readings in "
                    f"InfluxDB (collector: {msgs:,} messages); see {procs[0].log}"
                )
            if now - t0 > timeout:
                raise BenchError(
                    f"{label}: InfluxDB holds {stored:,} of {expected:,} readings after {timeout:.0f} s"
                )
            if now >= next_say:
                next_say += 5.0
                say(
                    f"{label}: collector {msgs:,} messages, {readings:,} readings; "
                    f"InfluxDB {stored:,} of {expected:,}"
                )
            time.sleep(0.1)
        seconds = end - t0

        def at(frac: float) -> tuple[float, int, int] | None:
            return next((s for s in samples if s[2] >= frac * expected), None)

        lo, hi = at(0.1), at(0.9)
        if hi is None and samples and samples[-1][2] >= 0.5 * expected:  # the stats files lag InfluxDB
            hi = samples[-1]
        steady_m = steady_r = None
        if lo and hi and hi[0] - lo[0] >= 2.0:
            steady_m = _rate(hi[1] - lo[1], hi[0] - lo[0])
            steady_r = _rate(hi[2] - lo[2], hi[0] - lo[0])
        first = next((s[0] for s in samples if s[1] > 0), None)
        return {
            "seconds": seconds,
            "end_wall": time.time() - (time.monotonic() - end),
            "steady_msgs_per_s": steady_m,
            "steady_readings_per_s": steady_r,
            "first_batch_s": round(first, 2) if first is not None else None,
            "stats_done_s": round(stats_done, 2) if stats_done is not None else None,
            "timeline": [[round(t, 2), m, r] for t, m, r in samples],  # s, messages, readings (stats files)
        }

    # ------------------------------------------------------------------ live run

    def live(self) -> None:
        rate, duration = self.sizes.live_rate, self.sizes.live_seconds
        label = "live"
        messages = int(rate * duration)
        db = self.fresh_db("live")
        cid = f"chainwatch-collector-bench-live-{self.tag}"
        self.sessions.add(cid)
        c = CollectorProcess(self, cid, db)
        say(f"{label}: starting the collector")
        c.start()
        self.running.append(c)
        c.wait_connected()
        time.sleep(1.0)
        start_at = time.time() + 3.0
        jobs = make_jobs(
            self.devices,
            messages,
            1,
            host=self.settings.mqtt_host,
            port=self.settings.mqtt_port,
            name=f"bench-live-{self.tag}",
            base_time=self.base_time,
            processes=self.args.publishers,
            rate=rate,
            start_at=start_at,
        )
        samples: list[tuple[float, int, float]] = []  # (wall time, collector messages, collector CPU s)

        def tick() -> None:
            samples.append((time.time(), int(c.stats().get("messages", 0)), c.cpu_s()))

        say(
            f"{label}: {len(jobs)} paced publishers offer {rate:,.0f} msgs/s of 1 reading "
            f"for {duration:.0f} s"
        )
        try:
            pubs = run_publishers(jobs, tick=tick, progress=lambda m: say(f"{label}: {m}"))
        except PublishError as exc:
            raise BenchError(f"{label}: {exc}") from None
        pub_start = min(p.started for p in pubs)
        pub_end = max(p.started + p.total_s for p in pubs)
        sent = sum(p.acked for p in pubs)
        tick()
        window = [s for s in samples if pub_start + 1.0 <= s[0] <= pub_end]
        coll_rate = cores = None
        if len(window) >= 2 and window[-1][0] - window[0][0] >= 2.0:
            dt = window[-1][0] - window[0][0]
            coll_rate = _rate(window[-1][1] - window[0][1], dt)
            cores = round((window[-1][2] - window[0][2]) / dt, 2)
        at_end = max((s[1] for s in samples if s[0] <= pub_end + 0.5), default=0)
        say(f"{label}: publishers done ({sent:,} messages); timing until InfluxDB holds them all")
        wait = self.wait_stored(label, db, sent, [c], time.monotonic())
        use = c.stop()
        self.running.remove(c)
        stored = self.influx.count(db)
        self.sessions.forget(cid)
        self.done_with_db(db)
        res = {
            "label": f"live, {rate:,.0f} msgs/s offered",
            "offered_msgs_per_s": rate,
            "seconds": duration,
            "messages": sent,
            "published_msgs_per_s": _rate(sent, pub_end - pub_start),
            "collector_msgs_per_s": coll_rate,
            "collector_cpu_cores": cores,
            "backlog_at_publish_end": sent - at_end,
            "lag_s": round(wait["end_wall"] - pub_end, 2),
            "expected_readings": sent,
            "stored_readings": stored,
            "loss": sent - stored,
            "collector_cpu_s": use.cpu_s,
            "collector_threads_cpu_s": use.threads_cpu_s,
            "collector_peak_rss_mb": use.peak_rss_mb,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "publish": _publish_summary(pubs),
        }
        say(
            f"{label}: offered {rate:,.0f} msgs/s, published {res['published_msgs_per_s']:,.0f}, collector "
            f"{coll_rate or 0:,.0f} msgs/s, lag {res['lag_s']:.1f} s, loss {res['loss']:,}"
        )
        self.results["live"] = res

    # ------------------------------------------------------------------ all

    def run(self) -> None:
        phases = set(self.args.phases.split(",")) if self.args.phases else set(PHASES)
        unknown = phases - set(PHASES)
        if unknown:
            raise BenchError(
                f"unknown phase(s) {', '.join(sorted(unknown))}: choose from {', '.join(PHASES)}"
            )
        if "profile" in phases and self.args.no_profile:
            phases.discard("profile")
        if self.args.no_shared:
            phases.discard("shared")
        self.setup()
        sz = self.sizes
        if "influx" in phases:
            self.raw_influx()
        if "mqtt" in phases:
            self.raw_mqtt()
        drains: dict[str, Any] = {}
        self.results["drain"] = drains
        if "a" in phases:
            drains["a"] = self.drain("a", "(a) drain, 1 reading/msg", sz.a_messages, 1)
        if "b" in phases:
            drains["b"] = self.drain("b", "(b) drain, 10 readings/msg", sz.b_messages, 10)
        if "shared" in phases:
            for key, n, readings in (("a", sz.a_messages, 1), ("b", sz.b_messages, 10)):
                label = f"({key}) drain, 2 collectors ($share)"
                try:
                    drains[f"{key}_shared"] = self.drain(f"{key}shared", label, n, readings, collectors=2)
                except BenchError as exc:  # optional variant: report that it did not work, keep going
                    say(f"shared-subscription variant failed: {exc}")
                    self.results["shared_variant_error"] = f"{label}: {exc}"
                    self._kill_running()
                    break
                if drains[f"{key}_shared"]["loss"]:  # only reported when lossless
                    self.results["shared_variant_error"] = (
                        f"{label}: lost {drains[f'{key}_shared']['loss']:,}"
                    )
                    self.results["shared_variant_lossy"] = drains.pop(f"{key}_shared")
                    break
        if "live" in phases:
            self.live()
        if "profile" in phases:
            kind = Profiler().kind
            prof: dict[str, Any] = {}
            for key, n, readings in (("a", sz.profile_a, 1), ("b", sz.profile_b, 10)):
                prof[key] = self.drain(
                    f"prof{key}", f"profile ({key}) under {kind}", n, readings, profile=True
                )
            self.results["profile"] = prof
        self.results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    def _kill_running(self) -> None:
        for c in self.running:
            c.kill()
        self.running.clear()


def _replace(sizes: Sizes, **changes: Any) -> Sizes:
    return Sizes(**{**asdict(sizes), **changes})


def _busiest_share(uses: Sequence[Usage], seconds: float) -> float | None:
    """CPU of the busiest collector thread / wall time: near 1.0 means that thread is the bottleneck."""
    busiest = max((u.threads_cpu_s[0] for u in uses if u.threads_cpu_s), default=0.0)
    return round(busiest / seconds, 2) if seconds > 0 else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _publish_summary(pubs: Sequence[PublishResult]) -> dict[str, Any]:
    sent = sum(p.acked for p in pubs)
    seconds = max(p.total_s for p in pubs)
    return {
        "processes": len(pubs),
        "messages": sent,
        "seconds": round(seconds, 2),
        "msgs_per_s": _rate(sent, seconds),
        "per_process_msgs_per_s": [round(p.rate) for p in pubs],
    }


# ---------------------------------------------------------------------------------------- report


def _n(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return str(v)


def targets(results: dict[str, Any]) -> dict[str, Any]:
    drains = results.get("drain", {})
    a, b = drains.get("a"), drains.get("b")
    losses = [d["loss"] for d in [*drains.values(), *results.get("profile", {}).values()]]
    if "live" in results:
        losses.append(results["live"]["loss"])
    return {
        "a_msgs_per_s": {"target": TARGET_A_MSGS_PER_S, "value": a and a["msgs_per_s"],
                         "met": bool(a and a["msgs_per_s"] >= TARGET_A_MSGS_PER_S) if a else None},
        "b_readings_per_s": {"target": TARGET_B_READINGS_PER_S, "value": b and b["readings_per_s"],
                             "met": bool(b["readings_per_s"] >= TARGET_B_READINGS_PER_S) if b else None},
        "lossless": {"target": 0, "value": sum(losses), "met": not any(losses)},
    }  # fmt: skip


def summary(results: dict[str, Any]) -> str:
    m = results["machine"]
    out: list[str] = []
    out.append(
        f"ChainWatch ingest benchmark {results['started_at']} - {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"Python {m['python']}, Mosquitto {m['mosquitto']}, InfluxDB {m['influxdb']}"
    )
    setup = results["setup"]
    out.append(
        f"{setup['devices']:,} gateways in {setup['clinics']} clinics; machine busy "
        f"{m['cpu_busy_pct_before']:.0f} % before the bench, load average {m['loadavg_before']} "
        f"-> {m.get('loadavg_after')}; code at {m.get('git_commit')}"
        + (" with local changes in core/ or collector/" if m.get("git_changes") else "")
    )
    out.append("")
    head = (
        f"{'case':<34} {'messages':>9} {'readings':>10} {'seconds':>8} {'msgs/s':>8} {'readings/s':>10} "
        f"{'steady r/s':>10} {'CPU s':>6} {'cores':>5} {'1 thr':>5} {'RSS MB':>6} {'loss':>5}"
    )
    out.append(head)
    out.append("-" * len(head))
    for d in results.get("drain", {}).values():
        out.append(
            f"{d['label']:<34} {_n(d['messages']):>9} {_n(d['expected_readings']):>10} "
            f"{_n(d['seconds'], 1):>8} {_n(d['msgs_per_s']):>8} {_n(d['readings_per_s']):>10} "
            f"{_n(d['steady_readings_per_s']):>10} "
            f"{_n(d['collector_cpu_s'], 1):>6} {_n(d['collector_cpu_cores'], 2):>5} "
            f"{_n(d['busiest_thread_cpu_share'], 2):>5} {_n(d['collector_peak_rss_mb']):>6} "
            f"{_n(d['loss']):>5}"
        )
    if "shared_variant_error" in results:
        out.append(f"2 collectors ($share): not reported: {results['shared_variant_error'][:90]}")
    live = results.get("live")
    if live:
        out.append(
            f"{live['label']:<34} {_n(live['messages']):>9} {_n(live['expected_readings']):>10} "
            f"{_n(live['seconds'], 1):>8} {_n(live['collector_msgs_per_s']):>8} {'':>10} {'':>10} "
            f"{_n(live['collector_cpu_s'], 1):>6} {_n(live['collector_cpu_cores'], 2):>5} {'':>5} "
            f"{_n(live['collector_peak_rss_mb']):>6} {_n(live['loss']):>5}"
        )
        out.append(
            f"{'':<34} offered {live['offered_msgs_per_s']:,.0f} msgs/s, publishers achieved "
            f"{live['published_msgs_per_s']:,.0f}, collector {_n(live['collector_msgs_per_s'])} msgs/s; "
            f"backlog at publish end {live['backlog_at_publish_end']:,} msgs; lag {live['lag_s']:.1f} s"
        )
    out.append("")
    out.append("raw limits (same servers, same run)")
    for r in results.get("raw_influxdb", {}).values():
        out.append(
            f"  InfluxDB /write, {r['batch_lines']:,}-line batches, {r['writers']} writer(s): "
            f"{r['lines_per_s']:>10,.0f} lines/s  ({r['lines']:,} lines in {r['seconds']:.1f} s)"
        )
    raw = results.get("raw_mqtt_subscriber")
    if raw:
        out.append(
            f"  do-nothing paho QoS 1 subscriber (backlog):     {raw['msgs_per_s']:>10,.0f} msgs/s     "
            f"({raw['messages']:,} msgs in {raw['seconds']:.1f} s)"
        )
        out.append(
            f"  load generator ({raw['publish']['processes']} paho publishers, QoS 1):  "
            f"{raw['publish']['msgs_per_s']:>10,.0f} msgs/s"
        )
    t = results["targets"]
    out.append("")

    def verdict(x: dict[str, Any]) -> str:
        return "not run" if x["met"] is None else ("MET" if x["met"] else "NOT MET")

    if setup.get("quick"):
        out.append("--quick: drains of a second or two are mostly start-up; judge the targets on a full run")

    out.append(
        f"targets: (a) >= {TARGET_A_MSGS_PER_S:,} msgs/s: {verdict(t['a_msgs_per_s'])} "
        f"({_n(t['a_msgs_per_s']['value'])}); "
        f"(b) >= {TARGET_B_READINGS_PER_S:,} readings/s: {verdict(t['b_readings_per_s'])} "
        f"({_n(t['b_readings_per_s']['value'])}); lossless: {verdict(t['lossless'])}"
    )
    for key, p in results.get("profile", {}).items():
        for prof in p.get("profile", []):
            out.append("")
            out.append(
                f"where the collector's time goes, case ({key}) under {prof.get('profiler')} "
                f"({p['msgs_per_s']:,.0f} msgs/s while profiled):"
            )
            if "error" in prof:
                out.append(f"  {prof['error']}")
                continue
            if "stages" in prof:
                out.append(
                    f"  by stage ({prof['samples']:,} samples of the thread holding the GIL; the start-up, "
                    f"{prof['startup_pct']:.0f} % of them, left out):"
                )
                for row in prof["stages"]:
                    out.append(f"  {row['pct']:5.1f} %  {row['function']}")
            else:
                out.append("  top functions including callees:")
                for row in prof["total"][:12]:
                    out.append(f"  {row['pct']:5.1f} %  {row['function']}")
            out.append("  top functions by own time:")
            for row in prof["self"][:10]:
                out.append(f"  {row['pct']:5.1f} %  {row['function']}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="ChainWatch ingest benchmark")
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or so): to try the bench out")
    p.add_argument("--phases", default="", help=f"comma-separated subset of: {','.join(PHASES)}")
    p.add_argument("--a-messages", type=int, default=0, help="messages of case (a) (default 200,000)")
    p.add_argument("--b-messages", type=int, default=0, help="messages of case (b) (default 50,000)")
    p.add_argument("--no-shared", action="store_true", help="skip the 2-collector $share variant")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled drains")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between InfluxDB counts (default 0.5)")
    p.add_argument("--case-timeout", type=float, default=600.0, help="seconds a drain may take at most")
    add_common_options(p)
    return parse_common(p, argv)


def add_common_options(p: argparse.ArgumentParser) -> None:
    """The options both benchmarks share: the load's size and the bench's own servers."""
    p.add_argument("--clinics", type=int, default=100, help="clinics of 10 gateways each (default 100)")
    p.add_argument("--publishers", type=int, default=3, help="publisher processes (default 3)")
    p.add_argument("--mqtt-url", default=MQTT_URL, help=f"the bench's own broker (default {MQTT_URL})")
    p.add_argument(
        "--influx-url", default=INFLUX_URL, help=f"the bench's own InfluxDB (default {INFLUX_URL})"
    )
    p.add_argument("--keep-services", action="store_true", help="leave Mosquitto and InfluxDB running")
    p.add_argument("--keep-data", action="store_true", help="keep the bench's InfluxDB databases")
    p.add_argument("--traceback", action="store_true", help="show the full traceback of an error")


def parse_common(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.clinics < 1 or args.publishers < 1:
        p.error("--clinics and --publishers must be at least 1")
    return args


def _on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _errors(args: argparse.Namespace) -> Iterator[None]:
    try:
        yield
    except (BenchError, services.ServiceError, InfluxError, OSError) as exc:
        if args.traceback:
            raise
        text = str(exc)
        hint = " (bench: choose free ports with --mqtt-url/--influx-url)" if "port" in text else ""
        hint = "" if "--mqtt-url" in text else hint
        raise BenchError(f"{text}{hint}") from None


def write_results(results: dict[str, Any], stamp: str, kind: str = "ingest") -> Path:
    """``bench/results/{kind}-{stamp}.json``, written whole or not at all."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(args)
    bench.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    bench.results["argv"] = sys.argv[1:] if argv is None else argv
    failed: str | None = None
    try:
        with _errors(args):
            try:
                bench.run()
            finally:
                bench.teardown()
    except BenchError as exc:
        failed = str(exc)
    except KeyboardInterrupt:
        failed = "interrupted"
    bench.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if failed is not None:
        print(f"bench: {failed}", file=sys.stderr)
        if "machine" not in bench.results:
            return 1
        bench.results["error"] = failed
        path = write_results({**bench.results, "targets": targets(bench.results)}, bench.stamp)
        print(f"bench: partial results in {path.relative_to(ROOT)}", file=sys.stderr)
        return 1
    bench.results["targets"] = targets(bench.results)
    path = write_results(bench.results, bench.stamp)
    print(summary(bench.results))
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0 if bench.results["targets"]["lossless"]["met"] else 2


if __name__ == "__main__":
    sys.exit(main())
