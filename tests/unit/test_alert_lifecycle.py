"""The alert store and lifecycle: one open alert per (family, subject), escalation on the same alert,
auto-resolve, corrective actions for critical cold-chain alerts, acknowledgements with who/when/why,
idempotent and order-safe application of decisions; and the two sinks' converters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting import lifecycle as lc
from alerting.lifecycle import AlertChange, AlertError, AlertNotFound, CorrectiveActionRequired
from alerting.messages import Names, registry_names
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.sinks import alert_line, alert_payload, alert_tags, alert_topic, change_time_ns
from alerting.store import AlertEventRow, AlertRow, AlertState, EventKind, init_alert_tables
from core.db import init_db, make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
FRIDGE = "qingshui-fridge1"
CLINIC = "qingshui-thc"
NAMES = Names(
    zh=registry_names(load_registry_file(DEMO_REGISTRY)).zh,
    en={CLINIC: "Qingshui THC", FRIDGE: "Vaccine fridge 1"},
)

HEAT_VALUES = {"celsius": 9.2, "minutes": 35, "threshold_c": 8.0}


def dec(
    t: float,
    rule: Rule,
    action: Action,
    severity: Severity | None = None,
    *,
    subject: str = FRIDGE,
    family: str | None = None,
    clinic: str | None = CLINIC,
    **values: Any,
) -> Decision:
    if severity is None:
        severity = Severity.critical if rule in (Rule.heat_alarm, Rule.freeze_alarm) else Severity.warning
    if family is None:
        family = {
            Rule.heat_warning: "heat",
            Rule.heat_alarm: "heat",
            Rule.cold_warning: "cold",
            Rule.freeze_alarm: "cold",
            Rule.power_outage: "power",
            Rule.device_offline: "offline",
            Rule.battery_low: "battery",
            Rule.probe_fault: "probe",
            Rule.early_warning: "early",
        }[rule]
    return Decision(t, rule, severity, action, subject, family, clinic, values)


@pytest.fixture
def engine() -> Engine:
    e = create_engine("sqlite://")
    init_alert_tables(e)
    return e


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


def apply(s: Session, *decisions: Decision, now: float | None = None) -> list[AlertChange]:
    out: list[AlertChange] = []
    for d in decisions:
        out.extend(lc.apply(s, d, d.time + 2 if now is None else now, names=NAMES))
    s.flush()
    return out


def alerts(s: Session) -> list[AlertRow]:
    return list(s.scalars(select(AlertRow).order_by(AlertRow.id)))


def kinds(s: Session, alert_id: str) -> list[str]:
    return [e.kind for e in lc.history(s, alert_id)]


def dump(s: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Everything the store holds, to compare two stores."""
    a = [r.as_json() | {"opened_by": r.opened_by, "last_decision_at": r.last_decision_at} for r in alerts(s)]
    ev = s.scalars(select(AlertEventRow).order_by(AlertEventRow.id))
    return a, [e.as_json() | {"decision": e.decision, "id": e.id} for e in ev]


# ---------------------------------------------------------------- schema


def test_importing_the_store_lets_init_db_create_the_alert_tables() -> None:
    e = create_engine("sqlite://")
    init_db(e)
    tables = set(inspect(e).get_table_names())
    assert {"alert", "alert_event", "clinic"} <= tables
    indexes = {i["name"] for i in inspect(e).get_indexes("alert")}
    assert {"ix_alert_clinic_state", "ix_alert_key_decision"} <= indexes


