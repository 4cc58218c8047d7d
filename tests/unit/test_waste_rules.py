"""The waste rules, table-driven, with an injected time: every rule and its boundaries, late and
out-of-order scans, refusals, manifests, late pickups and jurisdiction profiles (DESIGN §5)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from alerting.rules.types import Action, Decision
from alerting.waste.engine import WasteEngine, schedule_from
from alerting.waste.manifests import Manifest, reconcile
from alerting.waste.profiles import BUILTIN, NATIONAL, WasteProfileError, all_profiles, make_profile
from core.protocol import Category, Stage, WasteEvent

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC).timestamp()  # Monday 08:00 clinic time
H = 3600.0
CLINIC = "qingshui-thc"
BAG = "qingshui-thc-20261123-0001"
_ids = itertools.count(1)


def ev(
    stage: str,
    hours: float,
    kg: float = 2.0,
    *,
    bag: str = BAG,
    event_id: str | None = None,
    manifest: str | None = None,
    refused: float | None = None,
    category: str = "infectious",
) -> WasteEvent:
    s = Stage(stage)
    needs = s in (Stage.handed_over, Stage.received, Stage.disposed)
    return WasteEvent(
        event_id or f"e{next(_ids)}",
        bag,
        s,
        Category(category),
        kg,
        T0 + hours * H,
        "op",
        (manifest or "MF-1") if needs else None,
        "demo-transport" if needs else None,
        refused,
        "leaking" if refused else None,
    )


FULL = [  # Monday, clinic time: generated 08:00, stored 11:12, handed over 13:00 (pickup due by 16:00)
    ("generated", 0.0),
    ("collected", 3.0),
    ("stored", 3.2),
    ("handed_over", 5.0),
    ("received", 9.0),
    ("disposed", 20.0),
]


def run(
    scans: list[tuple[float, WasteEvent]], until: float, engine: WasteEngine | None = None
) -> list[Decision]:
    """Scans arriving at the given hours (arrival, not scan, time), ticks every 15 min up to ``until``."""
    engine = engine or WasteEngine(
        {CLINIC: schedule_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "16:00")}
    )
    out: list[Decision] = []
    pending = sorted(scans, key=lambda s: s[0])
    t = 0.0
    while t <= until:
        while pending and pending[0][0] <= t:
            out.extend(engine.add(CLINIC, pending.pop(0)[1]))
        out.extend(engine.tick(T0 + t * H))
        t += 0.25
    return out


def brief(decisions: list[Decision]) -> list[tuple[float, str, str, str]]:
    return [(round((d.time - T0) / H, 2), d.rule.value, d.severity.value, d.action.value) for d in decisions]


def normal(**skip: bool) -> list[tuple[float, WasteEvent]]:
    return [(h, ev(stage, h)) for stage, h in FULL if not skip.get(stage)]


def test_a_normal_bag_raises_nothing() -> None:
    assert run(normal(), 24 * 10) == []


def test_the_same_scans_in_any_arrival_order_raise_nothing() -> None:
    scans = [ev(stage, h) for stage, h in FULL]
    for seed in range(5):
        order = scans[:]
        random.Random(seed).shuffle(order)
        arrivals = [(20.0 + i * 0.25, e) for i, e in enumerate(order)]  # all late, after a scanner outage
        got = [d for d in run(arrivals, 24 * 5) if d.rule.value != "late_pickup"]
        # timers fired while nothing was known are resolved once the scans come; nothing stays open
        opened = {(d.family, d.subject) for d in got if d.action in (Action.fire, Action.escalate)}
        cleared = {(d.family, d.subject) for d in got if d.action is Action.clear}
        assert opened <= cleared and not [d for d in got if d.rule.value == "out_of_sequence"], brief(got)


@pytest.mark.parametrize(
    ("scans", "until", "want"),
    [
        # not collected from the ward: 24 h after generated
        ([(0, ev("generated", 0))], 23.75, []),
        ([(0, ev("generated", 0))], 24, [(24.0, "not_collected", "warning", "fire")]),
        (
            [(0, ev("generated", 0)), (25, ev("collected", 25))],
            26,
            [(24.0, "not_collected", "warning", "fire"), (25.0, "not_collected", "warning", "clear")],
        ),
        # a late scan of a bag collected in time: the alert is resolved
        (
            [(0, ev("generated", 0)), (30, ev("collected", 2))],
            31,
            [(24.0, "not_collected", "warning", "fire"), (24.0, "not_collected", "warning", "clear")],
        ),
        # storage overdue: 36 h warning, 48 h critical, cleared by the handover
        ([(0, ev("generated", 0)), (1, ev("collected", 1)), (1, ev("stored", 1))], 36.75, []),
        (
            [
                (0, ev("generated", 0)),
                (1, ev("collected", 1)),
                (1, ev("stored", 1)),
                (50, ev("handed_over", 50)),
            ],
            51,
            [
                (37.0, "storage_overdue", "warning", "fire"),
                (49.0, "storage_overdue", "critical", "escalate"),
                (50.0, "storage_overdue", "critical", "clear"),
            ],
        ),
        # lost in transport: 24 h after the handover, critical
        (
            [
                (0, ev("generated", 0)),
                (1, ev("collected", 1)),
                (1, ev("stored", 1)),
                (2, ev("handed_over", 2)),
            ],
            25.75,
            [],
        ),
        (
            [
                (0, ev("generated", 0)),
                (1, ev("collected", 1)),
                (1, ev("stored", 1)),
                (2, ev("handed_over", 2)),
            ],
            26,
            [(26.0, "lost_in_transport", "critical", "fire")],
        ),
    ],
)
def test_timer_rules(scans: list[tuple[float, WasteEvent]], until: float, want: list[tuple]) -> None:
    got = [d for d in run(scans, until) if d.rule.value != "late_pickup"]
    assert brief(got) == want


@pytest.mark.parametrize(
    ("generated", "later", "want"),
    [
        (2.0, 1.91, None),  # 0.09 kg: within 0.1 kg
        (2.0, 1.89, "warning"),  # 0.11 kg and 5.5 %
        (4.0, 3.8, None),  # exactly 5 %: not more than
        (4.0, 3.79, "warning"),
        (0.5, 0.42, None),  # 16 % but 0.08 kg: within 0.1 kg
        (2.0, 1.6, "warning"),  # exactly 20 %: a warning, not more than 20 %
        (2.0, 1.59, "critical"),  # 20.5 %
        (2.0, 2.5, "critical"),  # heavier counts too
    ],
)
def test_weight_discrepancy(generated: float, later: float, want: str | None) -> None:
    got = run([(0, ev("generated", 0, generated)), (1, ev("collected", 1, later))], 2)
    weight = [d for d in got if d.rule.value == "weight_discrepancy"]
    assert [d.severity.value for d in weight] == ([want] if want else [])
    if weight:
        assert weight[0].values["generated_kg"] == generated and weight[0].values["profile"] == "national"


def test_weight_is_judged_when_the_generated_scan_comes_last() -> None:
    got = run([(0, ev("collected", 1, 1.0)), (2, ev("generated", 0, 2.0))], 3)
    assert [(d.rule.value, d.severity.value) for d in got] == [("weight_discrepancy", "critical")]


def test_out_of_sequence_cases() -> None:
    # a stage going backwards: stored after the handover
    got = run([*normal(), (7, ev("stored", 7))], 41)
    assert [(d.rule.value, d.action.value) for d in got] == [("out_of_sequence", "fire")]
    assert "stage went backwards: stored" in got[0].values["reason"]
    # two scanners' clocks 2 min apart are not a stage going backwards
    skewed = [*normal(received=True), (9, ev("received", 5 - 2 / 60))]
    assert run(skewed, 41) == []
    # a duplicate event id with other content is kept and flagged; an exact duplicate is nothing
    first = ev("collected", 3.0, event_id="dup-1")
    again = ev("collected", 3.0, event_id="dup-1")
    other = ev("collected", 3.0, 2.4, event_id="dup-1")
    base = [s for s in normal() if s[1].stage is not Stage.collected]
    assert run([*base, (3, first), (4, again)], 41) == []
    engine = WasteEngine()
    got = run([*base, (3, first), (4, other)], 41, engine)
    assert [d.rule.value for d in got] == ["out_of_sequence"] and "duplicate event dup-1" in got[0].values[
        "reason"
    ]
    assert engine.bags[BAG].conflicts == [other] and engine.bags[BAG].scans["dup-1"] == first


def test_unknown_bags_and_skipped_stages_wait_for_late_scans() -> None:
    received_only = [(30, ev("received", 30))]
    assert [d for d in run(received_only, 53.75) if d.rule.value == "out_of_sequence"] == []
    got = [d for d in run(received_only, 54) if d.rule.value == "out_of_sequence"]
    assert (
        brief(got) == [(54.0, "out_of_sequence", "warning", "fire")]
        and "unknown bag" in got[0].values["reason"]
    )
    # the missing scans arrive within the grace: nothing
    late = [
        (9, ev("received", 9)),
        *[(h + 10, e) for h, e in normal(received=True)],
    ]  # the clinic's scans late
    assert [d for d in run(late, 60) if d.rule.value == "out_of_sequence"] == []
    # a skipped stage: stored without collected
    got = run(normal(collected=True), 40)
    assert brief(got) == [(27.2, "out_of_sequence", "warning", "fire")]  # the stored scan + 24 h
    assert "skipped stage(s): collected" in got[0].values["reason"]


def test_a_bag_received_before_its_late_handover_scan_is_neither_overdue_nor_lost() -> None:
    scans = [s for s in normal() if s[1].stage is not Stage.handed_over] + [(22, ev("handed_over", 5))]
    got = run(scans, 24 * 4)
    # the pickup looked missed at 16:00 (the scan was not there yet) and is resolved when it comes
    assert brief(got) == [(8.0, "late_pickup", "warning", "fire"), (8.0, "late_pickup", "warning", "clear")]


def test_refusals_close_the_loop_and_raise_an_alert() -> None:
    engine = WasteEngine()
    whole = [s for s in normal() if s[1].stage not in (Stage.received, Stage.disposed)]
    got = run([*whole, (9, ev("received", 9, 2.0, refused=2.0))], 24 * 4, engine)
    assert [(d.rule.value, d.severity.value) for d in got] == [("refused_at_plant", "critical")]
    assert got[0].values["refused_kg"] == 2.0 and got[0].values["reason"] == "leaking"
    bag = engine.bags[BAG]
    assert bag.closed and bag.refused_whole and bag.refused_kg == 2.0
    engine = WasteEngine()
    part = run([*whole, (9, ev("received", 9, 2.0, refused=0.5)), (20, ev("disposed", 20, 1.5))], 60, engine)
    assert [(d.rule.value, d.severity.value) for d in part] == [
        ("refused_at_plant", "warning"),
        ("weight_discrepancy", "critical"),  # disposed 1.5 kg of 2.0: the refused part left the bag
    ]
    assert engine.bags[BAG].closed and not engine.bags[BAG].refused_whole


def test_late_pickup_follows_the_schedule() -> None:
    # stored Monday 11:00 clinic time (3 h after T0); the transporter is due by 16:00 (8 h)
    stored = [(0, ev("generated", 0)), (3, ev("collected", 3)), (3, ev("stored", 3))]
    got = run([*stored, (14, ev("handed_over", 14))], 16)
    assert brief([d for d in got if d.rule.value == "late_pickup"]) == [
        (8.0, "late_pickup", "warning", "fire"),
        (14.0, "late_pickup", "warning", "clear"),
    ]
    on_time = run([*stored, (5, ev("handed_over", 5)), (9, ev("received", 9)), (10, ev("disposed", 10))], 30)
    assert on_time == []
    assert run([(0, ev("generated", 0))], 9) == []  # nothing in store: nothing to pick up
    mondays_only = WasteEngine({CLINIC: schedule_from(["tue"], "16:00")})
    assert [d for d in run(stored, 20, mondays_only) if d.rule.value == "late_pickup"] == []


def _manifest(handed: dict[str, float], received: dict[str, float]) -> Manifest:
    m = Manifest("MF-9")
    for i, (bag, kg) in enumerate(handed.items()):
        m.add(CLINIC, ev("handed_over", 26 + i * 0.01, kg, bag=bag, manifest="MF-9"))
    for i, (bag, kg) in enumerate(received.items()):
        m.add(CLINIC, ev("received", 30 + i * 0.01, kg, bag=bag, manifest="MF-9"))
    return m


@pytest.mark.parametrize(
    ("handed", "received", "missing", "extra", "lighter"),
    [
        ({"b1": 2.0, "b2": 1.0}, {"b1": 2.0, "b2": 1.01}, (), (), ()),
        ({"b1": 2.0, "b2": 1.0}, {"b1": 2.0}, ("b2",), (), ()),
        ({"b1": 2.0}, {"b1": 2.0, "b3": 0.7}, (), ("b3",), ()),
        ({"b1": 2.0, "b2": 1.0}, {"b1": 1.4, "b2": 1.0}, (), (), ("b1",)),
    ],
    ids=["exact", "missing bag", "extra bag", "lighter bag"],
)
def test_manifest_reconciliation(handed, received, missing, extra, lighter) -> None:
    r = reconcile(_manifest(handed, received), NATIONAL)
    assert (r.missing, r.extra, r.weight_differences) == (missing, extra, lighter)
    assert r.matches == (not (missing or extra or lighter))
    assert r.handed_kg_by_category == {"infectious": round(sum(handed.values()), 3)}
    assert r.as_json()["transporter"] == "demo-transport"
    assert r.vehicle is None  # the scans here carry none


def test_manifest_mismatch_is_raised_for_a_bag_handed_over_on_another_manifest() -> None:
    engine = WasteEngine()
    scans = [
        (26, ev("handed_over", 26, bag="b1", manifest="MF-7")),
        (26, ev("handed_over", 26, bag="b9", manifest="MF-8")),
        (30, ev("received", 30, bag="b1", manifest="MF-7")),
        (30, ev("received", 30.1, bag="b9", manifest="MF-7")),
    ]
    got = [d for d in run(scans, 33, engine) if d.rule.value == "manifest_mismatch"]
    assert brief(got) == [(32.0, "manifest_mismatch", "warning", "fire")]
    assert got[0].subject == "MF-7" and got[0].values["extra"] == "b9"
    # a bag received with no handover scan at all is the bag's own alert (a skipped stage), not twice
    engine = WasteEngine()
    unknown = [
        (26, ev("handed_over", 26, bag="b1", manifest="MF-7")),
        (30, ev("received", 30, bag="b5", manifest="MF-7")),
    ]
    got = run(unknown, 60, engine)
    assert [d for d in got if d.rule.value == "manifest_mismatch"] == []
    assert ("out_of_sequence", "b5") in [(d.rule.value, d.subject) for d in got]


def test_profiles_change_the_thresholds_and_are_recorded() -> None:
    engine = WasteEngine(profile=BUILTIN["epidemic"])
    got = run([(0, ev("generated", 0)), (1, ev("collected", 1)), (1, ev("stored", 1))], 14, engine)
    assert brief(got) == [(13.0, "storage_overdue", "warning", "fire")]
    assert got[0].values["profile"] == "epidemic" and got[0].values["limit_h"] == 12.0
    engine.set_profile(NATIONAL)
    more = run(
        [
            (0, ev("generated", 0, bag="b2")),
            (1, ev("collected", 1, bag="b2")),
            (1, ev("stored", 1, bag="b2")),
        ],
        30,
        engine,
    )
    assert [d.subject for d in more if d.rule.value == "storage_overdue"] == []  # national: 36 h


def test_registry_profiles_are_checked() -> None:
    strict = make_profile("strict", {"storage_critical_h": 24, "storage_warning_h": 20})
    assert (strict.name, strict.storage_critical_h, strict.not_collected_h) == ("strict", 24.0, 24.0)
    assert set(all_profiles({"strict": {"storage_warning_h": 20}})) == {"national", "epidemic", "strict"}
    with pytest.raises(WasteProfileError, match="unknown setting"):
        make_profile("x", {"storage_hours": 3})
    with pytest.raises(WasteProfileError, match="warning comes after"):
        make_profile("x", {"storage_warning_h": 50})


def test_every_waste_decision_has_a_short_text_in_both_languages() -> None:
    from alerting.messages import registry_names, render
    from alerting.notify.texts import segments
    from core.registry_model import DEMO_REGISTRY, load_registry_file

    names = registry_names(load_registry_file(DEMO_REGISTRY))
    engine = WasteEngine({CLINIC: schedule_from(["mon"], "16:00")})
    scans = [
        (0, ev("generated", 0, bag="w1")),  # not collected
        (0, ev("generated", 0, bag="s1")),
        (1, ev("collected", 1, bag="s1")),
        (1, ev("stored", 1, bag="s1")),  # overdue, late pickup
        (0, ev("generated", 0, 2.0, bag="l1")),
        (1, ev("collected", 1, 1.0, bag="l1")),  # weight
        # Tuesday (a handover on Monday would be the Monday pickup)
        (25, ev("handed_over", 25, bag="t1", manifest="MF-2")),  # lost, unknown bag
        (26, ev("handed_over", 26, bag="x1", manifest="MF-3")),
        (27, ev("received", 27, bag="x1", manifest="MF-4", refused=1.0)),  # refused, manifest mismatch
    ]
    got = run(scans, 80, engine)
    rules = {d.rule.value for d in got}
    assert rules >= {
        "not_collected", "storage_overdue", "lost_in_transport", "weight_discrepancy", "out_of_sequence",
        "late_pickup", "manifest_mismatch", "refused_at_plant",
    }  # fmt: skip
    for d in got:
        for lang in ("zh-CN", "en"):
            text = render(d, lang, names)
            assert "None" not in text and "{" not in text, text
            assert segments(text) <= 2, (len(text), text)
        if d.clinic == CLINIC:
            assert "清水镇卫生院" in render(d, "zh-CN", names)


def test_a_scanner_offline_for_15_minutes_raises_device_offline() -> None:
    from alerting.waste.scanners import ScannerWatch

    w = ScannerWatch.of([("qingshui-scan1", CLINIC), ("plant-scan1", None)])
    assert w.status("qingshui-gw1", False, T0) == []  # a gateway: judged from its readings elsewhere
    assert w.status("qingshui-scan1", False, T0) == []
    assert w.tick(T0 + 899) == []
    (fired,) = w.tick(T0 + 20 * 60)
    assert (fired.rule.value, fired.subject, fired.clinic, fired.time, fired.action) == (
        "device_offline", "qingshui-scan1", CLINIC, T0 + 900, Action.fire,
    )  # fmt: skip
    assert w.tick(T0 + 3600) == []
    (cleared,) = w.status("qingshui-scan1", True, T0 + 2 * H)
    assert (cleared.action, cleared.time) == (Action.clear, T0 + 2 * H)
    assert w.status("plant-scan1", False, T0) == [] and w.status("plant-scan1", True, T0 + 600) == []
    assert w.tick(T0 + 3 * H) == []  # back within 15 min: nothing


def test_the_waste_clock_follows_the_slowest_active_scanner_then_the_clock() -> None:
    from alerting.waste.clock import WasteClock

    c = WasteClock(idle_s=900)
    now = T0 + 30 * 86400  # the wall clock, long after the back-filled scans
    c.heard("clinic-scan", T0 + 10 * H, now)
    c.heard("plant-scan", T0 + 4 * H, now)  # its connection lags behind
    assert c.time(now) == T0 + 4 * H
    assert c.time(now, offline={"plant-scan"}) == T0 + 10 * H  # an offline scanner does not hold it back
    c.heard("plant-scan", T0 + 12 * H, now + 1)
    assert c.time(now + 1) == T0 + 10 * H
    assert c.time(now + 900.5) == T0 + 12 * H  # the clinic scanner fell idle
    assert c.time(now + 2000) == now + 2000  # nobody scans: the clock's time
    c.heard("clinic-scan", T0 + 40 * H, now + 2001)  # a backlog starts: judged at its own time again
    assert c.time(now + 2001) == T0 + 40 * H
    assert WasteClock().time(T0) == T0


def test_a_manifest_takes_its_vehicle_from_the_handover_scans() -> None:
    from dataclasses import replace

    m = Manifest("MF-3")
    m.add(CLINIC, replace(ev("handed_over", 5, bag="b1", manifest="MF-3"), vehicle="浙A·D1234"))
    m.add(CLINIC, ev("received", 9, bag="b1", manifest="MF-3"))
    r = reconcile(m, NATIONAL)
    assert (r.vehicle, r.as_json()["vehicle"], r.matches) == ("浙A·D1234", "浙A·D1234", True)
