"""The simulated medical-waste chain of custody: valid protocol, a clean week, each anomaly producing
exactly the trouble its ground truth names (judged by a small reference reading of DESIGN §5 here),
the closed-loop rate, determinism, and the wiring into the engine and ``chainwatch simulate``."""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core import cli as core_cli
from core.clock import ManualClock
from core.protocol import Kind as TopicKind
from core.protocol import Stage, WasteEvent, parse_status, parse_topic, parse_waste
from core.registry_model import DEMO_REGISTRY, RegistryFile, load_registry_file
from core.settings import Settings
from simulators import cli as sim_cli
from simulators import waste as waste_mod
from simulators.cli import SimulateError, plan_simulation
from simulators.engine import Simulation, build_district
from simulators.publisher import MemorySink
from simulators.scenario import LOCAL_TZ, ScenarioError, load_scenario, resolve_events
from simulators.waste import CLOSED_AGE_H, WasteFlow, WasteSites, build_sites

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 clinic local time
HOUR = 3600.0
DAY = 86400.0
WEEK_END = START + 7 * DAY
STAGES = [s.value for s in Stage]


@pytest.fixture(scope="module")
def demo() -> RegistryFile:
    return load_registry_file(DEMO_REGISTRY)


@pytest.fixture(scope="module")
def sites(demo) -> WasteSites:
    return build_sites(demo, build_district(demo, 10).clinics)


def events_of(demo, text_or_path, clinics: int = 10, start: float = START, tmp_path: Path | None = None):
    if isinstance(text_or_path, str):
        assert tmp_path is not None
        path = tmp_path / "w.yaml"
        path.write_text(text_or_path, encoding="utf-8")
    else:
        path = text_or_path
    d = build_district(demo, clinics)
    return resolve_events(load_scenario(path), list(d.sites), start, d.registry_clinics)


def run(sites, events=(), seed: int = 1, start: float = START, end: float = WEEK_END):
    flow = WasteFlow(sites, seed=seed, start=start, end=end, events=events)
    return list(flow.messages()), flow.summary(end)


@pytest.fixture(scope="module")
def week(sites):
    return run(sites)


@pytest.fixture(scope="module")
def anomalous(demo, sites):
    return run(sites, events_of(demo, SCENARIOS / "waste-anomalies.yaml"))


def waste_events(messages) -> list[tuple[object, WasteEvent]]:
    """(message, event) for every waste event, in publication order, through the production parser."""
    out = []
    for m in messages:
        if parse_topic(m.topic).kind == TopicKind.waste:
            out.extend((m, ev) for ev in parse_waste(m.payload, now=m.time))
    return out


def by_bag(messages) -> dict[str, list[WasteEvent]]:
    """Each bag's distinct events (first content per event_id), in ts order."""
    seen: set[str] = set()
    bags: dict[str, list[WasteEvent]] = defaultdict(list)
    for _, ev in waste_events(messages):
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            bags[ev.bag_id].append(ev)
    for evs in bags.values():
        evs.sort(key=lambda e: e.ts)
    return bags


def local(t: float) -> datetime:
    return datetime.fromtimestamp(t, LOCAL_TZ)


# ------------------------------------------------------------------ a reference reading of DESIGN §5


