"""Excursion impact (``alerting.impact``): WHO's decision flow as a pure function; the lots inside an
appliance when a heat or freeze alarm fires (exactly those, driven through the alerting service's own
``handle``), their exposure refreshed afterwards; the doses at risk in the SMS; and the shake test's
stock movements and corrective action."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import alerting.exposure
from alerting import impact as im
from alerting.exposure import LotExposureRow
from alerting.impact import Alarm, Reason, Recommendation, ShakeResult, recommend
from alerting.lifecycle import AlertChange
from alerting.notify import texts
from alerting.notify.planner import Purpose
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.service import AlertingService, Stats
from alerting.store import AlertRow, AlertState
from core.clock import ManualClock
from core.db import init_db, make_engine
from core.stock import Balance, Kind, Movement, StockMovementRow, ensure_products, lot, record, stock

T0 = 1_795_633_920.0  # 2026-11-26 03:12 in the clinics
H = 3600.0
CLINIC, F1, F2 = "qingshui-thc", "qingshui-fridge1", "qingshui-fridge2"
TODAY = date(2026, 11, 26)
LATER = date(2028, 1, 1)


# ---------------------------------------------------------------- the decision flow


def rec(alarm: Alarm, used: float | None, **kw: Any) -> tuple[Recommendation, tuple[Reason, ...]]:
    args: dict[str, Any] = {"freeze_sensitive": False, "vvm_type": 30, "expiry": LATER, "today": TODAY}
    return recommend(alarm, heat_budget_used=used, **(args | kw))


def test_a_freeze_alarm_quarantines_freeze_sensitive_lots_for_a_shake_test():
    assert rec(Alarm.freeze, 0.1, freeze_sensitive=True) == (
        Recommendation.quarantine_shake_test,
        (Reason.freeze_sensitive,),
    )
    # without any exposure computed or a VVM: the shake test still decides
    assert (
        rec(Alarm.freeze, None, freeze_sensitive=True, vvm_type=None)[0]
        is Recommendation.quarantine_shake_test
    )


def test_a_freeze_alarm_leaves_products_freezing_does_not_harm_in_use():
    assert rec(Alarm.freeze, 0.1) == (Recommendation.use, (Reason.not_freeze_sensitive, Reason.budget_ok))
    assert rec(Alarm.freeze, None, vvm_type=None) == (Recommendation.use, (Reason.not_freeze_sensitive,))
    # ... but its heat budget still counts
    assert rec(Alarm.freeze, 0.6)[0] is Recommendation.use_first


@pytest.mark.parametrize(
    ("used", "want", "reason"),
    [
        (0.0, Recommendation.use, Reason.budget_ok),
        (0.49, Recommendation.use, Reason.budget_ok),
        (0.5, Recommendation.use_first, Reason.budget_moderate),
        (0.74, Recommendation.use_first, Reason.budget_moderate),
        (0.75, Recommendation.quarantine_assessment, Reason.budget_high),
        (0.99, Recommendation.quarantine_assessment, Reason.budget_high),
        (1.0, Recommendation.discard, Reason.vvm_discard_point),
        (1.7, Recommendation.discard, Reason.vvm_discard_point),
    ],
)
def test_a_heat_alarm_follows_the_heat_budget_used(used: float, want: Recommendation, reason: Reason):
    assert rec(Alarm.heat, used) == (want, (reason,))


def test_a_heat_alarm_without_a_vvm_or_an_exposure_needs_an_assessment():
    assert rec(Alarm.heat, None, vvm_type=None) == (Recommendation.quarantine_assessment, (Reason.no_vvm,))
    assert rec(Alarm.heat, None) == (Recommendation.quarantine_assessment, (Reason.exposure_unknown,))


def test_an_expired_lot_or_one_at_its_vvm_discard_point_is_discarded_whatever_the_alarm():
    for alarm in Alarm:
        assert rec(alarm, 0.1, expiry=date(2026, 11, 25)) == (Recommendation.discard, (Reason.expired,))
        assert rec(alarm, 1.0, freeze_sensitive=True)[0] is Recommendation.discard
    assert rec(Alarm.heat, 0.1, expiry=TODAY)[0] is Recommendation.use  # usable on its expiry day


# ---------------------------------------------------------------- the impact when an alarm fires


@pytest.fixture(autouse=True)
def no_exposure_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """No exposure computation (it reads InfluxDB) unless a test brings its own: the impact is judged by
    the exposure stored."""
    monkeypatch.setattr(alerting.exposure, "update_exposure", None, raising=False)


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{tmp_path / 'impact.sqlite'}")
    init_db(e)  # alerting.impact is imported: alert, stock, exposure and impact tables
    ensure_products(e)
    yield e
    e.dispose()


def mv(lot_id: int, kind: Kind, doses: int, at: float, equipment: str = F1, **kw: Any) -> Movement:
    return Movement(lot_id, kind, CLINIC, equipment, doses, at, "qingshui-nurse1", **kw)


def stocked(engine: Engine) -> dict[str, int]:
    """Fridge 1 before the freeze at T0: HB1 (hepB, freeze-sensitive) 20 doses, DT1 (freeze-sensitive)
    10 of them quarantined, MMR1 (not freeze-sensitive) 30; OUT1 moved to fridge 2 before T0; LATE1
    received after T0."""
    with Session(engine) as s, s.begin():
        ids = {
            "HB1": lot(s, "hepb", "HB1", "2027-06-30").id,
            "DT1": lot(s, "dt", "DT1", "2027-03-31").id,
            "MMR1": lot(s, "mmr", "MMR1", "2027-09-30").id,
            "OUT1": lot(s, "dtap", "OUT1", "2027-05-31").id,
            "LATE1": lot(s, "ipv", "LATE1", "2027-08-31").id,
        }
        for m in (
            mv(ids["HB1"], Kind.received, 20, T0 - 48 * H, source="县疾控中心"),
            mv(ids["DT1"], Kind.received, 15, T0 - 48 * H),
            mv(ids["DT1"], Kind.quarantined, 10, T0 - 24 * H, reason="check"),
            mv(ids["MMR1"], Kind.received, 30, T0 - 48 * H),
            mv(ids["OUT1"], Kind.received, 40, T0 - 48 * H),
            mv(ids["OUT1"], Kind.moved, 40, T0 - 2 * H, to_equipment_id=F2),
            mv(ids["LATE1"], Kind.received, 50, T0 + 0.5 * H),
        ):
            record(s, m, T0 + H)
    return ids


class Service(SimpleNamespace):
    """The alerting service's state ``AlertingService.handle`` uses, without MQTT or InfluxDB."""

    def _write(self, changes: list[AlertChange]) -> None:
        self.written.extend(changes)


