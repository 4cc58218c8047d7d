"""The ``chainwatch`` command (DESIGN §2). Errors are one line on stderr; ``--traceback`` shows more."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from core.settings import Settings


class CliError(Exception):
    """An error for the user: printed as one line, exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from core.services import ensure_installed, services_main

    if args.action == "install":  # what `make setup` needs: the packages, nothing started
        ensure_installed(lambda msg: print(f"[setup] {msg}", flush=True))
        return 0
    return services_main(args.action, settings)


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from core.mosquitto_auth import AuthError, mosquitto_auth_main

    registry = Path(args.registry) if args.registry else settings.registry_file
    try:
        return mosquitto_auth_main(
            Path(args.out), registry, args.rotate, lambda msg: print(f"[deploy] {msg}", flush=True)
        )
    except AuthError as exc:
        raise CliError(str(exc)) from None


def _collector(args: argparse.Namespace, settings: Settings) -> int:
    from collector.service import run_collector

    return run_collector(settings)


def _alerting(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.service import run_alerting

    return run_alerting(settings)


def _web(args: argparse.Namespace, settings: Settings) -> int:
    from web.app import serve

    try:
        serve(settings)
    except OSError as exc:  # the port is taken: one line that says so
        raise CliError(str(exc)) from None
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli import simulate_main

    return simulate_main(args, settings)


def _registry(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from core.db import make_engine
    from core.registry_store import load_registry

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"registry file {path} not found")
    try:
        reg = load_registry(make_engine(settings.sql_url), path)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: {exc}") from None
    clinics = reg.clinics()
    print(
        f"loaded {reg.district.name}: {len(clinics)} clinics, "
        f"{sum(len(c.equipment) for c in clinics)} pieces of equipment, "
        f"{sum(len(c.devices) for c in clinics)} devices, {len(reg.people())} people"
    )
    return 0


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.replay import TraceError, replay_main

    try:
        return replay_main(
            Path(args.trace),
            args.profile,
            args.interval,
            verbose=args.verbose_decisions,
            updates=args.updates,
            out=sys.stdout,
        )
    except (TraceError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _waste(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.waste.profile_cli import profile_main
    from alerting.waste.profiles import WasteProfileError
    from alerting.waste.replay import ReplayError, replay_main

    try:
        if args.action == "profile":
            return profile_main(settings, args.name, args.by, args.note, sys.stdout)
        return replay_main(
            Path(args.events),
            until=args.until,
            registry=Path(args.registry) if args.registry else settings.registry_file,
            profile=args.profile,
            verbose=args.verbose_decisions,
            updates=args.updates,
            out=sys.stdout,
        )
    except (ReplayError, WasteProfileError) as exc:
        raise CliError(str(exc)) from None


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    from alerting.notify.cli import send_test, show_log

    if args.action == "log":
        return show_log(settings, args.status, args.limit, args.json, sys.stdout)
    return send_test(settings, args.to, args.text, sys.stdout)


def _users(args: argparse.Namespace, settings: Settings) -> int:
    import getpass
    import time

    from core.db import init_db, make_engine
    from web.users import UserError, check_password, users_main

    engine = make_engine(settings.sql_url)
    init_db(engine)
    password = None
    try:
        if args.action == "add":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = getpass.getpass(f"password for {args.username}: ")
                check_password(password)
                if getpass.getpass("again: ") != password:
                    raise CliError("the passwords differ")
        return users_main(
            args.action,
            engine,
            time.time(),
            sys.stdout,
            username=getattr(args, "username", None),
            role=getattr(args, "role", None),
            scope=getattr(args, "scope", None),
            person=getattr(args, "person", None),
            language=getattr(args, "language", None),
            password=password,
        )
    except UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()


def _report(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from core.db import make_engine
    from web.reports import ReportError, monthly_record, parse_month, record_csv, record_pdf

    if args.action == "district":
        return _report_district(args, settings)
    try:
        year, month = parse_month(args.month)
        engine = make_engine(settings.sql_url)
        try:
            rec = monthly_record(engine, args.clinic, year, month, time.time())
        finally:
            engine.dispose()
        pdf = record_pdf(rec, args.lang)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    return _write_report(Path(args.out), f"{rec.clinic_id}-{rec.month_text}", pdf, record_csv(rec, args.lang))


def _write_report(out: Path, name: str, pdf: bytes, csv_text: str) -> int:
    """``{out}/{name}.pdf`` and ``.csv``, their paths printed; an unwritable place is one line."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        pdf_path, csv_path = out / f"{name}.pdf", out / f"{name}.csv"
        pdf_path.write_bytes(pdf)
        csv_path.write_text(csv_text, encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write the report to {out}: {exc}") from None
    print(pdf_path)
    print(csv_path)
    return 0


def _report_district(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from core.db import make_engine
    from web.district_report import district_csv, district_pdf, district_record, only_district
    from web.reports import ReportError, parse_month

    try:
        year, month = parse_month(args.month)
        engine = make_engine(settings.sql_url)
        try:
            district = args.district or only_district(engine)
            print(f"reading {district} for {year:04d}-{month:02d} ...", flush=True)
            rec = district_record(engine, district, year, month, time.time())
        finally:
            engine.dispose()
        judged = sum(1 for c in rec.clinics if c.rank is not None)
        print(f"{len(rec.clinics)} clinics, {judged} with a score; drawing the PDF ...", flush=True)
        pdf = district_pdf(rec, args.lang)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    name = f"{rec.district_id}-{rec.month_text}"
    return _write_report(Path(args.out), name, pdf, district_csv(rec, args.lang))


def _dashboards(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from dashboards.model import load_dashboards
    from dashboards.push import PushError, alerts_since, push

    try:
        since = time.time() - args.days * 86400.0
        alerts = [] if args.no_annotations else alerts_since(settings.sql_url, since)
        push(args.url, args.token, load_dashboards(), alerts, sys.stdout)
    except (PushError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from core.supervisor import run_all

    scenario = Path(args.scenario) if args.scenario else None
    if scenario is not None and not scenario.is_file():
        raise CliError(f"scenario file {scenario} not found")
    return run_all(settings, clinics=args.clinics, backfill=args.backfill, scenario=scenario)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chainwatch", description="ChainWatch: cold chain and medical-waste monitor"
    )
    p.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("services", help="local Mosquitto and InfluxDB: up, down or status")
    s.add_argument("action", choices=["up", "down", "status", "install"])
    s.set_defaults(func=_services)

    s = sub.add_parser("deploy", help="production deployment files (docker-compose.yml, docs/deploy.md)")
    ds = s.add_subparsers(dest="action", required=True)
    dm = ds.add_parser(
        "mosquitto-auth", help="the broker's password file and ACL from the registry, one password per device"
    )
    dm.add_argument("--out", default="deploy/mosquitto/auth", help="where to write (deploy/mosquitto/auth)")
    dm.add_argument("--registry", metavar="FILE", help="registry YAML (default: settings, else the demo)")
    dm.add_argument("--rotate", action="store_true", help="new passwords for all, not only for new accounts")
    s.set_defaults(func=_deploy)

    s = sub.add_parser("collector", help="run the collector (MQTT -> InfluxDB) in the foreground")
    s.set_defaults(func=_collector)

    s = sub.add_parser("alerting", help="run the rule engine and alert lifecycle in the foreground")
    s.set_defaults(func=_alerting)

    s = sub.add_parser("web", help="the web app (alert acknowledgement pages) on 127.0.0.1:WEB_PORT")
    s.set_defaults(func=_web)

    s = sub.add_parser("simulate", help="simulated clinics publishing over MQTT")
    try:
        from simulators.cli import add_simulate_arguments

        add_simulate_arguments(s)
    except ImportError:  # pragma: no cover - the simulator package is part of the install
        pass
    s.set_defaults(func=_simulate)

    s = sub.add_parser("registry", help="sites, equipment, people and rota")
    rs = s.add_subparsers(dest="action", required=True)
    load = rs.add_parser("load", help="load a registry YAML file (replaces the registry)")
    load.add_argument("file")
    s.set_defaults(func=_registry)

    s = sub.add_parser("rules", help="run the production rules over a recorded trace")
    rs = s.add_subparsers(dest="action", required=True)
    rp = rs.add_parser(
        "replay", help="one JSON line per alert decision for a CSV trace (time,celsius[,mains])"
    )
    rp.add_argument("trace", metavar="TRACE.csv")
    rp.add_argument("--profile", default="refrigerator", help="equipment profile (default refrigerator)")
    rp.add_argument("--interval", type=float, default=60.0, help="sampling interval in seconds (default 60)")
    rp.add_argument("--verbose", dest="verbose_decisions", action="store_true", help="add subject and values")
    rp.add_argument("--updates", action="store_true", help="also print updates (holdover forecasts)")
    s.set_defaults(func=_rules)

    s = sub.add_parser("waste", help="medical waste: run the production waste rules over recorded events")
    ws = s.add_subparsers(dest="action", required=True)
    wr = ws.add_parser(
        "replay", help="one JSON line per alert decision for a JSON-lines file of waste events"
    )
    wr.add_argument("events", metavar="EVENTS.jsonl")
    wr.add_argument("--until", help="advance the clock to this time at the end (ISO 8601 or epoch seconds)")
    wr.add_argument("--registry", metavar="FILE", help="registry YAML for pickup schedules and profiles")
    wr.add_argument("--profile", help="waste profile (default: the registry's, national)")
    wr.add_argument("--verbose", dest="verbose_decisions", action="store_true", help="add clinic and values")
    wr.add_argument("--updates", action="store_true", help="also print updates")
    wp = ws.add_parser("profile", help="the waste profile in force; with NAME, switch to it")
    wp.add_argument("name", nargs="?", metavar="NAME")
    wp.add_argument("--by", default="operator", help="who switches (kept with the switch)")
    wp.add_argument("--note", help="why (kept with the switch)")
    s.set_defaults(func=_waste)

    s = sub.add_parser("notify", help="SMS: the delivery log, or a test message through the channels")
    from alerting.notify.cli import add_notify_arguments

    add_notify_arguments(s)
    s.set_defaults(func=_notify)

    s = sub.add_parser("users", help="web logins: add a user, list them")
    us = s.add_subparsers(dest="action", required=True)
    ua = us.add_parser("add", help="add a web user (asks for the password twice)")
    ua.add_argument("username")
    ua.add_argument("--role", required=True, choices=["clinic_staff", "district_officer", "admin"])
    ua.add_argument("--scope", help="the clinic id (clinic_staff) or district id (district_officer)")
    ua.add_argument("--person", help="the registry person this login acts as (acknowledgements, ...)")
    ua.add_argument("--language", choices=["zh-CN", "en"], help="default: the person's, else zh-CN")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from the first line")
    us.add_parser("list", help="every web user: username, role, scope, language")
    s.set_defaults(func=_users)

    s = sub.add_parser("report", help="reports: the monthly cold-chain record of a clinic (PDF and CSV)")
    rps = s.add_subparsers(dest="action", required=True)
    rm = rps.add_parser("monthly", help="the monthly cold-chain record: {clinic}-{YYYY-MM}.pdf and .csv")
    rm.add_argument("--clinic", required=True, help="clinic id, e.g. qingshui-thc")
    rm.add_argument("--month", required=True, help="YYYY-MM, clinic time")
    rm.add_argument("--lang", choices=["zh-CN", "en"], default="zh-CN")
    rm.add_argument("--out", default=".", help="directory to write to (default: the current one)")
    rd = rps.add_parser(
        "district", help="compliance of a district's clinics: {district}-{YYYY-MM}.pdf and .csv"
    )
    rd.add_argument("--district", help="district id (default: the registry's only district)")
    rd.add_argument("--month", required=True, help="YYYY-MM, clinic time")
    rd.add_argument("--lang", choices=["zh-CN", "en"], default="zh-CN")
    rd.add_argument("--out", default=".", help="directory to write to (default: the current one)")
    s.set_defaults(func=_report)

    s = sub.add_parser("dashboards", help="Grafana: upload the dashboards and alert annotations")
    ds = s.add_subparsers(dest="action", required=True)
    dp = ds.add_parser("push", help="upload every dashboard (overwrite) and the alert annotations")
    dp.add_argument("--url", required=True, help="Grafana's URL, e.g. http://grafana.example:3000")
    dp.add_argument("--token", required=True, help="a Grafana service-account token (Editor role)")
    dp.add_argument("--days", type=float, default=30, help="alerts of the last DAYS days (default 30)")
    dp.add_argument("--no-annotations", action="store_true", help="dashboards only")
    s.set_defaults(func=_dashboards)

    s = sub.add_parser("run", help="everything: services, collector and simulated clinics (Ctrl-C stops)")
    s.add_argument("--clinics", type=int, default=10)
    s.add_argument("--backfill", default="6h", help="simulated history published at start (e.g. 6h, 0)")
    s.add_argument("--scenario", help="a scenario file for the simulated clinics (see `simulate --scenario`)")
    s.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, Settings())
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        code = exc.code if isinstance(exc, CliError) else 1
        print(f"chainwatch {args.command}: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