def troubles(messages, sites: WasteSites, end: float) -> set[tuple[str, str]]:
    """(rule, subject) for everything DESIGN §5 (and the registry's late_pickup) would flag, judged on
    reading times; the first content of an event_id counts, a different one is out of sequence."""
    out: set[tuple[str, str]] = set()
    first_content: dict[str, WasteEvent] = {}
    bags: dict[str, list[WasteEvent]] = defaultdict(list)
    for m in messages:
        topic = parse_topic(m.topic)
        if topic.kind == TopicKind.status:
            if parse_status(m.payload, now=m.time).state == "offline":
                out.add(("device_offline", topic.device))
            continue
        for ev in parse_waste(m.payload, now=m.time):
            prev = first_content.get(ev.event_id)
            if prev is not None:
                if prev != ev:
                    out.add(("out_of_sequence", ev.bag_id))
                continue
            first_content[ev.event_id] = ev
            bags[ev.bag_id].append(ev)
    handed: dict[str, set[str]] = defaultdict(set)
    received: dict[str, set[str]] = defaultdict(set)
    for bag, evs in bags.items():
        evs.sort(key=lambda e: e.ts)
        if evs[0].stage != Stage.generated:
            out.add(("out_of_sequence", bag))
        top = -1
        first: dict[Stage, WasteEvent] = {}
        for e in evs:
            rank = STAGES.index(e.stage)
            if rank < top:
                out.add(("out_of_sequence", bag))
            top = max(top, rank)
            first.setdefault(e.stage, e)
        gen = first.get(Stage.generated)
        if gen is not None:
            tolerance = max(0.05 * gen.weight_kg, 0.1)
            if any(abs(e.weight_kg - gen.weight_kg) > tolerance for e in evs):
                out.add(("weight_discrepancy", bag))
            taken = first.get(Stage.collected) or first.get(Stage.stored)
            if (taken.ts if taken else end) - gen.ts >= 24 * HOUR:
                out.add(("not_collected", bag))
        stored, gone = first.get(Stage.stored), first.get(Stage.handed_over)
        if stored is not None and (gone.ts if gone else end) - stored.ts >= 36 * HOUR:
            out.add(("storage_overdue", bag))
        arrived = first.get(Stage.received)
        if gone is not None:
            assert gone.manifest_id is not None
            handed[gone.manifest_id].add(bag)
            if (arrived.ts if arrived else end) - gone.ts >= 24 * HOUR:
                out.add(("lost_in_transport", bag))
        if arrived is not None:
            assert arrived.manifest_id is not None
            received[arrived.manifest_id].add(bag)
            if arrived.refused_kg is not None:
                out.add(("refused_at_plant", bag))
    for manifest, bags_out in handed.items():
        if received.get(manifest, set()) != bags_out:
            out.add(("manifest_mismatch", manifest))
    day = local(START).date()
    while True:
        midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).timestamp()
        if midnight >= end:
            break
        for site in sites.clinics:
            deadline = midnight + site.by_s
            if deadline >= end or day.weekday() not in site.pickup_days:
                continue
            for bag, evs in bags.items():
                if not bag.startswith(site.clinic + "-"):
                    continue
                stored = next((e.ts for e in evs if e.stage == Stage.stored), None)
                gone_ts = next((e.ts for e in evs if e.stage == Stage.handed_over), None)
                if stored is not None and stored < deadline and (gone_ts is None or gone_ts >= deadline):
                    out.add(("late_pickup", site.clinic))
        day += timedelta(days=1)
    return out


def expected(summary) -> set[tuple[str, str]]:
    out = set()
    for a in summary["anomalies"]:
        if a["expected_rule"] is not None:
            out.add((a["expected_rule"], a["subject"]))
        out.update((x["rule"], x["subject"]) for x in a["also"])
    return out


# ------------------------------------------------------------------ a normal week


def test_every_message_passes_the_protocol_parser_on_the_right_topic(week, anomalous, sites):
    scanners = {c.scanner: c.clinic for c in sites.clinics}
    for messages, _ in (week, anomalous):
        for m, ev in waste_events(messages):
            topic = parse_topic(m.topic)
            clinic = ev.bag_id.rsplit("-", 2)[0]
            assert topic.clinic == clinic == m.clinic
            if ev.stage in (Stage.received, Stage.disposed):
                assert topic.device == "plant-scan1"
            else:
                assert scanners[topic.device] == clinic
            assert ev.ts <= m.time