def service(engine: Engine, now: float) -> Service:
    return Service(sql=engine, clock=ManualClock(now), names=None, stats=Stats(), influx=None, written=[])


def freeze(t: float, action: Action = Action.fire, rule: Rule = Rule.freeze_alarm) -> Decision:
    severity = Severity.critical if rule is Rule.freeze_alarm else Severity.warning
    values = {"celsius": -2.5, "threshold_c": -0.5, "minutes": 60, "freeze_sensitive": True}
    return Decision(t, rule, severity, action, F1, "cold", CLINIC, values)


def heat(t: float) -> Decision:
    values = {"celsius": 11.0, "threshold_c": 8.0, "minutes": 120}
    return Decision(t, Rule.heat_alarm, Severity.critical, Action.fire, F1, "heat", CLINIC, values)


def test_a_freeze_alarm_lists_exactly_the_lots_inside_at_its_start(engine: Engine):
    ids = stocked(engine)
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    with Session(engine) as s:
        got = im.alert_impact(s, change.alert_id)
        assert got is not None and got.alarm is Alarm.freeze and got.equipment_id == F1
        by_lot = {x.lot_number: x for x in got.lots}
        assert set(by_lot) == {"HB1", "DT1", "MMR1"}  # not OUT1 (moved out before), not LATE1 (after)
        assert (by_lot["DT1"].doses_available, by_lot["DT1"].doses_quarantined) == (5, 10)
        assert by_lot["HB1"].recommendation is Recommendation.quarantine_shake_test
        assert by_lot["DT1"].recommendation is Recommendation.quarantine_shake_test
        assert by_lot["MMR1"].recommendation is Recommendation.use
        assert by_lot["MMR1"].reasons == [Reason.not_freeze_sensitive]  # no exposure stored yet
        assert [x.lot_number for x in got.shake_lots] == ["DT1", "HB1"]
        assert got.doses_at_risk == 20 + 15  # the freeze-sensitive doses
        alert = s.get(AlertRow, change.alert_id)
        assert alert is not None and alert.values["doses_at_risk"] == 35
        assert alert.values["celsius"] == -2.5  # the rule's numbers stay
    assert ids["LATE1"] not in {x.lot_id for x in got.lots}