def test_init_alert_tables_creates_only_the_alert_tables_and_works_on_a_file_database(tmp_path: Path) -> None:
    e = make_engine(f"sqlite:///{tmp_path}/alerts.sqlite")
    init_alert_tables(e)
    init_alert_tables(e)  # twice is harmless
    assert set(inspect(e).get_table_names()) == {"alert", "alert_event"}
    with Session(e) as s:
        apply(s, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
        s.commit()
    with Session(e) as s:
        (a,) = alerts(s)
        assert a.values == HEAT_VALUES and a.started_at == T0


def test_alert_id_is_short_readable_and_dated_in_the_clinics_time_zone(session: Session) -> None:
    t = 1_795_636_800.0  # 2026-11-25 20:00 UTC = 2026-11-26 04:00 in China
    (first,) = apply(session, dec(t, Rule.heat_warning, Action.fire))
    (second,) = apply(session, dec(t + 60, Rule.battery_low, Action.fire, subject="qingshui-gw1"))
    assert first.alert_id == "A-20261126-0001"
    assert second.alert_id == "A-20261126-0002"
    assert re.fullmatch(r"A-\d{8}-\d{4}", first.alert_id)


# ---------------------------------------------------------------- one alert per key, escalation


def test_one_open_alert_per_family_and_subject(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    assert fired.kind is EventKind.fired and fired.state is AlertState.firing
    assert apply(session, dec(T0 + 60, Rule.heat_warning, Action.fire, **HEAT_VALUES)) == []
    assert [a.id for a in alerts(session)] == [fired.alert_id]
    open_ = lc.open_alert(session, "heat", FRIDGE)
    assert open_ is not None and open_.id == fired.alert_id
    # another subject, another family: alerts of their own
    apply(session, dec(T0 + 120, Rule.heat_warning, Action.fire, subject="qingshui-fridge2"))
    apply(session, dec(T0 + 120, Rule.probe_fault, Action.fire, reason="stuck"))
    assert len(alerts(session)) == 3


def test_the_database_itself_refuses_a_second_open_alert_for_a_key(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire))
    session.commit()
    row = session.get(AlertRow, fired.alert_id)
    assert row is not None
    twin = AlertRow(
        **{c: getattr(row, c) for c in ("rule", "family", "subject", "clinic", "severity", "state")}
    )
    twin.id, twin.open_key, twin.opened_by = "A-twin", row.open_key, "other"
    twin.started_at = twin.last_change_at = twin.last_decision_at = T0
    twin.message = twin.message_en = ""
    twin.values = {}
    session.add(twin)
    with pytest.raises(IntegrityError):
        session.flush()


def test_warning_escalates_to_critical_on_the_same_alert(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    (esc,) = apply(
        session,
        dec(T0 + 10 * 3600, Rule.heat_alarm, Action.escalate, celsius=11.0, minutes=600, threshold_c=8.0),
    )
    assert esc.alert_id == fired.alert_id and esc.kind is EventKind.escalated
    (a,) = alerts(session)
    assert (a.rule, a.severity, a.state, a.started_at) == ("heat_alarm", "critical", "firing", T0)
    assert a.message.startswith("【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：11.0°C")
    assert kinds(session, a.id) == ["fired", "escalated"]
    assert [e.severity for e in lc.history(session, a.id)] == ["warning", "critical"]
    # severity never goes down: a warning fire on the critical alert changes nothing
    assert apply(session, dec(T0 + 11 * 3600, Rule.heat_warning, Action.fire)) == []
    assert alerts(session)[0].severity == "critical"


def test_a_fire_of_higher_severity_escalates_and_an_escalate_with_nothing_open_opens(
    session: Session,
) -> None:
    apply(session, dec(T0, Rule.heat_warning, Action.fire))
    (esc,) = apply(session, dec(T0 + 60, Rule.heat_alarm, Action.fire))
    assert esc.kind is EventKind.escalated and len(alerts(session)) == 1
    (opened,) = apply(session, dec(T0, Rule.freeze_alarm, Action.escalate, subject="qingshui-fridge2"))
    assert opened.kind is EventKind.fired and opened.severity is Severity.critical
    assert opened.rule == "freeze_alarm"


def test_an_escalation_at_the_same_severity_changes_the_rule(session: Session) -> None:
    apply(session, dec(T0, Rule.cold_warning, Action.fire, celsius=1.5, minutes=30))
    not_sensitive = dec(
        T0 + 3600, Rule.freeze_alarm, Action.escalate, Severity.warning, freeze_sensitive=False
    )
    (esc,) = apply(session, not_sensitive)
    assert (esc.kind, esc.rule, esc.severity) == (EventKind.escalated, "freeze_alarm", Severity.warning)


# ---------------------------------------------------------------- clearing and resolving


def test_a_warning_resolves_itself_when_the_condition_clears(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    (res,) = apply(session, dec(T0 + 3600, Rule.heat_warning, Action.clear, celsius=5.0))
    assert (res.kind, res.state, res.by) == (EventKind.resolved, AlertState.resolved, "system")
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None
    assert (a.state, a.resolution, a.resolved_by, a.resolved_at) == ("resolved", "auto", "system", T0 + 3600)
    assert a.condition_cleared_at == T0 + 3600 and a.open_key is None
    assert lc.open_alert(session, "heat", FRIDGE) is None
    assert kinds(session, a.id) == ["fired", "resolved"]
    assert apply(session, dec(T0 + 3700, Rule.heat_warning, Action.clear)) == []  # nothing open


@pytest.mark.parametrize("rule", [Rule.heat_alarm, Rule.freeze_alarm])
def test_a_critical_cold_chain_alarm_stays_open_until_a_person_records_a_corrective_action(
    session: Session, rule: Rule
) -> None:
    (fired,) = apply(session, dec(T0, rule, Action.fire, celsius=-1.0, minutes=60, freeze_sensitive=True))
    (cleared,) = apply(session, dec(T0 + 7200, rule, Action.clear, celsius=4.0))
    assert cleared.kind is EventKind.condition_cleared and cleared.state is AlertState.firing
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None and a.state == "firing" and a.condition_cleared_at == T0 + 7200
    assert lc.open_alert(session, rule.value.split("_")[0] if rule is Rule.heat_alarm else "cold", FRIDGE)
    assert apply(session, dec(T0 + 7300, rule, Action.clear)) == []  # cleared already
    for empty in (None, "", "   "):
        with pytest.raises(CorrectiveActionRequired):
            lc.resolve(session, a.id, "qingshui-nurse1", empty, T0 + 8000)
    assert a.state == "firing"
    (res,) = lc.resolve(session, a.id, "qingshui-nurse1", "  疫苗已转入备用冰箱，隔离待评估  ", T0 + 8000)
    assert (res.kind, res.by, res.state, res.at) == (
        EventKind.resolved,
        "qingshui-nurse1",
        "resolved",
        T0 + 8000,
    )
    assert (a.resolution, a.corrective_action) == ("corrective_action", "疫苗已转入备用冰箱，隔离待评估")
    assert kinds(session, a.id) == ["fired", "condition_cleared", "resolved"]
    last = lc.history(session, a.id)[-1]
    assert (last.by, last.at, last.note) == ("qingshui-nurse1", T0 + 8000, "疫苗已转入备用冰箱，隔离待评估")
    # resolved stays resolved, whoever tries again
    assert lc.resolve(session, a.id, "qingshui-head", "again", T0 + 9000) == []
    assert (a.resolved_by, a.corrective_action) == ("qingshui-nurse1", "疫苗已转入备用冰箱，隔离待评估")


def test_a_critical_cold_chain_alarm_can_be_closed_before_the_condition_clears(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_alarm, Action.fire))
    (res,) = lc.resolve(session, fired.alert_id, "qingshui-head", "moved vaccines to baihe-thc", T0 + 60)
    assert res.state is AlertState.resolved
    assert apply(session, dec(T0 + 120, Rule.heat_alarm, Action.clear)) == []


@pytest.mark.parametrize(
    "decision",
    [
        dec(T0, Rule.freeze_alarm, Action.fire, Severity.warning, freeze_sensitive=False),
        dec(T0, Rule.device_offline, Action.fire, Severity.critical, subject="qingshui-gw1", silent_min=30),
    ],
    ids=["freeze-warning", "critical-not-cold-chain"],
)
def test_other_alerts_resolve_themselves_even_when_critical(session: Session, decision: Decision) -> None:
    (fired,) = apply(session, decision)
    assert fired.severity is decision.severity
    clear = Decision(
        T0 + 600, decision.rule, decision.severity, Action.clear, decision.subject, decision.family
    )
    (res,) = apply(session, clear)
    assert res.state is AlertState.resolved and res.by == "system"


def test_a_person_may_close_a_warning_without_a_corrective_action(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.battery_low, Action.fire, subject="qingshui-gw1", battery_pct=15))
    (res,) = lc.resolve(session, fired.alert_id, "qingshui-nurse2", None, T0 + 60)
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None and (a.resolution, a.corrective_action, a.resolved_by) == (
        "manual",
        None,
        "qingshui-nurse2",
    )
    assert res.by == "qingshui-nurse2"


def test_the_condition_coming_back_before_anyone_resolves_reopens_the_same_alert(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_alarm, Action.fire, celsius=12.0))
    apply(session, dec(T0 + 3600, Rule.heat_alarm, Action.clear))
    (back,) = apply(session, dec(T0 + 7200, Rule.heat_warning, Action.fire, celsius=9.5, minutes=30))
    assert back.kind is EventKind.reopened and back.alert_id == fired.alert_id
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None and a.condition_cleared_at is None and a.severity == "critical"
    assert a.values["celsius"] == 9.5  # the fresh numbers
    (again,) = apply(session, dec(T0 + 9000, Rule.heat_alarm, Action.clear))
    assert again.kind is EventKind.condition_cleared
    assert kinds(session, a.id) == ["fired", "condition_cleared", "reopened", "condition_cleared"]
    assert len(alerts(session)) == 1


