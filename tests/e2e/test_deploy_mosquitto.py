"""The production broker set-up run by a real Mosquitto: ``chainwatch deploy mosquitto-auth`` makes the
password file and ACL for the demo registry, ``deploy/make-certs.sh`` the CA and server certificate,
and Debian's Mosquitto runs ``deploy/mosquitto/mosquitto.conf`` itself (paths and ports rewritten to a
temporary directory and free loopback ports).

Mosquitto drops a publish the ACL denies without telling a 3.1.1 client, so non-delivery is proven
with a marker: the denied message is published first, then an allowed one on the same connection;
once the marker has arrived, the denied message would have arrived before it.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from core import mosquitto_auth
from core.registry_model import DEMO_REGISTRY
from core.services import binary
from tests.e2e.conftest import CollectorProcess, Env, _free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MAKE_CERTS = ROOT / "deploy" / "make-certs.sh"
TIMEOUT = 10.0

GW = "qingshui-gw1"  # a gateway of clinic qingshui-thc in the demo registry
CLINIC = "qingshui-thc"
OTHER_DEV = "qingshui-scan1"  # another device of the same clinic
OTHER_CLINIC = "baihe-thc"
PLANT_SCANNER = "plant-scan1"  # the demo plant's waste scanner


@dataclass
class Broker:
    plain: int
    tls: int
    ca: Path
    passwords: dict[str, str]  # username -> password, devices and services
    files: Path
    proc: subprocess.Popen[bytes]


def _render_conf(text: str, auth: Path, certs: Path, data: Path, plain: int, tls: int) -> str:
    """The production configuration with its container paths and ports replaced, each replacement
    checked: a changed deploy/mosquitto/mosquitto.conf must change this test too."""
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))  # the directives only
    subs = [
        (r"^listener 1883$", f"listener {plain} 127.0.0.1", 1),
        (r"^listener 8883$", f"listener {tls} 127.0.0.1", 1),
        (r" /mosquitto/auth/", f" {auth}/", 2),
        (r" /mosquitto/certs/", f" {certs}/", 3),
        (r" /mosquitto/data/", f" {data}/", 1),
    ]
    for pattern, repl, count in subs:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n == count, f"{pattern!r}: {n} occurrence(s) in {CONF}, expected {count}"
    assert "/mosquitto/" not in text, "a container path is left"
    if os.geteuid() == 0:  # the container runs it as uid 1883; here, stay who we are
        text += "\nuser root\n"
    return text


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _generate(auth: Path, *registry: str) -> dict[str, str]:
    """``chainwatch deploy mosquitto-auth`` as the operator runs it; every username -> password."""
    gen = subprocess.run(
        [sys.executable, "-m", "core.cli", "deploy", "mosquitto-auth", "--out", str(auth), *registry],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert gen.returncode == 0, gen.stderr
    with (auth / "device-passwords.csv").open(newline="") as fh:
        passwords = {row["device"]: row["password"] for row in csv.DictReader(fh)}
    services = mosquitto_auth.read_services_env((auth / "service-passwords.env").read_text())
    assert set(services) == set(mosquitto_auth.SERVICE_ACCOUNTS)
    return {**passwords, **services}


@contextmanager
def _running_broker(tmp: Path) -> Iterator[Broker]:
    """Mosquitto on the production configuration, with the auth files of the demo registry."""
    exe = binary("mosquitto")
    assert exe, "Debian's mosquitto is not installed: run `chainwatch services install`"
    auth = tmp / "auth"
    passwords = _generate(auth)
    certs = tmp / "certs"
    made = subprocess.run(
        [str(MAKE_CERTS), str(certs), "localhost", "127.0.0.1"], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (certs / "broker").iterdir()) == ["ca.crt", "server.crt", "server.key"]
    plain = _free_port(set())
    tls = _free_port({plain, plain + 2})
    data = tmp / "data"
    data.mkdir()
    conf = tmp / "mosquitto.conf"
    conf.write_text(_render_conf(CONF.read_text(), auth / "broker", certs / "broker", data, plain, tls))
    log = tmp / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            assert proc.poll() is None, f"mosquitto exited: {log.read_text(errors='replace')[-2000:]}"
            return all(_port_open(p) for p in (plain, tls))

        wait_until(listening, 15, "mosquitto to listen")
        yield Broker(plain, tls, certs / "ca.crt", passwords, tmp, proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with _running_broker(tmp_path_factory.mktemp("deploy-mosquitto")) as b:
        yield b


class Client:
    """A paho client that records its connect result and every message it receives."""

    def __init__(self, username: str | None, password: str | None, client_id: str = "") -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.result: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.received: list[tuple[str, bytes]] = []
        self.subscribed: queue.Queue[list[str]] = queue.Queue()
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.result.put(str(rc))
        self.c.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: self.subscribed.put([str(x) for x in codes])

    def connect(self, port: int, ca: Path | None = None) -> str:
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca))
        self.c.connect("127.0.0.1" if ca is None else "localhost", port, keepalive=30)
        self.c.loop_start()
        return self.result.get(timeout=TIMEOUT)

    def subscribe(self, *topics: str) -> list[str]:
        self.c.subscribe([(t, 1) for t in topics])
        return self.subscribed.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)

    def until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Every message received so far, once one with ``payload`` is among them."""
        while not any(p == payload for _t, p in self.received):
            try:
                self.received.append(self.messages.get(timeout=TIMEOUT))
            except queue.Empty:
                pytest.fail(f"{payload!r} not received in {TIMEOUT:.0f} s; got {self.received}")
        return list(self.received)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def _connected(broker: Broker, clients: list[Client], user: str, port: int | None = None) -> Client:
    c = Client(user, broker.passwords[user])
    clients.append(c)
    assert c.connect(port or broker.plain) == "Success", f"{user} was refused"
    return c