def test_a_cold_warning_has_no_impact_until_it_escalates_to_the_freeze_alarm(engine: Engine):
    stocked(engine)
    svc = service(engine, T0 + H)
    (warned,) = AlertingService.handle(svc, [freeze(T0 - 1800, rule=Rule.cold_warning)])  # type: ignore[arg-type]
    with Session(engine) as s:
        assert im.alert_impact(s, warned.alert_id) is None
    (escalated,) = AlertingService.handle(svc, [freeze(T0, Action.escalate)])  # type: ignore[arg-type]
    assert escalated.alert_id == warned.alert_id
    with Session(engine) as s:
        got = im.alert_impact(s, warned.alert_id)
        assert got is not None and got.at == T0 - 1800  # counted at the alert's start: the warning's
        assert {x.lot_number for x in got.lots} == {"HB1", "DT1", "MMR1"}


def test_a_heat_alarm_puts_every_dose_at_risk_and_judges_by_the_exposure(engine: Engine):
    ids = stocked(engine)
    with Session(engine) as s, s.begin():
        for name, used in (("HB1", 0.8), ("MMR1", 0.55)):
            s.add(LotExposureRow(lot_id=ids[name], computed_at=T0, covered_until=T0, heat_budget_used=used,
                                 freeze_minutes=None, trigger="daily"))  # fmt: skip
    (change,) = AlertingService.handle(service(engine, T0 + H), [heat(T0)])  # type: ignore[arg-type]
    with Session(engine) as s:
        got = im.alert_impact(s, change.alert_id)
    assert got is not None and got.doses_at_risk == 20 + 15 + 30
    by_lot = {x.lot_number: x for x in got.lots}
    assert by_lot["HB1"].recommendation is Recommendation.quarantine_assessment
    assert by_lot["HB1"].heat_budget_left == pytest.approx(0.2)
    assert by_lot["MMR1"].recommendation is Recommendation.use_first
    assert by_lot["DT1"].recommendation is Recommendation.quarantine_assessment  # never computed
    assert by_lot["DT1"].reasons == [Reason.exposure_unknown]