def test_a_normal_week_raises_nothing(week, sites):
    messages, summary = week
    assert troubles(messages, sites, WEEK_END) == set()
    assert summary["anomalies"] == [] and summary["status_messages"] == 0
    assert all(not m.payload.startswith(b"[") for m in messages)  # one event per message


def test_every_bag_goes_through_the_six_stages_in_order(week):
    messages, _ = week
    bags = by_bag(messages)
    assert 400 < len(bags) < 650  # 10 clinics x 7 days x 7.6 bags
    complete = 0
    for bag, evs in bags.items():
        stages = [e.stage.value for e in evs]
        assert stages == STAGES[: len(stages)], bag
        assert all(a.ts < b.ts for a, b in itertools.pairwise(evs)), bag
        if evs[0].ts <= WEEK_END - 72 * HOUR:
            assert len(stages) == 6, bag
            complete += 1
    assert complete > 200


def test_no_bag_waits_a_day_on_the_ward_or_36_h_in_the_store(week, anomalous):
    for messages, _ in (week, anomalous):
        for bag, evs in by_bag(messages).items():
            ts = {e.stage: e.ts for e in reversed(evs)}  # the first of each stage
            if Stage.collected in ts:
                assert ts[Stage.collected] - ts[Stage.generated] < 24 * HOUR, bag
            if Stage.handed_over in ts:
                assert ts[Stage.handed_over] - ts[Stage.stored] < 36 * HOUR, bag


def test_the_flow_keeps_its_hours_people_and_papers(week, demo):
    messages, _ = week
    nurses = {c.id: {p.id for p in c.people if p.role == "nurse"} for c in demo.clinics()}
    manifests: dict[str, set[str]] = defaultdict(set)
    for bag, evs in by_bag(messages).items():
        clinic = bag.rsplit("-", 2)[0]
        ev = {e.stage: e for e in evs}
        gen = ev[Stage.generated]
        assert re.fullmatch(rf"{clinic}-{local(gen.ts):%Y%m%d}-\d{{4}}", bag)
        assert 8 <= local(gen.ts).hour < 18 and gen.operator in nurses[clinic]
        for stage in (Stage.collected, Stage.stored):
            if stage in ev:
                assert ev[stage].operator == f"{clinic}-porter"
                assert local(ev[stage].ts).hour in (11, 17)
        if Stage.handed_over in ev:
            h = ev[Stage.handed_over]
            midnight = datetime.combine(local(h.ts).date(), datetime.min.time(), LOCAL_TZ).timestamp()
            assert midnight + 9 * HOUR <= h.ts <= midnight + 15 * HOUR + 600  # the visit starts by 15:00
            assert (h.operator, h.counterparty) == ("demo-transport-driver1", "demo-transport")
            assert re.fullmatch(rf"MF-{clinic}-{local(h.ts):%Y%m%d}-1", h.manifest_id or "")
            manifests[h.manifest_id or ""].add(clinic)
        if Stage.received in ev:
            r = ev[Stage.received]
            assert 2 * HOUR <= r.ts - ev[Stage.handed_over].ts <= 6 * HOUR + 1200
            assert (r.operator, r.counterparty, r.manifest_id) == (
                "demo-plant-op1",
                "demo-transport",
                ev[Stage.handed_over].manifest_id,
            )
            assert r.refused_kg is None and r.refusal_reason is None
        if Stage.disposed in ev:
            d = ev[Stage.disposed]
            assert 1 * HOUR <= d.ts - ev[Stage.received].ts <= 20 * HOUR
            assert (d.counterparty, d.manifest_id) == ("demo-plant", ev[Stage.handed_over].manifest_id)
    assert all(len(c) == 1 for c in manifests.values())
    ids = [ev.event_id for _, ev in waste_events(messages)]
    assert len(ids) == len(set(ids)) and all(uuid.UUID(i).version == 4 for i in ids)