# ---------------------------------------------------------------- acknowledgement


def test_acknowledge_records_who_when_and_why_and_twice_is_harmless(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    (ack,) = lc.acknowledge(session, fired.alert_id, "qingshui-nurse1", " 已关好冰箱门 ", T0 + 300)
    assert (ack.kind, ack.state, ack.by, ack.at) == (
        EventKind.acknowledged,
        AlertState.acknowledged,
        "qingshui-nurse1",
        T0 + 300,
    )
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None
    assert (a.state, a.acknowledged_by, a.acknowledged_at, a.acknowledged_note) == (
        "acknowledged",
        "qingshui-nurse1",
        T0 + 300,
        "已关好冰箱门",
    )
    assert lc.acknowledge(session, a.id, "qingshui-head", "me too", T0 + 400) == []
    assert a.acknowledged_by == "qingshui-nurse1"
    ev = lc.history(session, a.id)
    assert [(e.kind, e.by, e.at, e.note) for e in ev] == [
        ("fired", "system", T0, "heat_warning (warning)"),
        ("acknowledged", "qingshui-nurse1", T0 + 300, "已关好冰箱门"),
    ]
    # an acknowledged warning still resolves itself, and acknowledging it then changes nothing
    (res,) = apply(session, dec(T0 + 900, Rule.heat_warning, Action.clear))
    assert res.state is AlertState.resolved
    assert lc.acknowledge(session, a.id, "qingshui-nurse2", None, T0 + 1000) == []


def test_acknowledge_and_resolve_refuse_unknown_ids_and_anonymous_people(session: Session) -> None:
    with pytest.raises(AlertNotFound, match="A-20991231-0001"):
        lc.acknowledge(session, "A-20991231-0001", "qingshui-nurse1", None, T0)
    with pytest.raises(AlertNotFound):
        lc.resolve(session, "nope", "qingshui-nurse1", "x", T0)
    with pytest.raises(AlertNotFound):
        lc.history(session, "nope")
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire))
    for who in ("", "  ", "system", "x" * 65):
        with pytest.raises(AlertError):
            lc.acknowledge(session, fired.alert_id, who, None, T0 + 1)
    assert alerts(session)[0].state == "firing"