def test_the_exposure_is_refreshed_for_the_alert_and_the_recommendations_follow(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    ids = stocked(engine)
    calls: list[tuple[list[int], float, str]] = []

    def update_exposure(eng: Engine, influx: Any, lot_ids: list[int], now: float, trigger: str) -> None:
        calls.append((list(lot_ids), now, trigger))
        with Session(eng) as s, s.begin():
            for lot_id in lot_ids:
                s.add(LotExposureRow(lot_id=lot_id, computed_at=now, covered_until=now,
                                     heat_budget_used=1.2, freeze_minutes=60.0, trigger=trigger))  # fmt: skip

    monkeypatch.setattr(alerting.exposure, "update_exposure", update_exposure, raising=False)
    (change,) = AlertingService.handle(service(engine, T0 + H), [heat(T0)])  # type: ignore[arg-type]
    assert calls == [(sorted([ids["HB1"], ids["DT1"], ids["MMR1"]]), T0 + H, f"alert:{change.alert_id}")]
    with Session(engine) as s:
        got = im.alert_impact(s, change.alert_id)
    assert got is not None
    assert {x.recommendation for x in got.lots} == {Recommendation.discard}
    assert all(x.heat_budget_left == 0.0 and x.exposure_at == T0 + H for x in got.lots)


def test_a_failing_exposure_update_leaves_the_alert_and_its_impact(engine: Engine, monkeypatch, caplog):
    stocked(engine)

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("InfluxDB down")

    monkeypatch.setattr(alerting.exposure, "update_exposure", broken, raising=False)
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    assert "could not be refreshed" in caplog.text
    with Session(engine) as s:
        got = im.alert_impact(s, change.alert_id)
        assert got is not None and len(got.lots) == 3


def test_an_empty_appliance_has_an_impact_without_lots_and_no_doses_at_risk(engine: Engine):
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    with Session(engine) as s:
        assert im.alert_impact(s, change.alert_id) is None
        alert = s.get(AlertRow, change.alert_id)
        assert alert is not None and alert.values["doses_at_risk"] == 0


# ---------------------------------------------------------------- the SMS


def sms(engine: Engine, alert_id: str, lang: str, purpose: Purpose = Purpose.fired) -> str:
    with Session(engine) as s:
        alert = s.get(AlertRow, alert_id)
        assert alert is not None
        return texts.single(texts.Item(purpose, alert, "https://cw.example/a/x"), lang, None)


def test_the_sms_says_how_many_doses_are_at_risk(engine: Engine):
    stocked(engine)
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    zh, en = sms(engine, change.alert_id, "zh-CN"), sms(engine, change.alert_id, "en")
    assert "振荡试验" in zh and "涉及疫苗35剂。" in zh and zh.endswith("确认 https://cw.example/a/x")
    assert "35 vaccine doses at risk." in en
    with Session(engine) as s:
        alert = s.get(AlertRow, change.alert_id)
        assert alert is not None
        short = texts.group(
            [texts.Item(Purpose.fired, alert, "L1"), texts.Item(Purpose.fired, alert, "L2")], "en", None
        )
    assert "(35 doses at risk)" in short
    assert "doses" not in sms(engine, change.alert_id, "en", Purpose.acknowledged)


def test_the_sms_says_nothing_of_doses_when_none_are_recorded_inside(engine: Engine):
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    assert "涉及疫苗" not in sms(engine, change.alert_id, "zh-CN")
    assert "doses" not in sms(engine, change.alert_id, "en")


# ---------------------------------------------------------------- the shake test


def fired(engine: Engine) -> tuple[dict[str, int], str]:
    ids = stocked(engine)
    (change,) = AlertingService.handle(service(engine, T0 + H), [freeze(T0)])  # type: ignore[arg-type]
    return ids, change.alert_id


def test_a_passed_shake_test_quarantines_then_releases_a_failed_one_discards(engine: Engine):
    ids, alert_id = fired(engine)
    now = T0 + 3 * H
    with Session(engine) as s, s.begin():
        out = im.record_shake_test(s, alert_id, ids["HB1"], ShakeResult.passed, "qingshui-nurse1", now)
        assert (out.changed, out.quarantined, out.doses) == (True, 20, 20)
        out = im.record_shake_test(s, alert_id, ids["DT1"], ShakeResult.failed, "qingshui-nurse1", now)
        assert (out.changed, out.quarantined, out.doses) == (True, 5, 5)  # its own 10 were quarantined
    with Session(engine) as s:
        books = stock(s, [CLINIC])
        assert books[(ids["HB1"], CLINIC, F1)] == Balance(20, 0)
        assert books[(ids["DT1"], CLINIC, F1)] == Balance(0, 10)  # quarantined before, for another reason
        kinds = [
            (m.kind, m.doses, m.reason)
            for m in s.scalars(select(StockMovementRow).where(StockMovementRow.alert_id == alert_id))
        ]
        assert kinds == [
            ("quarantined", 20, "excursion"),
            ("released", 20, None),
            ("quarantined", 5, "excursion"),
            ("discarded", 5, "excursion"),
        ]
        got = im.alert_impact(s, alert_id)
        assert got is not None and got.shake_done
        assert im.shake_test_action(got) == "shake_test_done: DT1 failed – discarded 5 doses, HB1 passed"
        assert im.shake_test_action(got, "zh-CN") == "shake_test_done: DT1 未通过（已销毁 5 剂），HB1 通过"


def test_a_shake_test_result_is_recorded_once(engine: Engine):
    ids, alert_id = fired(engine)
    with Session(engine) as s, s.begin():
        im.record_shake_test(s, alert_id, ids["HB1"], ShakeResult.failed, "qingshui-nurse1", T0 + 2 * H)
        again = im.record_shake_test(
            s, alert_id, ids["HB1"], ShakeResult.failed, "qingshui-nurse2", T0 + 3 * H
        )
        assert not again.changed and again.doses == 20
        with pytest.raises(im.ImpactError, match="recorded as failed already"):
            im.record_shake_test(s, alert_id, ids["HB1"], ShakeResult.passed, "qingshui-nurse1", T0 + 3 * H)
        with pytest.raises(im.ImpactError, match="needs no shake test"):
            im.record_shake_test(s, alert_id, ids["MMR1"], ShakeResult.passed, "qingshui-nurse1", T0 + 3 * H)
        with pytest.raises(im.ImpactError, match="was not in the appliance"):
            im.record_shake_test(s, alert_id, ids["OUT1"], ShakeResult.passed, "qingshui-nurse1", T0 + 3 * H)
    with Session(engine) as s:
        assert stock(s, [CLINIC]).get((ids["HB1"], CLINIC, F1)) is None  # 20 discarded, once


def test_the_alert_closes_with_the_shake_test_as_its_corrective_action(engine: Engine):
    ids, alert_id = fired(engine)
    with Session(engine) as s, s.begin():
        im.record_shake_test(s, alert_id, ids["HB1"], ShakeResult.passed, "qingshui-nurse1", T0 + 2 * H)
        with pytest.raises(im.ImpactError, match="every lot"):
            im.close_after_shake_test(s, alert_id, "qingshui-nurse1", T0 + 2 * H)
        im.record_shake_test(s, alert_id, ids["DT1"], ShakeResult.passed, "qingshui-nurse1", T0 + 2 * H)
        (change,) = im.close_after_shake_test(s, alert_id, "qingshui-nurse1", T0 + 2 * H)
        assert change.state is AlertState.resolved
        alert = s.get(AlertRow, alert_id)
        assert alert is not None
        assert alert.corrective_action == "shake_test_done: DT1 passed, HB1 passed"
        assert alert.resolved_by == "qingshui-nurse1"


def test_the_daily_job_brings_an_open_alarms_recommendations_up_to_date(engine: Engine):
    """A heat alarm left open for days: its lots' budget runs out meanwhile, and the alarm says so."""
    stocked(engine)
    (change,) = AlertingService.handle(service(engine, T0 + H), [heat(T0)])  # type: ignore[arg-type]
    with Session(engine) as s:
        before = {x.lot_number: x.recommendation for x in im.alert_impact(s, change.alert_id).lots}  # type: ignore[union-attr]
        assert before["HB1"] is not Recommendation.discard
        lots = sorted({x.lot_id for x in s.scalars(select(im.AlertImpactRow))})
    with Session(engine) as s, s.begin():  # the daily exposure: every lot past its budget now
        for lot_id in lots:
            s.add(LotExposureRow(lot_id=lot_id, computed_at=T0 + 3 * 86400, covered_until=T0 + 3 * 86400,
                                 heat_budget_used=1.05, freeze_minutes=None, trigger="daily"))  # fmt: skip
    assert im.refresh_open_impacts(engine, None, T0 + 3 * 86400) == 1
    with Session(engine) as s:
        got = im.alert_impact(s, change.alert_id)
    assert got is not None and {x.recommendation for x in got.lots} == {Recommendation.discard}