def test_weights_are_reread_within_a_fraction_of_the_tolerance(week):
    messages, _ = week
    for bag, evs in by_bag(messages).items():
        w = evs[0].weight_kg
        assert 0.2 <= w <= 3.0
        for e in evs[1:]:
            assert abs(e.weight_kg - w) <= min(0.005 * w, 0.02) + 0.005 + 1e-9, (bag, e.stage)


def test_same_seed_same_events_other_seed_other_events_and_a_shorter_run_is_a_prefix(sites, week):
    messages, _ = week
    again, _ = run(sites)
    other, _ = run(sites, seed=2)
    short, _ = run(sites, end=START + 3 * DAY)
    payloads = [(m.time, m.topic, m.payload) for m in messages]
    assert payloads == [(m.time, m.topic, m.payload) for m in again]
    assert payloads != [(m.time, m.topic, m.payload) for m in other]
    assert [(m.time, m.topic, m.payload) for m in short] == payloads[: len(short)]
    assert all(m.time < START + 3 * DAY for m in short)


def test_bags_from_before_the_start_are_not_simulated(sites):
    start = START + 13 * HOUR  # 13:00 local, after the first porter round
    messages, _ = run(sites, start=start, end=start + 2 * DAY)
    bags = by_bag(messages)
    assert all(evs[0].stage == Stage.generated and evs[0].ts >= start for evs in bags.values())


# ------------------------------------------------------------------ anomalies


def test_each_anomaly_produces_exactly_its_trouble_and_nothing_else(anomalous, sites):
    messages, summary = anomalous
    truth = summary["anomalies"]
    assert [a["kind"] for a in truth] == [
        "missed_pickup",
        "lost_bag",
        "weight_loss",
        "duplicate_scan",
        "out_of_order_scan",
        "refused_bag",
        "scanner_offline",
        "resend",
    ]
    assert len({a["clinic"] for a in truth}) == 8
    assert all(a["reached"] for a in truth)
    assert [(a["expected_rule"], a["subject"]) for a in truth][:7] == [
        ("late_pickup", "qingshui-thc"),
        ("lost_in_transport", truth[1]["subject"]),
        ("weight_discrepancy", truth[2]["subject"]),
        ("out_of_sequence", truth[3]["subject"]),
        ("out_of_sequence", truth[4]["subject"]),
        ("refused_at_plant", truth[5]["subject"]),
        ("device_offline", "nanshan-scan1"),
    ]
    for a in truth[1:6]:
        assert a["subject"].startswith(a["clinic"] + "-")
    assert (truth[7]["expected_rule"], truth[7]["subject"]) == (None, None)
    assert troubles(messages, sites, WEEK_END) == expected(summary)
    assert truth[1]["also"] == [{"rule": "manifest_mismatch", "subject": truth[1]["manifest_id"]}]


def bag_events(messages, bag: str) -> list[tuple[object, WasteEvent]]:
    return [(m, ev) for m, ev in waste_events(messages) if ev.bag_id == bag]


def test_missed_pickup_brings_the_transporter_late_h_after_the_deadline(anomalous):
    messages, _ = anomalous
    day2 = START + DAY
    handovers = sorted(
        ev.ts
        for _, ev in waste_events(messages)
        if ev.stage == Stage.handed_over and ev.bag_id.startswith("qingshui-") and day2 <= ev.ts < day2 + DAY
    )
    assert handovers and handovers[0] == day2 + 22 * HOUR  # by 16:00 + 6 h
    assert len({(ev.manifest_id) for _, ev in waste_events(messages) if ev.ts in handovers}) == 1