# ---------------------------------------------------------------- updates


def test_updates_change_the_numbers_every_time_but_the_history_once_per_15_minutes(session: Session) -> None:
    gw = "qingshui-gw1"
    apply(session, dec(T0, Rule.power_outage, Action.fire, subject=gw, minutes=5, forecast_min=180))
    changes = []
    for i in range(1, 41):  # the holdover forecast, every minute for 40 minutes
        d = dec(
            T0 + 60 * i, Rule.power_outage, Action.update, subject=gw, minutes=5 + i, forecast_min=180 - i
        )
        changes += apply(session, d)
    assert len(changes) == 40 and {c.kind for c in changes} == {EventKind.updated}
    (a,) = alerts(session)
    assert a.values == {"forecast_min": 140, "minutes": 45} and "预计 2.3 小时后" in a.message
    ev = lc.history(session, a.id)
    assert [(e.kind, e.at - T0) for e in ev] == [("fired", 0), ("updated", 900), ("updated", 1800)]
    assert a.last_change_at == T0 + 2400
    # the same numbers again: nothing; higher severity: escalated at once
    same = dec(T0 + 2460, Rule.power_outage, Action.update, subject=gw, minutes=45, forecast_min=140)
    assert apply(session, same) == []
    crit = dec(
        T0 + 2520, Rule.power_outage, Action.update, Severity.critical, subject=gw, minutes=46, forecast_min=0
    )
    (esc,) = apply(session, crit)
    assert esc.kind is EventKind.escalated and kinds(session, a.id)[-1] == "escalated"


