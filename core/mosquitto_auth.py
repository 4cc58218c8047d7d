"""``chainwatch deploy mosquitto-auth --out DIR``: the production broker's password file and ACL, made
from the registry, for the operator who deploys ChainWatch with ``docker-compose.yml``.

Every device of the registry gets its own random password (DESIGN §3: username = device id), and so
does each service account. The ACL lets a device publish only under ``cw/v1/{its clinic}/{its id}/``
(telemetry, waste and status: not its own config) and read its own config and its clinic's alerts.
A plant's waste scanner publishes its scans on the topic of the bag's clinic
(``core.registry_model.Plant``), so it may write ``.../{its id}/waste`` under each clinic of the
district and its status under the plant. The collector reads ``cw/v1/#``; alerting reads it too and
publishes alerts and device config. What lands in ``DIR``::

    broker/passwd              hashed by the real ``mosquitto_passwd`` (mounted into the broker)
    broker/acl                 Mosquitto's acl_file (mounted into the broker)
    device-passwords.csv       0600: site,device,password for provisioning the gateways
    service-passwords.env      0600: the services' passwords as .env lines

Running it again keeps every password already in the CSV and the .env file (adding a clinic must not
lock out the gateways already in the field); ``rotate`` makes all of them new.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.registry_model import RegistryFile

# Service accounts. A "." cannot occur in a device id (core.ids.ID_PATTERN), so no device can take
# one of these names. The value is the .env variable that carries the account's password.
COLLECTOR = "svc.collector"
ALERTING = "svc.alerting"
HEALTHCHECK = "svc.healthcheck"
SERVICE_ACCOUNTS: dict[str, str] = {
    COLLECTOR: "CHAINWATCH_MQTT_COLLECTOR_PASSWORD",
    ALERTING: "CHAINWATCH_MQTT_ALERTING_PASSWORD",
    HEALTHCHECK: "CHAINWATCH_MQTT_HEALTHCHECK_PASSWORD",
}
# what a device publishes under its own id (DESIGN §3); not its config, which only alerting writes
DEVICE_PUBLISHES = ("telemetry", "waste", "status")
HEALTHCHECK_TOPIC = "$SYS/broker/version"  # retained by the broker: one message at once when it is up
MOSQUITTO_PASSWD = ("mosquitto_passwd", "/usr/bin/mosquitto_passwd")

Token = Callable[[], str]


class AuthError(RuntimeError):
    """A problem the operator can act on; one line."""


@dataclass(frozen=True)
class DeviceAccount:
    device: str
    site: str  # the clinic of a clinic device; the plant of a plant's waste scanner
    plant: bool = False


def device_accounts(reg: RegistryFile) -> list[DeviceAccount]:
    """Every device of the registry with its clinic (or plant), in registry order."""
    out = [DeviceAccount(d.id, c.id) for c in reg.clinics() for d in c.devices]
    out += [DeviceAccount(d.id, p.id, plant=True) for p in reg.district.waste.plants for d in p.devices]
    return out


def acl_text(reg: RegistryFile) -> str:
    """Mosquitto's acl_file for the registry: nothing for anyone but what is written per user."""
    clinics = [c.id for c in reg.clinics()]
    lines = [
        "# Mosquitto ACL made by `chainwatch deploy mosquitto-auth` from the registry; regenerate it.",
        "# Anything not granted here is denied; a denied publish is dropped by the broker.",
        "",
        f"user {COLLECTOR}",
        "topic read cw/v1/#",
        "",
        f"user {ALERTING}",
        "topic read cw/v1/#",
        "topic write cw/v1/+/alerts",
        "topic write cw/v1/+/+/config",
        "",
        f"user {HEALTHCHECK}",
        f"topic read {HEALTHCHECK_TOPIC}",
    ]
    for acc in device_accounts(reg):
        lines += ["", f"user {acc.device}"]
        if acc.plant:
            lines += [f"topic write cw/v1/{c}/{acc.device}/waste" for c in clinics]
            lines += [
                f"topic write cw/v1/{acc.site}/{acc.device}/status",
                f"topic read cw/v1/{acc.site}/{acc.device}/config",
            ]
        else:
            lines += [f"topic write cw/v1/{acc.site}/{acc.device}/{kind}" for kind in DEVICE_PUBLISHES]
            lines += [
                f"topic read cw/v1/{acc.site}/{acc.device}/config",
                f"topic read cw/v1/{acc.site}/alerts",
            ]
    return "\n".join(lines) + "\n"


def assign_passwords(names: Iterable[str], known: Mapping[str, str], token: Token) -> dict[str, str]:
    """A password per name: the known one if there is one, else a new ``token()``."""
    return {n: known.get(n) or token() for n in names}


def new_password() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits; URL-safe, so no quoting in CSV, .env or shells