def test_lost_weight_refused_duplicate_and_out_of_order_bags(anomalous):
    messages, summary = anomalous
    truth = {a["kind"]: a for a in summary["anomalies"]}

    lost = [ev for _, ev in bag_events(messages, truth["lost_bag"]["subject"])]
    assert [e.stage for e in lost][-1] == Stage.handed_over
    mates = {
        ev.bag_id
        for _, ev in waste_events(messages)
        if ev.manifest_id == truth["lost_bag"]["manifest_id"] and ev.stage == Stage.received
    }
    assert mates and truth["lost_bag"]["subject"] not in mates

    light = {ev.stage: ev for _, ev in bag_events(messages, truth["weight_loss"]["subject"])}
    w = light[Stage.generated].weight_kg
    assert light[Stage.received].weight_kg == pytest.approx(0.7 * w, abs=0.03)
    assert light[Stage.handed_over].weight_kg == pytest.approx(w, abs=0.03)

    refused = [ev for _, ev in bag_events(messages, truth["refused_bag"]["subject"])]
    assert [e.stage for e in refused][-1] == Stage.received
    assert refused[-1].refused_kg == refused[-1].weight_kg
    assert refused[-1].refusal_reason == "leaking container"

    dup = [
        ev for _, ev in bag_events(messages, truth["duplicate_scan"]["subject"]) if ev.stage == Stage.stored
    ]
    assert len(dup) == 2 and dup[0].event_id == dup[1].event_id
    assert round(dup[1].weight_kg - dup[0].weight_kg, 2) == 0.4
    assert dup[0].ts == dup[1].ts and dup[0].ts >= START + 2 * DAY + 12 * HOUR

    late = [ev for _, ev in bag_events(messages, truth["out_of_order_scan"]["subject"])]
    stages = [e.stage for e in late]
    assert stages[:4] == [Stage.generated, Stage.collected, Stage.stored, Stage.handed_over]
    assert stages[4] == Stage.stored and late[4].ts > late[3].ts and late[4].event_id != late[2].event_id
    assert stages[5:] == [Stage.received, Stage.disposed]


def test_scanner_offline_holds_the_scans_and_sends_them_at_the_end(anomalous):
    messages, _ = anomalous
    begin, end = START + 4 * DAY + 8 * HOUR, START + 4 * DAY + 13 * HOUR
    scanner = "cw/v1/nanshan-thc/nanshan-scan1/"
    mine = [m for m in messages if m.topic.startswith(scanner)]
    assert not [m for m in mine if begin < m.time < end]
    statuses = [(m.time, json.loads(m.payload)) for m in mine if m.topic.endswith("/status")]
    assert [(t, s["state"], s["ts"]) for t, s in statuses] == [
        (begin, "offline", begin),
        (end, "online", end),
    ]
    assert all(m.retain for m in mine if m.topic.endswith("/status"))
    [held] = [m for m in mine if m.time == end and m.topic.endswith("/waste")]
    events = parse_waste(held.payload, now=end)
    assert held.payload.startswith(b"[") and len(events) > 1
    assert [e.ts for e in events] == sorted(e.ts for e in events) and begin <= events[0].ts
    # the plant's scans of this clinic's bags were not held
    assert any(begin <= m.time < end for m in messages if m.topic == "cw/v1/nanshan-thc/plant-scan1/waste")


def test_resend_delivers_count_events_twice_exactly(anomalous):
    messages, _ = anomalous
    payloads = defaultdict(list)
    for m in messages:
        if m.clinic == "beiling-thc" and m.topic.endswith("/waste"):
            payloads[m.payload].append(m.time)
    twice = {p: t for p, t in payloads.items() if len(t) > 1}
    assert len(twice) == 5 and all(len(t) == 2 for t in twice.values())
    assert all(0 < t[1] - t[0] <= 30 and t[0] >= START + 5 * DAY + 9 * HOUR for t in twice.values())