def test_a_device_publishes_under_its_own_id_and_the_collector_receives_it(broker, clients) -> None:
    collector = _connected(broker, clients, mosquitto_auth.COLLECTOR)
    assert collector.subscribe("cw/v1/#") == ["Granted QoS 1"]
    gw = _connected(broker, clients, GW)
    for kind in ("telemetry", "status", "waste"):
        gw.publish(f"cw/v1/{CLINIC}/{GW}/{kind}", kind.encode())
    got = collector.until(b"waste")
    assert [t for t, _p in got] == [f"cw/v1/{CLINIC}/{GW}/{k}" for k in ("telemetry", "status", "waste")]


def test_a_device_cannot_publish_under_another_id_another_clinic_or_its_config(broker, clients) -> None:
    collector = _connected(broker, clients, mosquitto_auth.COLLECTOR)
    collector.subscribe("cw/v1/#")
    gw = _connected(broker, clients, GW)
    denied = [
        f"cw/v1/{CLINIC}/{OTHER_DEV}/telemetry",  # another device of its clinic
        f"cw/v1/{OTHER_CLINIC}/{GW}/telemetry",  # its own id under another clinic
        f"cw/v1/{CLINIC}/{GW}/config",  # its own config: only alerting writes that
        f"cw/v1/{CLINIC}/alerts",
        "cw/v1/x",
    ]
    for topic in denied:
        gw.publish(topic, b"forged")
    gw.publish(f"cw/v1/{CLINIC}/{GW}/telemetry", b"marker")
    got = collector.until(b"marker")
    assert got == [(f"cw/v1/{CLINIC}/{GW}/telemetry", b"marker")]


def test_anonymous_and_wrong_passwords_are_refused(broker, clients) -> None:
    for user, password in [
        (None, None),  # anonymous
        (GW, "not-the-password"),
        (GW, broker.passwords[OTHER_DEV]),  # another device's password
        ("unknown-device", broker.passwords[GW]),
        (mosquitto_auth.COLLECTOR, broker.passwords[mosquitto_auth.ALERTING]),
    ]:
        c = Client(user, password)
        clients.append(c)
        assert c.connect(broker.plain) == "Not authorized", (user, password)


def test_alerting_reaches_a_clinics_devices_and_no_other_clinics(broker, clients) -> None:
    gw = _connected(broker, clients, GW)
    codes = gw.subscribe(
        f"cw/v1/{CLINIC}/alerts", f"cw/v1/{CLINIC}/{GW}/config", f"cw/v1/{OTHER_CLINIC}/alerts"
    )
    assert codes[:2] == ["Granted QoS 1", "Granted QoS 1"]
    alerting = _connected(broker, clients, mosquitto_auth.ALERTING)
    alerting.publish(f"cw/v1/{OTHER_CLINIC}/alerts", b"not yours")
    alerting.publish(f"cw/v1/{CLINIC}/{GW}/config", b'{"interval_s":60}')
    alerting.publish(f"cw/v1/{CLINIC}/alerts", b"yours")
    got = gw.until(b"yours")
    assert got == [
        (f"cw/v1/{CLINIC}/{GW}/config", b'{"interval_s":60}'),
        (f"cw/v1/{CLINIC}/alerts", b"yours"),
    ]