def test_an_update_with_nothing_open_changes_nothing(session: Session) -> None:
    assert (
        apply(session, dec(T0, Rule.power_outage, Action.update, subject="qingshui-gw1", forecast_min=9))
        == []
    )
    assert alerts(session) == []


# ---------------------------------------------------------------- idempotency and order

SCENARIO = [
    dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES),
    dec(T0 + 600, Rule.heat_warning, Action.update, celsius=9.8, minutes=45, threshold_c=8.0),
    dec(T0 + 36000, Rule.heat_alarm, Action.escalate, celsius=11.0, minutes=600, threshold_c=8.0),
    dec(T0 + 40000, Rule.heat_alarm, Action.clear, celsius=5.0),
    dec(T0, Rule.power_outage, Action.fire, subject="qingshui-gw1", minutes=5, forecast_min=120),
    dec(T0 + 600, Rule.power_outage, Action.update, subject="qingshui-gw1", minutes=15, forecast_min=100),
    dec(T0 + 1200, Rule.power_outage, Action.clear, subject="qingshui-gw1"),
    dec(T0 + 5000, Rule.power_outage, Action.fire, subject="qingshui-gw1", minutes=5, forecast_min=90),
    dec(T0 + 100, Rule.battery_low, Action.fire, subject="qingshui-gw1", battery_pct=15),
]


def test_applying_the_same_decisions_twice_leaves_the_store_as_once(engine: Engine) -> None:
    with Session(engine) as s:
        first = apply(s, *SCENARIO)
        s.commit()
        once = dump(s)
    with Session(engine) as s:
        assert apply(s, *SCENARIO, now=T0 + 99_999) == []  # e.g. after a restart, re-evaluated
        s.commit()
        assert dump(s) == once
    assert len(first) == 9
    # and the same decisions on a fresh store give the same alerts, ids included
    other = create_engine("sqlite://")
    init_alert_tables(other)
    with Session(other) as s:
        apply(s, *SCENARIO)
        assert dump(s)[0] == once[0]


def test_a_decision_replayed_after_its_alert_was_resolved_does_not_reopen_it(session: Session) -> None:
    fire = dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES)
    escalate = dec(T0 + 60, Rule.heat_alarm, Action.fire, celsius=12.0)  # a fire that escalated
    apply(session, fire, escalate, dec(T0 + 3600, Rule.heat_alarm, Action.clear))
    (a,) = alerts(session)
    lc.resolve(session, a.id, "qingshui-nurse1", "checked vaccines, VVM ok", T0 + 4000)
    for d in (fire, escalate, fire):
        assert apply(session, d, now=T0 + 5000) == []
    # a re-evaluation that places the start a little differently is older than the alert's last
    # decision: late, so it opens nothing either
    assert apply(session, dec(T0 + 30, Rule.heat_warning, Action.fire, **HEAT_VALUES)) == []
    assert len(alerts(session)) == 1 and lc.open_alert(session, "heat", FRIDGE) is None