def test_offline_buffer_goes_out_in_messages_of_at_most_max_events(demo, sites, tmp_path, monkeypatch):
    monkeypatch.setattr(waste_mod, "MAX_EVENTS", 4)
    text = "name: w\nevents:\n- {kind: scanner_offline, clinic: 2, at: '07:00', duration: 20h}\n"
    messages, summary = run(sites, events_of(demo, text, tmp_path=tmp_path), end=START + 2 * DAY)
    released = [
        m for m in messages if m.topic == "cw/v1/baihe-thc/baihe-scan1/waste" and m.time == START + 27 * HOUR
    ]
    assert len(released) > 2 and all(1 <= len(m.events) <= 4 for m in released)
    ts = [ev.ts for m in released for ev in parse_waste(m.payload, now=m.time)]
    assert ts == sorted(ts)
    assert troubles(messages, sites, START + 2 * DAY) == {("device_offline", "baihe-scan1")}
    assert summary["pending_events"] == 0


def test_an_anomaly_after_the_end_is_reported_as_not_reached(demo, sites, tmp_path):
    text = "name: w\nevents:\n- {kind: lost_bag, clinic: 1, at: 'day 5'}\n"
    messages, summary = run(sites, events_of(demo, text, tmp_path=tmp_path), end=START + 2 * DAY)
    [a] = summary["anomalies"]
    assert (a["reached"], a["expected_rule"], a["subject"]) == (False, None, None)
    assert troubles(messages, sites, START + 2 * DAY) == set()


# ------------------------------------------------------------------ the ground truth's counts


def test_counts_and_closed_loop_rate_match_a_recount_from_the_events(anomalous):
    messages, summary = anomalous
    evs = waste_events(messages)
    generated = {ev.bag_id: (m.clinic, ev.ts) for m, ev in evs if ev.stage == Stage.generated}
    disposed = {ev.bag_id for _, ev in evs if ev.stage == Stage.disposed}
    refused = {ev.bag_id for _, ev in evs if ev.stage == Stage.received and ev.refused_kg is not None}
    assert summary["events"] == len(evs)
    assert summary["messages"] == sum(1 for m in messages if m.topic.endswith("/waste"))
    assert summary["status_messages"] == 2
    assert (summary["bags_generated"], summary["bags_disposed"], summary["bags_refused"]) == (
        len(generated),
        len(disposed),
        len(refused),
    )
    assert summary["closed_age_h"] == CLOSED_AGE_H == 72
    cutoff = WEEK_END - 72 * HOUR
    rates = {}
    for clinic, counts in summary["clinics"].items():
        old = [b for b, (c, t) in generated.items() if c == clinic and t <= cutoff]
        closed = [b for b in old if b in disposed or b in refused]
        assert counts["generated"] == sum(1 for c, _ in generated.values() if c == clinic)
        assert counts["disposed"] == sum(1 for b in disposed if generated[b][0] == clinic)
        assert counts["closed_loop_rate"] == pytest.approx(len(closed) / len(old), abs=5e-5)
        rates[clinic] = counts["closed_loop_rate"]
    assert rates["baihe-thc"] < 1.0  # the lost bag
    assert rates["xigang-thc"] == 1.0  # a refused bag counts as closed
    assert sum(1 for r in rates.values() if r == 1.0) == 9


def test_closed_loop_rate_is_null_without_bags_old_enough(sites):
    _, summary = run(sites, end=START + 2 * DAY)
    assert all(c["closed_loop_rate"] is None for c in summary["clinics"].values())
    assert summary["bags_generated"] > 0


# ------------------------------------------------------------------ scenario validation


EVENT = "name: w\nevents:\n- kind: {kind}\n  clinic: {clinic}\n  at: '{at}'\n{extra}"


