"""Scenario files: the shipped ones load; bad ones give one specific line naming file and place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from core.registry_model import DEMO_REGISTRY, RegistryFile, load_registry_file
from simulators.engine import build_district
from simulators.scenario import (
    FaultKind,
    Kind,
    ScenarioError,
    load_scenario,
    parse_duration,
    resolve_events,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 clinic local time
HOUR = 3600.0


@pytest.fixture(scope="module")
def demo() -> RegistryFile:
    return load_registry_file(DEMO_REGISTRY)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def resolve(path: Path, registry: RegistryFile, clinics: int = 10, start: float = START):
    d = build_district(registry, clinics)
    return resolve_events(load_scenario(path), list(d.sites), start, d.registry_clinics)


@pytest.mark.parametrize(
    "name", ["power-cut", "network-loss-6h", "probe-faults", "hot-day", "door-left-open"]
)
def test_shipped_scenarios_load_and_resolve(name, demo):
    events = resolve(SCENARIOS / f"{name}.yaml", demo)
    assert events and all(e.end > e.start for e in events)


def test_power_cut_example_means_clinic_3_at_14_local_for_6_hours(demo):
    [ev] = resolve(SCENARIOS / "power-cut.yaml", demo)
    assert ev.kind == Kind.power_cut and ev.clinics == ("shiqiao-thc",) and ev.equipment == ()
    assert ev.start == START + 14 * HOUR and ev.end == START + 20 * HOUR


def test_probe_fault_equipment_by_suffix(demo):
    events = resolve(SCENARIOS / "probe-faults.yaml", demo)
    assert [(e.equipment, e.fault) for e in events] == [
        (("qingshui-fridge1",), FaultKind.disconnected),
        (("qingshui-fridge2",), FaultKind.reset),
        (("baihe-freezer1",), FaultKind.stuck),
    ]
    assert events[0].start == START + 0.5 * HOUR


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("14:00", START + 14 * HOUR),
        ("06:30:15", START + 6.5 * HOUR + 15),
        ("day 2 14:00", START + 38 * HOUR),
        ("+3h", START + 3 * HOUR + 7 * 60),  # the start in this test is 00:07 local
        ("+90m", START + 1.5 * HOUR + 7 * 60),
        ("2026-11-21T06:00:00Z", START + 14 * HOUR),
        ("2026-11-21T14:00:00+08:00", START + 14 * HOUR),
    ],
)
def test_time_forms(tmp_path, demo, at, expected):
    p = write(tmp_path, f'name: t\nevents:\n- {{kind: power_cut, clinic: 1, at: "{at}", duration: 1h}}\n')
    [ev] = resolve(p, demo, start=START + 7 * 60)
    assert ev.start == expected


def test_unquoted_clock_time_is_read_as_a_time_not_a_number(tmp_path, demo):
    p = write(tmp_path, "name: t\nevents:\n- kind: network_loss\n  clinic: 2\n  at: 14:00\n  duration: 90\n")
    [ev] = resolve(p, demo)
    assert ev.start == START + 14 * HOUR and ev.end == ev.start + 90


@pytest.mark.parametrize(
    ("duration", "seconds"), [("45s", 45), ("90m", 5400), ("6h", 21600), ("2d", 172800), ("1h30m", 5400)]
)
def test_durations(duration, seconds):
    assert parse_duration(duration) == seconds


EVENT = "name: t\nevents:\n- kind: {kind}\n  clinic: 3\n  at: '{at}'\n  duration: {duration}\n{extra}"


def event(kind="power_cut", at="14:00", duration="6h", extra="") -> str:
    return EVENT.format(kind=kind, at=at, duration=duration, extra=extra)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (event(duration="6 hours"), "events[0].duration", "'6 hours' is not a duration"),
        (event(duration="0s"), "events[0].duration", "must be longer than 0 s"),
        (event(kind="blackout"), "events[0].kind", "'power_cut'"),
        (event(extra="  equipment: fridge1\n"), "events[0]", "power_cut affects the whole clinic"),
        (event(kind="network_loss", extra="  equipment: fridge1\n"), "events[0]", "remove 'equipment'"),
        (event(kind="probe_fault"), "events[0]", "probe_fault needs 'fault'"),
        (event(kind="probe_fault", extra="  fault: melted\n"), "events[0].fault", "'disconnected'"),
        (event(extra="  fault: reset\n"), "events[0]", "'fault' belongs to probe_fault"),
        (event(kind="ambient"), "events[0]", "ambient needs 'ambient_c'"),
        (event(kind="ambient", extra="  ambient_c: 80\n"), "events[0]", "ambient_c 80 is not within"),
        (event(at="25:00"), "events[0].at", "'25:00' is not a time"),
        (event(at="2026-11-21T06:00:00"), "events[0].at", "has no time zone"),
        (event(at="day 0 10:00"), "events[0].at", "days count from 1"),
        (event(at="+soon"), "events[0].at", "after '+' comes a duration"),
        (event(extra="  durration: 5h\n"), "events[0].durration", "unknown field"),
        (event().replace("clinic: 3", "clinic: 0"), "events[0].clinic", "numbered from 1"),
        (event().replace("  clinic: 3\n", ""), "events[0].clinic", "missing"),
        ("events: []\n", "name", "missing"),
        ("name: t\nsurprise: 1\n", "surprise", "unknown field"),
        ("- kind: power_cut\n", "", "a scenario is a mapping"),
        ("name: t\nevents:\n  - kind: [power_cut\n", "line 4", "not valid YAML"),
    ],
)
def test_bad_files_give_one_specific_line(tmp_path, text, where, what):
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(p)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}:{where}"), msg
    assert what in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.yaml: scenario file not found$"):
        load_scenario(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("clinic", "equipment", "clinics", "what"),
    [
        ("12", None, 10, "events[0].clinic: clinic 12 is not simulated: 10 clinic(s) are"),
        ("4", None, 3, "events[0].clinic: clinic 4 is not simulated: 3 clinic(s) are"),
        (
            "yunxi-thc",
            None,
            3,
            "events[0].clinic: clinic yunxi-thc is in the registry but not among the 3 simulated",
        ),
        ("atlantis-thc", None, 10, "events[0].clinic: no clinic 'atlantis-thc' in the registry"),
        ("2", "fridge9", 10, "events[0].equipment: clinic baihe-thc has no equipment 'fridge9'"),
        ("all", "fridge1", 2, None),
    ],
)
def test_events_must_name_simulated_clinics_and_equipment(tmp_path, demo, clinic, equipment, clinics, what):
    extra = f"  equipment: {equipment}\n" if equipment else ""
    text = event(kind="door_open", extra=extra).replace("clinic: 3", f"clinic: {clinic}")
    p = write(tmp_path, text)
    if what is None:
        [ev] = resolve(p, demo, clinics)
        assert ev.equipment == ("qingshui-fridge1", "baihe-fridge1")
        return
    with pytest.raises(ScenarioError) as err:
        resolve(p, demo, clinics)
    assert str(err.value).startswith(f"{p}:{what}"), str(err.value)


SMALL_REGISTRY = """
district:
  id: d
  name: d
  bureau: {id: b, name: b}
  townships:
  - id: t
    name: t
    clinics:
    - id: t-thc
      name: c
      devices: [{id: t-gw1, kind: gateway}]
      equipment:
      - {id: t-fridge1, name: f, profile: refrigerator, device: t-gw1, probe: p1}
      - {id: t-box1, name: b, profile: cold_box, device: t-gw1, probe: p2}
"""


def test_equipment_that_is_not_simulated_is_named_as_such(tmp_path):
    registry = RegistryFile.model_validate(yaml.safe_load(SMALL_REGISTRY))
    p = write(
        tmp_path, event(kind="unplugged", extra="  equipment: box1\n").replace("clinic: 3", "clinic: 1")
    )
    with pytest.raises(
        ScenarioError, match="equipment 'box1' of clinic t-thc is not a refrigerator or freezer"
    ):
        resolve(p, registry, 1)