def test_a_new_excursion_after_resolution_opens_a_new_alert(session: Session) -> None:
    (first,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    apply(session, dec(T0 + 3600, Rule.heat_warning, Action.clear))
    (second,) = apply(session, dec(T0 + 7200, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    assert second.kind is EventKind.fired and second.alert_id != first.alert_id
    assert second.alert_id.endswith("-0002") and second.started_at == T0 + 7200
    assert [a.state for a in alerts(session)] == ["resolved", "firing"]
    assert kinds(session, first.alert_id) == ["fired", "resolved"]
    assert kinds(session, second.alert_id) == ["fired"]


def test_late_decisions_never_reopen_clear_or_overwrite_but_still_raise_severity(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    apply(
        session, dec(T0 + 1200, Rule.heat_warning, Action.update, celsius=10.0, minutes=55, threshold_c=8.0)
    )
    # a clear and an update from before the newest decision arrive late: ignored
    assert apply(session, dec(T0 + 600, Rule.heat_warning, Action.clear)) == []
    late_update = dec(T0 + 900, Rule.heat_warning, Action.update, celsius=9.0, minutes=50, threshold_c=8.0)
    assert apply(session, late_update) == []
    a = session.get(AlertRow, fired.alert_id)
    assert a is not None and a.state == "firing" and a.values["celsius"] == 10.0
    # a late escalation still raises the severity: a critical condition is never dropped
    (esc,) = apply(session, dec(T0 + 1000, Rule.heat_alarm, Action.escalate, celsius=12.0, minutes=600))
    assert esc.kind is EventKind.escalated and a.severity == "critical"
    assert a.last_decision_at == T0 + 1200 and a.last_change_at == T0 + 1200
    # the resolved past is not reopened by late data either
    apply(session, dec(T0 + 5000, Rule.heat_alarm, Action.clear))
    lc.resolve(session, a.id, "qingshui-head", "vaccines quarantined", T0 + 6000)
    assert apply(session, dec(T0 + 4000, Rule.heat_alarm, Action.escalate, celsius=13.0)) == []
    assert len(alerts(session)) == 1


def test_a_fire_that_changed_nothing_still_makes_an_older_clear_late(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire))
    assert apply(session, dec(T0 + 600, Rule.heat_warning, Action.fire)) == []  # still warm at +600
    assert apply(session, dec(T0 + 300, Rule.heat_warning, Action.clear)) == []  # so this clear is stale
    assert alerts(session)[0].state == "firing"
    # a decision at exactly the watermark is not late
    (res,) = apply(session, dec(T0 + 600, Rule.heat_warning, Action.clear))
    assert res.alert_id == fired.alert_id and res.state is AlertState.resolved


# ---------------------------------------------------------------- queries


def test_list_alerts_by_state_and_clinic(session: Session) -> None:
    apply(session, *SCENARIO)
    apply(session, dec(T0 + 50, Rule.heat_warning, Action.fire, subject="baihe-fridge1", clinic="baihe-thc"))
    everything = lc.list_alerts(session)
    assert [a.started_at for a in everything] == sorted((a.started_at for a in everything), reverse=True)
    assert {a.clinic for a in lc.list_alerts(session, clinic="baihe-thc")} == {"baihe-thc"}
    open_ = lc.list_alerts(session, state="open", clinic=CLINIC)
    assert {(a.rule, a.state) for a in open_} == {
        ("heat_alarm", "firing"),  # waits for a corrective action
        ("power_outage", "firing"),
        ("battery_low", "firing"),
    }
    assert len(lc.list_alerts(session, state="resolved")) == 1
    assert len(lc.list_alerts(session, limit=2)) == 2
    with pytest.raises(ValueError):
        lc.list_alerts(session, state="bogus")


def test_decision_values_are_stored_as_plain_json() -> None:
    import numpy as np

    plain = lc.plain_values(
        {"celsius": np.float64(9.25), "n": np.int64(3), "bad": float("nan"), "rule": Rule.heat_alarm}
    )
    assert plain == {"bad": None, "celsius": 9.25, "n": 3, "rule": "heat_alarm"}
    assert json.dumps(plain)


# ---------------------------------------------------------------- sinks


def _parse_line(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """A small line-protocol reader (escapes and quoted strings) for the checks below."""
    parts: list[str] = []
    buf, quoted, i = "", False, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            buf += line[i : i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
        i += 1
    parts.append(buf)
    assert len(parts) == 3, parts

    def split(s: str, sep: str) -> list[str]:
        out, cur, q, j = [], "", False, 0
        while j < len(s):
            if s[j] == "\\":
                cur += s[j : j + 2]
                j += 2
                continue
            if s[j] == '"':
                q = not q
            if s[j] == sep and not q:
                out.append(cur)
                cur = ""
            else:
                cur += s[j]
            j += 1
        return [*out, cur]

    series = split(parts[0], ",")
    tags = dict(kv.split("=", 1) for kv in series[1:])
    fields = dict(split(kv, "=")[:2] for kv in split(parts[1], ","))  # type: ignore[misc]
    return series[0], tags, fields, int(parts[2])


def test_alert_line_is_the_alert_measurement_of_design_section_4(session: Session) -> None:
    apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    (esc,) = apply(session, dec(T0 + 36000.5, Rule.heat_alarm, Action.escalate, celsius=11.0, minutes=600))
    tags = alert_tags(load_registry_file(DEMO_REGISTRY))[CLINIC]
    line = alert_line(esc, tags)
    measurement, t, f, ns = _parse_line(line)
    assert measurement == "alert"
    assert t == {
        "clinic": CLINIC,
        "district": "demo-district",
        "township": "qingshui",
        "rule": "heat_alarm",
        "severity": "critical",
    }
    assert list(t) == sorted(t)
    assert set(f) == {"alert_id", "state", "subject", "message"}
    assert f["alert_id"] == f'"{esc.alert_id}"' and f["state"] == '"firing"' and f["subject"] == f'"{FRIDGE}"'
    assert f["message"] == json.dumps(esc.message, ensure_ascii=False)
    assert ns == 1_795_036_000_500 * 1_000_000 + 1  # ms precision + the kind's offset
    assert line == alert_line(esc, tags)  # same change, same point


def test_alert_line_escapes_and_flattens_awkward_text() -> None:
    change = AlertChange(
        alert_id="A-1",
        clinic=None,
        rule="heat_warning",
        severity=Severity.warning,
        state=AlertState.firing,
        subject="fridge 1",
        family="heat",
        kind=EventKind.fired,
        at=T0,
        by="system",
        message='say "hi"\\\nnext line',
        message_en="",
        started_at=T0,
    )
    line = alert_line(change, {"district": "d,1", "township": ""})
    assert "\n" not in line
    assert line.startswith("alert,district=d\\,1,rule=heat_warning,severity=warning ")
    _, tags, fields, ns = _parse_line(line)
    assert "clinic" not in tags and "township" not in tags
    assert fields["message"] == '"say \\"hi\\"\\\\ next line"'
    assert fields["subject"] == '"fridge 1"'
    assert ns == int(T0) * 1_000_000_000


def test_events_of_one_alert_at_the_same_time_are_distinct_points(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.power_outage, Action.fire, subject="qingshui-gw1", minutes=5))
    (upd,) = apply(session, dec(T0, Rule.power_outage, Action.update, subject="qingshui-gw1", minutes=6))
    assert change_time_ns(fired) != change_time_ns(upd)


def test_alert_payload_is_json_with_both_languages_and_an_iso_time(session: Session) -> None:
    (fired,) = apply(session, dec(T0, Rule.heat_warning, Action.fire, **HEAT_VALUES))
    payload = alert_payload(fired)
    assert isinstance(payload, bytes) and "清水镇卫生院".encode() in payload  # UTF-8, not \\u escapes
    doc = json.loads(payload)
    assert doc["id"] == fired.alert_id and doc["rule"] == "heat_warning" and doc["severity"] == "warning"
    assert doc["state"] == "firing" and doc["subject"] == FRIDGE and doc["event"] == "fired"
    assert doc["time"] == "2026-11-18T11:06:40Z"
    assert (
        doc["message"]["zh-CN"]
        == "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C，已高于 +8°C 35 分钟。请检查冰箱门和电源。"
    )
    assert doc["message"]["en"] == (
        "[Cold chain warning] Qingshui THC, Vaccine fridge 1: 9.2 °C, above +8 °C for 35 min. "
        "Check the door and the power."
    )
    (ack,) = lc.acknowledge(session, fired.alert_id, "qingshui-nurse1", None, T0 + 61.25)
    doc = json.loads(alert_payload(ack))
    assert doc["state"] == "acknowledged" and doc["time"] == "2026-11-18T11:07:41.250Z"


def test_alert_topic() -> None:
    assert alert_topic(CLINIC) == "cw/v1/qingshui-thc/alerts"
    for bad in ("", "Qingshui", "a/b", "#", "a+b"):
        with pytest.raises(ValueError):
            alert_topic(bad)
