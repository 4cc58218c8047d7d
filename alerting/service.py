"""``chainwatch alerting``: the rule engine as a service.

- Its own persistent MQTT session (client id ``CHAINWATCH_ALERTING_CLIENT_ID``, QoS 1, clean start off,
  independent of the collector's), subscribed to telemetry. A message is acknowledged after the
  decisions it caused are stored, so a crash re-delivers rather than forgets.
- APScheduler runs the time-driven rules every ``CHAINWATCH_ALERTING_TICK_S`` on the injected clock
  (device offline fires while a device sends nothing).
- Decisions go through the alert lifecycle (SQL); each change is written to InfluxDB (``alert``) and
  published on ``cw/v1/{clinic}/alerts``.
- At start it rebuilds its state: the last 26 h of readings from InfluxDB go through the engine, and
  the decisions through the lifecycle, which ignores those it has already applied. So a restart in the
  middle of an excursion neither fires a second alert nor forgets one, and an alert whose condition
  cleared while the service was down is resolved.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import paho.mqtt.client as mqtt
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.checks_store import EquipmentCheckRow, init_check_tables
from alerting.daily import compute_day, init_daily_tables
from alerting.feed import build_engine_from_sql, feed_telemetry
from alerting.impact import record_impacts, refresh_impacts
from alerting.lifecycle import AlertChange, apply_all
from alerting.messages import Names
from alerting.notify.dispatcher import dispatcher_from_settings
from alerting.rules.checks import Check, CheckMachine, CheckSettings, applies_to, boundaries, check_settings
from alerting.rules.engine import Engine
from alerting.rules.types import Decision
from alerting.sinks import alert_line, alert_payload, alert_topic
from alerting.store import init_alert_tables
from alerting.waste.clock import WasteClock
from alerting.waste.engine import WasteEngine, schedule_from
from alerting.waste.profiles import all_profiles
from alerting.waste.scanners import ScannerWatch
from core.clinic_time import CLINIC_UTC_OFFSET_S
from core.clock import Clock, SystemClock
from core.db import ClinicRow, DistrictRow, EquipmentRow, PersonRow, TownshipRow, init_db, make_engine
from core.influx import InfluxClient, InfluxError
from core.mqtt import connect_persistent, persistent_client
from core.profiles import profile_settings
from core.protocol import (
    Kind,
    Limits,
    ProtocolError,
    WasteEvent,
    parse_status,
    parse_telemetry,
    parse_topic,
    parse_waste,
)
from core.registry_store import (
    ensure_registry,
    equipment_list,
    profile_overrides,
    registry_fingerprint,
    waste_registry,
    waste_scanners,
)
from core.settings import Settings
from core.waste_store import init_waste_tables, profile_in_force, scans_to_rebuild

log = logging.getLogger("chainwatch.alerting")
logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run

REBUILD_S = 26 * 3600.0


@dataclass
class Stats:
    received: int = 0
    decisions: int = 0
    changes: int = 0
    rebuilt_readings: int = 0
    rebuilt_scans: int = 0
    rebuild_seconds: float = 0.0
    ticks: int = 0
    parse_errors: int = 0
    sms_sent: int = 0
    sms_failed: int = 0
    started_at: float = field(default_factory=time.time)


def registry_names_and_tags(sql: SqlEngine) -> tuple[Names, dict[str, dict[str, str]]]:
    """Human names by id (for alert texts) and clinic -> location tags (for the alert points)."""
    with Session(sql) as s:
        zh: dict[str, str] = {}
        for row in s.scalars(select(DistrictRow)):
            zh[row.id] = row.name
            zh[row.bureau_id] = row.bureau_name
        for t in s.scalars(select(TownshipRow)):
            zh[t.id] = t.name
        township = {t.id: t.district_id for t in s.scalars(select(TownshipRow))}
        tags: dict[str, dict[str, str]] = {}
        for c in s.scalars(select(ClinicRow)):
            zh[c.id] = c.name
            tags[c.id] = {
                "district": township.get(c.township_id, ""),
                "township": c.township_id,
                "clinic": c.id,
            }
        for e in s.scalars(select(EquipmentRow)):
            zh[e.id] = e.name
        for p in s.scalars(select(PersonRow)):
            zh[p.id] = p.name
    return Names(zh=zh), tags


class AlertingService:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.sql = make_engine(settings.sql_url)
        init_db(self.sql)
        init_alert_tables(self.sql)
        init_check_tables(self.sql)
        init_daily_tables(self.sql)
        ensure_registry(self.sql, settings.registry_file)
        self.engine: Engine = build_engine_from_sql(self.sql)
        self.checks_evaluated_at: float | None = None
        overrides = profile_overrides(self.sql)
        self.checks = {
            e.id: CheckMachine(e.id, check_settings(profile_settings(e.profile, overrides)), clinic=e.clinic)
            for e in equipment_list(self.sql)[0]
            if applies_to(e.profile)
        }
        self.check_groups: dict[CheckSettings, list[CheckMachine]] = {}  # one group per profile's settings
        for machine in self.checks.values():
            self.check_groups.setdefault(machine.settings, []).append(machine)
        self.names, self.tags = registry_names_and_tags(self.sql)
        init_waste_tables(self.sql)
        wreg = waste_registry(self.sql)
        self.waste_default_profile = wreg.profile
        self.waste_profiles = all_profiles(wreg.profiles)
        self.waste = WasteEngine(
            {c: schedule_from(days, by) for c, (days, by) in wreg.pickups.items()},
            self.waste_profiles[profile_in_force(self.sql, wreg.profile)],
        )
        self.scanners = ScannerWatch.of(waste_scanners(self.sql))
        self.waste_clock = WasteClock()  # the time the waste timers are judged at (alerting.waste.clock)
        self.dispatcher = dispatcher_from_settings(settings, self.sql, self.clock, self.names)
        self.notify_lock = threading.Lock()
        gc.collect()
        gc.freeze()  # the engine's many long-lived objects: kept out of every later full collection
        self.influx = InfluxClient(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password,
            create_missing_database=True,
        )
        self.limits = Limits(settings.max_records_per_message, settings.future_tolerance_s)
        self.lock = threading.Lock()  # the engine and the store: one message or tick at a time
        self.stats = Stats()
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.registry_version = registry_fingerprint(self.sql)  # what this service's state was built from
        self.registry_changed = threading.Event()
        self.client = self._make_client()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.stats_path = settings.data_dir / "alerting.json"

    # ------------------------------------------------------------------ decisions -> store -> sinks

    def handle(self, decisions: Iterable[Decision]) -> list[AlertChange]:
        """Apply decisions to the alert store, then write and publish the changes. Caller holds the lock."""
        decisions = list(decisions)
        if not decisions:
            return []
        self.stats.decisions += len(decisions)
        with Session(self.sql) as session, session.begin():
            changes = apply_all(session, decisions, self.clock.now(), names=self.names)
            impacted = record_impacts(session, changes, self.clock.now())  # the lots inside, doses at risk
        if changes:
            self.stats.changes += len(changes)
            self._write(changes)
        if impacted:  # their exposure brought up to date, the recommendations with it (alerting.impact)
            refresh_impacts(self.sql, self.influx, impacted, self.clock.now())
        return changes

    def _write(self, changes: list[AlertChange]) -> None:
        lines = "\n".join(alert_line(c, self.tags.get(c.clinic or "", {"clinic": c.clinic})) for c in changes)
        try:
            self.influx.write_retrying(lines, precision="ns")
        except InfluxError as exc:  # the SQL store holds the alert; the InfluxDB copy is for dashboards
            log.warning("could not write %d alert change(s) to InfluxDB: %s", len(changes), exc)
        for c in changes:
            if c.clinic:
                self.client.publish(alert_topic(c.clinic), alert_payload(c), qos=1)
            log.info("alert %s %s %s %s: %s", c.alert_id, c.kind, c.rule, c.subject, c.message)

    # ------------------------------------------------------------------ rebuild

    def rebuild(self) -> None:
        """Feed the last 26 h of stored readings through the engine, all devices merged in time order
        (as they happened), and their decisions through the lifecycle, which skips those it has."""
        started = time.monotonic()
        now = self.clock.now()
        since_ns = int((now - REBUILD_S) * 1e9)
        events: list[tuple[float, int, str, str, float]] = []  # (time, kind, device, probe, value)
        for meas, field_name in (("temperature", "celsius"), ("probe_fault", "raw")):
            q = f'SELECT "{field_name}" FROM "{meas}" WHERE time > {since_ns} GROUP BY "device", "probe"'
            for series in self._query(q):
                device, probe = series["tags"].get("device") or "", series["tags"].get("probe") or ""
                events.extend((t / 1000, 2, device, probe, v) for t, v in series["values"] if v is not None)
        q = f'SELECT "mains_on", "battery_pct" FROM "device_health" WHERE time > {since_ns} GROUP BY "device"'
        for series in self._query(q):
            device = series["tags"].get("device") or ""
            for t, mains, battery in series["values"]:
                if mains is not None:
                    events.append((t / 1000, 0, device, "mains", float(mains)))
                if battery is not None:
                    events.append((t / 1000, 1, device, "battery", float(battery)))
        events.sort()
        decisions: list[Decision] = []
        e = self.engine
        for t, kind, device, probe, value in events:
            decisions += e.seen(device, t, t)
            if kind == 0:
                decisions += e.mains(device, t, bool(value))
            elif kind == 1:
                decisions += e.battery(device, t, value)
            else:
                decisions += e.temperature(device, probe, t, value)
        decisions += e.flush()
        with self.lock:
            self.handle(sorted(decisions, key=lambda d: d.time))
        self.stats.rebuilt_readings = len(events)
        self.stats.rebuilt_scans = self._rebuild_waste()
        self.stats.rebuild_seconds = round(time.monotonic() - started, 3)
        log.info(
            "rebuilt the rule state from %d samples of the last 26 h in %.1f s",
            len(events),
            self.stats.rebuild_seconds,
        )

    def _query(self, q: str) -> list[dict[str, Any]]:
        try:
            return self.influx.query(q, epoch="ms")
        except InfluxError as exc:
            log.warning("rebuild: InfluxDB query failed (%s); starting from the live data only", exc)
            return []

    # ------------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        c = persistent_client(self.settings.alerting_client_id)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *_a: self.connected.set()
        c.on_disconnect = lambda *_a: self.connected.clear()
        c.on_message = self._on_message
        return c

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the connection: %s", rc)
            return
        client.subscribe([("cw/v1/+/+/telemetry", 1), ("cw/v1/+/+/waste", 1), ("cw/v1/+/+/status", 1)])
        log.info("connected to %s as %s", self.settings.mqtt_url, self.settings.alerting_client_id)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self.stopping.is_set():
            return  # not acknowledged: the broker redelivers it at the next start
        now = self.clock.now()
        self.stats.received += 1
        try:
            topic = parse_topic(msg.topic)
            if topic.kind is Kind.telemetry:
                tm = parse_telemetry(topic.clinic, topic.device, msg.payload, now, self.limits)
                with self.lock:
                    self.handle(feed_telemetry(self.engine, tm, now))
            elif topic.kind is Kind.waste:
                scans = parse_waste(msg.payload, now, self.limits)
                with self.lock:
                    self.handle(self._waste_scans(topic.clinic, topic.device, scans, now))
            elif topic.kind is Kind.status:
                st = parse_status(msg.payload, now, self.limits)
                with self.lock:
                    at = self._waste_time(now)
                    decisions = self.scanners.tick(at)
                    # a status's own time when newer (a device saying "offline" as it leaves); never
                    # the future; a last will carries its connect time, older: the judged time then
                    since = min(max(at, st.ts or at), now)
                    self.handle(decisions + self.scanners.status(topic.device, st.state == "online", since))
            else:
                raise ProtocolError("bad_topic", f"not a topic the rules read: {topic.kind}")
        except ProtocolError:
            self.stats.parse_errors += 1  # the collector keeps it as a dead letter; nothing to decide
        client.ack(msg.mid, msg.qos)

    def tick(self) -> None:
        now = self.clock.now()
        with self.lock:
            self.stats.ticks += 1
            self.handle(self.engine.tick(now))
            self._waste_profile()
            waste_now = self._waste_time(now)
            self.handle(self.waste.tick(waste_now) + self.scanners.tick(waste_now))
            if self.settings.alerting_checks:
                self.handle(self._check_decisions(now))

    def _waste_profile(self) -> None:
        """A switch of the waste profile (``chainwatch waste profile NAME``) takes effect at the next tick."""
        name = profile_in_force(self.sql, self.waste_default_profile)
        if name != self.waste.profile.name and name in self.waste_profiles:
            log.info("waste profile: %s -> %s", self.waste.profile.name, name)
            self.waste.set_profile(self.waste_profiles[name])

    def _waste_scans(
        self, clinic: str, device: str, scans: Iterable[WasteEvent], now: float
    ) -> list[Decision]:
        """Scans in time order; whenever one is newer than all before it, the timers are judged at its
        time first (as the replay command does): what fell due before a scan is decided before it, so
        the outcome does not depend on how often the service ticks or how fast a backlog arrives."""
        out: list[Decision] = []
        for ev in sorted(scans, key=lambda e: e.ts):
            before = self.waste_clock.judged
            self.waste_clock.heard(device, ev.ts, now)
            t = self._waste_time(now)
            if t > before:
                out += self.waste.tick(t) + self.scanners.tick(t)
            out += self.waste.add(clinic, ev)
        return out

    def _waste_time(self, now: float) -> float:
        return self.waste_clock.time(now, self.scanners.offline())

    def _rebuild_waste(self) -> int:
        """The waste rules' state from the scans in SQL (open bags, and bags closed in the last week), in
        the order they arrived; the lifecycle skips the decisions it already has."""
        decisions: list[Decision] = []
        now = self.clock.now()
        scans = scans_to_rebuild(self.sql, now)
        for _received_at, scan in scans:  # in arrival order, judged as when they came
            decisions += self._waste_scans(scan.clinic, scan.device or "", [scan.event], now)
        with self.lock:
            self.handle(sorted(decisions, key=lambda d: d.time))
        return len(scans)

    def notify(self) -> None:
        """Escalations, reminders, grouping and delivery of SMS (``alerting.notify.dispatcher``). Apart
        from the engine's lock: a slow provider never holds up the rules."""
        with self.notify_lock:
            try:
                result = self.dispatcher.tick(self.clock.now())
            except Exception:  # the next tick tries again; nothing is lost, the state is in SQL
                log.exception("notification tick failed")
                return
        if result.notices or result.composed or result.sent or result.failed or result.unknown:
            log.info("notifications: %s", result)
        self.stats.sms_sent += result.sent
        self.stats.sms_failed += result.failed

    def _check_decisions(self, now: float) -> list[Decision]:
        """The twice-daily check: people's checks (recorded in SQL) against the clock, not the data."""
        since = now - 2 * 86400
        by_equipment: dict[str, list[Check]] = {}
        with Session(self.sql) as s:
            rows = s.scalars(select(EquipmentCheckRow).where(EquipmentCheckRow.checked_at >= since))
            for row in rows:
                by_equipment.setdefault(row.equipment_id, []).append(row.as_check())
        # every machine when a due time or a slot's end has passed since the last tick (four times a
        # day), else only those with checks: nothing else can change (100,000 machines cost ~0.4 s)
        last, self.checks_evaluated_at = self.checks_evaluated_at, now
        out: list[Decision] = []
        for settings, machines in self.check_groups.items():
            if last is None or boundaries(settings, last, now):
                chosen = machines  # a due time or a slot's end passed: every machine of these settings
            else:
                chosen = [m for eq in by_equipment if (m := self.checks.get(eq)) and m.settings == settings]
            for machine in chosen:
                out.extend(machine.evaluate(now, by_equipment.get(machine.subject, [])))
        return sorted(out, key=lambda d: d.time)

    def daily(self) -> None:
        """Yesterday's statistics per equipment (clinic local time), for reports and needs-attention."""
        from alerting.exposure import run_daily  # issue 9: every lot in stock; logs its own failure
        from alerting.impact import refresh_open_impacts

        run_daily(self.sql, self.influx, self.clock.now())
        try:  # open heat and freeze alarms: their recommendations with today's exposure
            refresh_open_impacts(self.sql, self.influx, self.clock.now())
        except Exception:
            log.exception("the impact of the open heat and freeze alarms could not be refreshed")
        local = timezone(timedelta(seconds=CLINIC_UTC_OFFSET_S))
        day = (datetime.fromtimestamp(self.clock.now(), local) - timedelta(days=1)).date()
        try:
            n = compute_day(self.sql, self.influx, day)
        except Exception:  # the next run (or a manual one) does it again: a day is replaced, not added
            log.exception("daily statistics for %s failed", day)
            return
        log.info("daily statistics for %s: %d piece(s) of equipment", day, n)

    def _write_stats(self) -> None:
        data = {**self.stats.__dict__, "connected": self.connected.is_set()}
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.stats_path)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.stats_path.unlink(missing_ok=True)
        self.rebuild()
        s = self.settings
        connect_persistent(self.client, s, 1000)
        self.scheduler.add_job(self.tick, "interval", seconds=s.alerting_tick_s, id="tick", max_instances=1)
        self.scheduler.add_job(self._write_stats, "interval", seconds=1, id="stats", max_instances=1)
        every = s.alerting_registry_check_s
        self.scheduler.add_job(self._watch_registry, "interval", seconds=every, id="registry")
        recovered = self.dispatcher.recover(self.clock.now())
        if recovered:
            log.warning(
                "%d SMS were being sent when the service stopped: marked unknown, not resent", recovered
            )
        self.scheduler.add_job(self.notify, "interval", seconds=s.notify_tick_s, id="notify", max_instances=1)
        local = timezone(timedelta(seconds=CLINIC_UTC_OFFSET_S))
        self.scheduler.add_job(
            self.daily, "cron", hour=0, minute=10, timezone=local, id="daily", max_instances=1
        )
        self.scheduler.start()

    def _watch_registry(self) -> None:
        """Sets ``registry_changed`` when the registry in SQL is no longer the one this service was built
        from: ``run_alerting`` then builds the service again, as a restart would."""
        try:
            changed = registry_fingerprint(self.sql) != self.registry_version
        except Exception:  # a load in progress, a database away: look again next time
            log.exception("could not read the registry to see whether it changed")
            return
        if changed and not self.registry_changed.is_set():
            log.info("the registry changed: loading it again (rules, thresholds, checks, waste, rota, names)")
            self.registry_changed.set()

    def stop(self) -> None:
        self.stopping.set()
        self.scheduler.shutdown(wait=True)
        with self.lock:  # let a message being handled finish (and be acknowledged)
            pass
        self.client.disconnect()
        self.client.loop_stop()
        self._write_stats()
        self.influx.close()
        self.sql.dispose()
        gc.unfreeze()  # this service's objects may go: run_alerting may build another in this process


def run_alerting(settings: Settings, stop: threading.Event | None = None) -> int:
    """``chainwatch alerting``: run until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    while True:
        service = AlertingService(settings)
        service.start()
        if not service.connected.wait(15):
            log.warning("not subscribed at the MQTT broker %s yet; still trying", settings.mqtt_url)
        while not stop.wait(0.5) and not service.registry_changed.is_set():
            pass
        log.info("stopping" if stop.is_set() else "restarting with the new registry")
        service.stop()  # its MQTT session stays at the broker: what arrives meanwhile waits there
        if stop.is_set():
            return 0