@pytest.mark.parametrize(
    ("kind", "extra", "where", "what"),
    [
        ("missed_pickup", "  late_h: 13\n", "events[0]", "late_h 13 is not within 0…12 h"),
        ("weight_loss", "  loss_pct: 3\n", "events[0]", "loss_pct 3 is not within 6…95 %"),
        ("lost_bag", "  duration: 2h\n", "events[0]", "'duration' does not apply to lost_bag"),
        ("scanner_offline", "", "events[0]", "scanner_offline needs 'duration'"),
        ("scanner_offline", "  duration: 21h\n", "events[0]", "scanner_offline lasts at most 20h"),
        ("resend", "", "events[0]", "resend needs 'count'"),
        ("resend", "  count: 0\n", "events[0]", "count 0 is not within 1…500"),
        ("lost_bag", "  equipment: fridge1\n", "events[0]", "remove 'equipment'"),
        ("lost_bag", "  refusal_reason: wet\n", "events[0]", "'refusal_reason' belongs to refused_bag"),
        ("power_cut", "  late_h: 2\n", "events[0]", "'late_h' belongs to missed_pickup events"),
        ("power_cut", "", "events[0]", "power_cut needs 'duration'"),
        ("refused_bag", "  refusal_reason: ''\n", "events[0]", "refusal_reason must be 1…200"),
        ("lost_bag", "  lost: yes\n", "events[0].lost", "unknown field (known: kind, clinic"),
    ],
)
def test_bad_waste_events_give_one_specific_line(tmp_path, kind, extra, where, what):
    p = tmp_path / "w.yaml"
    p.write_text(EVENT.format(kind=kind, clinic=2, at="day 2", extra=extra), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{p}:{where}"), msg
    assert what in msg, msg


def test_waste_anomalies_need_one_clinic(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text(EVENT.format(kind="lost_bag", clinic="all", at="day 2", extra=""), encoding="utf-8")
    with pytest.raises(ScenarioError, match="lost_bag happens at one clinic"):
        load_scenario(p)


def registry_with(change) -> RegistryFile:
    doc = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    change(doc["district"]["townships"][0]["clinics"][0])
    return RegistryFile.model_validate(doc)


def weekdays_only(clinic) -> None:
    clinic["waste_pickup"] = {"days": ["mon", "tue", "wed", "thu", "fri"], "by": "16:00"}


def no_scanner(clinic) -> None:
    clinic["devices"] = [d for d in clinic["devices"] if d["kind"] != "waste_scanner"]


@pytest.mark.parametrize(
    ("change", "events", "what"),
    [
        # 2026-11-21 is a Saturday
        (
            weekdays_only,
            "- {kind: missed_pickup, clinic: 1, at: 'day 1'}",
            "2026-11-21 is a sat, not a pickup day",
        ),
        (
            weekdays_only,
            "- {kind: missed_pickup, clinic: 1, at: 'day 3'}",
            "no pickup on 2026-11-22 either: bags would wait 36 h or more",
        ),
        (
            None,
            "- {kind: missed_pickup, clinic: 1, at: 'day 2'}\n"
            "- {kind: missed_pickup, clinic: 1, at: 'day 3'}",
            "two missed pickups in a row",
        ),
        (
            no_scanner,
            "- {kind: lost_bag, clinic: 1, at: 'day 2'}",
            "clinic qingshui-thc has no waste_scanner",
        ),
        (
            None,
            "- {kind: scanner_offline, clinic: 1, at: 'day 2 08:00', duration: 5h}\n"
            "- {kind: scanner_offline, clinic: 1, at: 'day 2 12:00', duration: 5h}",
            "overlaps",
        ),
    ],
)
def test_anomalies_are_checked_against_the_registry(tmp_path, demo, change, events, what):
    registry = registry_with(change) if change else demo
    p = tmp_path / "w.yaml"
    p.write_text(f"name: w\nevents:\n{events}\n", encoding="utf-8")
    d = build_district(registry, 10)
    resolved = resolve_events(load_scenario(p), list(d.sites), START, d.registry_clinics)
    with pytest.raises(ScenarioError) as err:
        WasteFlow(build_sites(registry, d.clinics), seed=1, start=START, events=resolved)
    assert str(err.value).startswith(f"{p}:events[") and what in str(err.value), str(err.value)


# ------------------------------------------------------------------ engine and command line


def test_the_engine_publishes_waste_at_its_own_time_never_ahead_of_the_clock(demo, sites):
    d = build_district(demo, 1)
    one = build_sites(demo, d.clinics)
    wall0 = START + 20 * HOUR  # --start -20h --speed 0: back-fill to 20:00 local, then live
    clock = ManualClock(wall0)
    sink = MemorySink(clock=clock)
    flow = WasteFlow(one, seed=3, start=START, end=START + 36 * HOUR)
    result = Simulation(
        d,
        seed=3,
        start=START,
        duration=36 * HOUR,
        speed=0,
        sink=sink,
        clock=clock,
        sleep=clock.advance,
        waste=flow,
    ).run()
    published = [m for m in sink.messages if m.topic.endswith("/waste")]
    reference, _ = run(one, seed=3, end=START + 36 * HOUR)
    assert [(m.topic, m.payload) for m in published] == [(m.topic, m.payload) for m in reference]
    for m in published:
        [ev] = parse_waste(m.payload, now=m.at)
        assert ev.ts <= m.at
        assert m.at == wall0 or m.at - ev.ts <= 5.0  # live: within one sleep of its time
    assert any(m.at > wall0 for m in published)
    times = [m.at for m in sink.messages]
    assert times == sorted(times)
    assert result.waste is not None and result.waste["events"] == len(published)
    assert json.loads(result.to_json())["waste"]["bags_generated"] == result.waste["bags_generated"]


class FakePublisher(MemorySink):
    instances: list[FakePublisher] = []  # noqa: RUF012

    def __init__(self, host: str, port: int, **kwargs) -> None:
        super().__init__()
        FakePublisher.instances.append(self)


def test_simulate_waste_prints_the_ground_truth_and_writes_the_jsonl(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sim_cli, "MqttPublisher", FakePublisher)
    FakePublisher.instances.clear()
    jsonl = tmp_path / "waste.jsonl"
    argv = ["simulate", "--clinics", "1", "--speed", "0", "--start", "-25h", "--duration", "24h"]
    assert core_cli.main([*argv, "--waste-jsonl", str(jsonl)]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    [sink] = FakePublisher.instances
    waste = [m for m in sink.messages if m.topic.endswith("/waste")]
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert result["waste"]["events"] == len(lines) == len(waste) > 0  # one event per message
    assert [{k: v for k, v in line.items() if k != "clinic"} for line in lines] == [
        json.loads(m.payload) for m in waste
    ]
    assert {line["clinic"] for line in lines} == {"qingshui-thc"}
    assert {(r.clinic, r.device) for r in sink.connected} == {
        ("qingshui-thc", "qingshui-gw1"),
        ("qingshui-thc", "qingshui-scan1"),
        ("demo-plant", "plant-scan1"),
    }
    parse_waste(waste[0].payload, now=time.time())
    assert list(result["waste"]["clinics"]) == ["qingshui-thc"] and result["waste"]["anomalies"] == []

    FakePublisher.instances.clear()
    assert core_cli.main([*argv[:-2], "--duration", "1h"]) == 0
    assert "waste" not in json.loads(capsys.readouterr().out.strip())  # off by default
    assert not [m for m in FakePublisher.instances[0].messages if m.topic.endswith("/waste")]


def test_a_waste_anomaly_without_waste_is_an_error(tmp_path):
    args = core_cli.build_parser().parse_args(
        ["simulate", "--scenario", str(SCENARIOS / "waste-anomalies.yaml"), "--start", "-7d"]
    )
    with pytest.raises(SimulateError) as err:
        plan_simulation(args, Settings(), START + 8 * DAY)
    assert str(err.value).endswith(
        "waste-anomalies.yaml:events[0]: missed_pickup is a waste anomaly: add --waste"
    )
    args.waste = True
    plan = plan_simulation(args, Settings(), START + 8 * DAY)
    assert plan.waste is not None and len(plan.telemetry_events) == 0 and len(plan.events) == 8