def test_a_device_cannot_read_other_devices_data(broker, clients) -> None:
    spy = _connected(broker, clients, OTHER_DEV)
    spy.subscribe(f"cw/v1/{CLINIC}/{GW}/telemetry", f"cw/v1/{CLINIC}/alerts")
    gw = _connected(broker, clients, GW)
    gw.publish(f"cw/v1/{CLINIC}/{GW}/telemetry", b"private")
    _connected(broker, clients, mosquitto_auth.ALERTING).publish(f"cw/v1/{CLINIC}/alerts", b"marker")
    assert spy.until(b"marker") == [(f"cw/v1/{CLINIC}/alerts", b"marker")]


def test_a_plant_scanner_publishes_waste_under_each_clinic_only(broker, clients) -> None:
    collector = _connected(broker, clients, mosquitto_auth.COLLECTOR)
    # a shared subscription, as several collectors use it (CHAINWATCH_COLLECTOR_SHARED_GROUP)
    assert collector.subscribe("$share/collectors/cw/v1/+/+/waste") == ["Granted QoS 1"]
    scanner = _connected(broker, clients, PLANT_SCANNER)
    scanner.publish(f"cw/v1/{CLINIC}/{PLANT_SCANNER}/telemetry", b"not waste")
    scanner.publish(f"cw/v1/no-such-clinic/{PLANT_SCANNER}/waste", b"unknown clinic")
    scanner.publish(f"cw/v1/{CLINIC}/{GW}/waste", b"a gateway's id")
    scanner.publish(f"cw/v1/{CLINIC}/{PLANT_SCANNER}/waste", b"received")
    scanner.publish(f"cw/v1/{OTHER_CLINIC}/{PLANT_SCANNER}/waste", b"disposed")
    got = collector.until(b"disposed")
    assert [p for _t, p in got] == [b"received", b"disposed"]


def test_the_healthcheck_account_reads_the_broker_version_only(broker, clients) -> None:
    # docker-compose.yml's health check: mosquitto_sub with this account on $SYS/broker/version
    hc = _connected(broker, clients, mosquitto_auth.HEALTHCHECK)
    hc.subscribe(mosquitto_auth.HEALTHCHECK_TOPIC, "cw/v1/#")
    _connected(broker, clients, GW).publish(f"cw/v1/{CLINIC}/{GW}/telemetry", b"x")
    topic, payload = hc.messages.get(timeout=TIMEOUT)
    assert topic == "$SYS/broker/version" and payload.startswith(b"mosquitto version")
    with pytest.raises(queue.Empty):  # telemetry already delivered to others by now; not to it
        hc.messages.get(timeout=1.0)


def test_tls_listener_accepts_a_client_trusting_the_ca_and_no_other(broker, clients, tmp_path) -> None:
    collector = _connected(broker, clients, mosquitto_auth.COLLECTOR)
    collector.subscribe("cw/v1/#")
    gw = Client(GW, broker.passwords[GW])
    clients.append(gw)
    assert gw.connect(broker.tls, ca=broker.ca) == "Success"
    gw.publish(f"cw/v1/{CLINIC}/{GW}/telemetry", b"over tls")
    assert collector.until(b"over tls")[-1] == (f"cw/v1/{CLINIC}/{GW}/telemetry", b"over tls")

    # a client that trusts another CA (and one with the system's CAs) is refused by the handshake
    other = tmp_path / "other-ca"
    subprocess.run([str(MAKE_CERTS), str(other), "localhost"], capture_output=True, check=True)
    for ca in (other / "ca.crt", None):
        c = mqtt.Client(CallbackAPIVersion.VERSION2)
        c.username_pw_set(GW, broker.passwords[GW])
        c.tls_set(ca_certs=str(ca) if ca else None)
        with pytest.raises(ssl.SSLCertVerificationError):
            c.connect("localhost", broker.tls, keepalive=30)

    # TLS does not stand in for a password
    anon = Client(None, None)
    clients.append(anon)
    assert anon.connect(broker.tls, ca=broker.ca) == "Not authorized"