def device_csv(accounts: Iterable[DeviceAccount], passwords: Mapping[str, str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["site", "device", "password"])
    for acc in accounts:
        w.writerow([acc.site, acc.device, passwords[acc.device]])
    return buf.getvalue()


def services_env(passwords: Mapping[str, str]) -> str:
    lines = ["# MQTT passwords of ChainWatch's services: copy these lines into .env (0600)."]
    lines += [f"{var}={passwords[user]}" for user, var in SERVICE_ACCOUNTS.items()]
    return "\n".join(lines) + "\n"


def read_device_csv(text: str) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(text))
    return {row["device"]: row["password"] for row in rows if row.get("device") and row.get("password")}


def read_services_env(text: str) -> dict[str, str]:
    by_var = {var: user for user, var in SERVICE_ACCOUNTS.items()}
    out: dict[str, str] = {}
    for line in text.splitlines():
        var, sep, value = line.strip().partition("=")
        if sep and var in by_var and value:
            out[by_var[var]] = value
    return out


# ------------------------------------------------------------------ I/O


def mosquitto_passwd() -> str:
    exe, fallback = MOSQUITTO_PASSWD
    found = shutil.which(exe) or (fallback if os.access(fallback, os.X_OK) else None)
    if found is None:
        raise AuthError("mosquitto_passwd not found: run `chainwatch services install` (Debian's mosquitto)")
    return found


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def _hash_password_file(path: Path, passwords: Mapping[str, str]) -> None:
    """The password file, hashed by ``mosquitto_passwd -U`` (sha512-pbkdf2) before it takes its place:
    passwords never appear on a command line."""
    tmp = path.with_name(f".{path.name}.plain")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
    try:
        proc = subprocess.run(
            [mosquitto_passwd(), "-U", str(tmp)], capture_output=True, text=True, check=False, timeout=300
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise AuthError(f"mosquitto_passwd -U failed (exit {proc.returncode}): {last}")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class AuthFiles:
    passwd: Path
    acl: Path
    device_csv: Path
    services_env: Path
    devices: int
    kept: int  # passwords kept from an earlier run


def write_auth(
    reg: RegistryFile, out: Path, *, rotate: bool = False, token: Token = new_password
) -> AuthFiles:
    """Write the four files of the module docstring into ``out``."""
    broker = out / "broker"
    try:
        broker.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuthError(f"cannot create {broker}: {exc.strerror or exc}") from None
    files = AuthFiles(
        broker / "passwd", broker / "acl", out / "device-passwords.csv", out / "service-passwords.env", 0, 0
    )
    accounts = device_accounts(reg)
    clash = sorted(set(SERVICE_ACCOUNTS) & {a.device for a in accounts})
    if clash:  # cannot happen with valid ids; a hand-edited registry is refused rather than trusted
        raise AuthError(f"device id(s) {', '.join(clash)} are service account names")
    known_dev = {} if rotate else read_device_csv(_read(files.device_csv))
    known_svc = {} if rotate else read_services_env(_read(files.services_env))
    dev_pw = assign_passwords([a.device for a in accounts], known_dev, token)
    svc_pw = assign_passwords(SERVICE_ACCOUNTS, known_svc, token)
    kept = sum(1 for n, p in dev_pw.items() if known_dev.get(n) == p)
    kept += sum(1 for n, p in svc_pw.items() if known_svc.get(n) == p)
    try:
        _hash_password_file(files.passwd, {**svc_pw, **dev_pw})
        _write_private(files.acl, acl_text(reg))
        files.acl.chmod(0o644)  # no secret in it
        _write_private(files.device_csv, device_csv(accounts, dev_pw))
        _write_private(files.services_env, services_env(svc_pw))
    except OSError as exc:
        raise AuthError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return AuthFiles(files.passwd, files.acl, files.device_csv, files.services_env, len(accounts), kept)


def mosquitto_auth_main(out: Path, registry: Path | None, rotate: bool, say: Callable[[str], None]) -> int:
    """``chainwatch deploy mosquitto-auth``: the registry file (default: the demo district) -> ``out``."""
    from pydantic import ValidationError

    from core.registry_model import DEMO_REGISTRY, load_registry_file

    path = registry or DEMO_REGISTRY
    try:
        reg = load_registry_file(path)
    except FileNotFoundError:
        raise AuthError(f"registry file {path} not found") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AuthError(f"{path}: {where}: {first['msg']}") from None
    files = write_auth(reg, out, rotate=rotate)
    say(
        f"{files.devices} device(s) and {len(SERVICE_ACCOUNTS)} service account(s) from {path}; "
        f"{files.kept} password(s) kept, the others new"
    )
    say(f"broker files: {files.passwd}, {files.acl} (reload a running broker with SIGHUP)")
    say(f"for the broker (uid 1883 in docker-compose.yml): sudo chown -R 1883:1883 {files.passwd.parent}")
    say(f"device passwords for the gateways: {files.device_csv}")
    say(f"service passwords for .env: {files.services_env}")
    return 0