def test_regenerating_keeps_the_passwords_and_rotate_replaces_them(tmp_path) -> None:
    from core.registry_model import DEMO_REGISTRY, load_registry_file

    out = tmp_path / "auth"
    reg = load_registry_file(DEMO_REGISTRY)
    counter = iter(range(10_000))
    first = mosquitto_auth.write_auth(reg, out, token=lambda: f"pw{next(counter)}")
    before = (out / "device-passwords.csv").read_text()
    again = mosquitto_auth.write_auth(reg, out, token=lambda: f"pw{next(counter)}")
    assert (out / "device-passwords.csv").read_text() == before
    assert again.kept == first.devices + len(mosquitto_auth.SERVICE_ACCOUNTS)
    rotated = mosquitto_auth.write_auth(reg, out, rotate=True)
    assert rotated.kept == 0 and (out / "device-passwords.csv").read_text() != before
    for name in ("device-passwords.csv", "service-passwords.env", "broker/passwd"):
        assert (out / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    assert not any(p.name.startswith(".") for p in (out / "broker").iterdir()), "a plain-text file is left"


def test_a_new_device_logs_in_after_regenerating_and_a_reload(tmp_path, clients) -> None:
    """The operator adds a gateway to the registry, regenerates and sends SIGHUP: the new gateway logs
    in, the gateways already in the field keep their passwords and their connections."""
    with _running_broker(tmp_path) as b:
        collector = _connected(b, clients, mosquitto_auth.COLLECTOR)
        collector.subscribe("cw/v1/#")
        gw = _connected(b, clients, GW)
        new = Client("qingshui-gw2", "anything")
        clients.append(new)
        assert new.connect(b.plain) == "Not authorized"

        raw = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
        clinic = next(c for t in raw["district"]["townships"] for c in t["clinics"] if c["id"] == CLINIC)
        clinic["devices"].append({"id": "qingshui-gw2", "kind": "gateway"})
        registry = tmp_path / "registry.yaml"
        registry.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        passwords = _generate(b.files / "auth", "--registry", str(registry))
        assert {k: v for k, v in passwords.items() if k in b.passwords} == b.passwords
        b.proc.send_signal(signal.SIGHUP)

        def new_gateway_logs_in() -> bool:
            c = Client("qingshui-gw2", passwords["qingshui-gw2"])
            clients.append(c)
            return c.connect(b.plain) == "Success"

        wait_until(new_gateway_logs_in, 10, "the broker to reload its password file")
        gw2 = clients[-1]
        gw2.publish(f"cw/v1/{CLINIC}/qingshui-gw2/telemetry", b"new")
        gw.publish(f"cw/v1/{CLINIC}/{GW}/telemetry", b"old")  # the connection made before the reload
        collector.until(b"new")  # two connections: either may arrive first
        got = collector.until(b"old")
        assert (f"cw/v1/{CLINIC}/qingshui-gw2/telemetry", b"new") in got
        assert (f"cw/v1/{CLINIC}/{GW}/telemetry", b"old") in got


def test_the_collector_and_the_gateways_log_in_with_their_generated_accounts(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docker-compose.yml sets up, without Docker: the collector logs in as ``svc.collector``
    (``CHAINWATCH_MQTT_USERNAME``/``PASSWORD``), the simulated gateways each with their own password
    (``CHAINWATCH_MQTT_DEVICE_PASSWORDS_FILE``), and every reading reaches InfluxDB through the
    production broker's ACL."""
    with _running_broker(tmp_path / "broker") as b:
        env.settings = env.settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{b.plain}"})
        monkeypatch.setenv("CHAINWATCH_MQTT_USERNAME", "svc.collector")
        monkeypatch.setenv("CHAINWATCH_MQTT_PASSWORD", b.passwords["svc.collector"])
        collector = CollectorProcess(env)
        collector.start()  # waits for its subscription: refused logins never get there
        passwords_csv = b.files / "auth" / "device-passwords.csv"
        monkeypatch.setenv("CHAINWATCH_MQTT_DEVICE_PASSWORDS_FILE", str(passwords_csv))
        sent = env.simulate("--clinics", "2", "--speed", "0", "--start", "-1h", "--duration", "1h")
        assert sent["temperature_readings"] > 0
        wait_until(
            lambda: env.count("temperature", "celsius") == sent["temperature_readings"],
            60,
            "every simulated reading in InfluxDB",
        )
        assert collector.stop() == 0


def test_the_simulator_says_so_when_the_passwords_file_holds_none(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "passwords.csv"
    bad.write_text("gateway;secret\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "simulate", "--clinics", "1", "--duration", "1m"],
        env={**env.environ, "CHAINWATCH_MQTT_DEVICE_PASSWORDS_FILE": str(bad)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "no device passwords in it" in proc.stderr and "Traceback" not in proc.stderr
