"""The registry: the demo district as the issue describes it, YAML -> SQL on any SQLAlchemy URL, and
clear errors for a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from core.db import DeadLetterRow, PersonRow, RotaRow, init_db, make_engine
from core.registry_model import DEMO_REGISTRY, DeviceKind, Profile, RegistryFile, load_registry_file
from core.registry_store import device_tags, ensure_registry, load_registry

ROOT = Path(__file__).resolve().parents[2]


def test_demo_district_has_ten_clinics_each_with_two_fridges_a_freezer_a_gateway_and_a_scanner() -> None:
    reg = load_registry_file(DEMO_REGISTRY)
    clinics = reg.clinics()
    assert len(clinics) == 10
    for c in clinics:
        profiles = sorted(e.profile for e in c.equipment)
        assert profiles == [Profile.freezer, Profile.refrigerator, Profile.refrigerator], c.id
        kinds = sorted(d.kind for d in c.devices)
        assert kinds == [DeviceKind.gateway, DeviceKind.waste_scanner], c.id
        gateway = next(d.id for d in c.devices if d.kind is DeviceKind.gateway)
        assert {e.device for e in c.equipment} == {gateway}  # one probe per appliance on the gateway
        assert c.people, f"{c.id} has nobody to call"
    assert reg.district.bureau.people
    assert all(p.phone for p in reg.people())


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///{tmp}/reg.sqlite"])
def test_registry_loads_into_sql_and_gives_the_collector_its_tags(url: str, tmp_path: Path) -> None:
    engine = make_engine(url.format(tmp=tmp_path)) if "{tmp}" in url else create_engine(url)
    assert ensure_registry(engine) is True
    assert ensure_registry(engine) is False  # loaded once
    tags = device_tags(engine)
    t = tags[("qingshui-thc", "qingshui-gw1")]
    assert (t.district, t.township, t.clinic) == ("demo-district", "qingshui", "qingshui-thc")
    assert t.probes == {"p1": "qingshui-fridge1", "p2": "qingshui-fridge2", "p3": "qingshui-freezer1"}
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(PersonRow)) == len(
            load_registry_file(DEMO_REGISTRY).people()
        )
        assert s.scalar(select(func.count()).select_from(RotaRow)) > 0


def _demo_dict() -> dict:
    return yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))


def test_equipment_on_a_device_of_another_clinic_is_refused() -> None:
    raw = _demo_dict()
    raw["district"]["townships"][0]["clinics"][0]["equipment"][0]["device"] = "elsewhere-gw1"
    with pytest.raises(ValidationError, match="device elsewhere-gw1 is not a device of clinic"):
        RegistryFile.model_validate(raw)


def test_duplicate_ids_and_bad_phone_numbers_are_refused() -> None:
    raw = _demo_dict()
    clinics = raw["district"]["townships"][0]["clinics"]
    clinics[0]["people"][0]["phone"] = "call me"
    with pytest.raises(ValidationError, match="phone"):
        RegistryFile.model_validate(raw)
    raw = _demo_dict()
    raw["district"]["townships"][1]["clinics"][0]["id"] = raw["district"]["townships"][0]["clinics"][0]["id"]
    with pytest.raises(ValidationError, match="duplicate clinic id"):
        RegistryFile.model_validate(raw)


def test_a_failed_load_changes_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/reg.sqlite")
    ensure_registry(engine)
    before = device_tags(engine)
    bad = tmp_path / "bad.yaml"
    raw = _demo_dict()
    raw["rota"].append({"site": "nowhere", "person": "nobody", "level": 0})
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ValidationError):
        load_registry(engine, bad)
    assert device_tags(engine) == before
    init_db(engine)  # idempotent
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(DeadLetterRow)) == 0


def test_cli_reports_a_bad_registry_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    raw = _demo_dict()
    raw["district"]["townships"][0]["clinics"][0]["equipment"][0]["profile"] = "wine_cooler"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "registry", "load", str(bad)],
        env={"CHAINWATCH_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "profile" in lines[0] and str(bad) in lines[0], proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "core.cli", "registry", "load", str(DEMO_REGISTRY)],
        env={"CHAINWATCH_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "10 clinics" in ok.stdout


def test_profile_overrides_in_the_registry_change_the_rules(tmp_path: Path) -> None:
    from alerting.feed import build_engine, build_engine_from_sql

    raw = _demo_dict()
    raw["profiles"] = {"refrigerator": {"heat_warning_after_min": 20}, "freezer": {"high_c": -18.0}}
    reg = RegistryFile.model_validate(raw)
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    engine = make_engine(f"sqlite:///{tmp_path}/reg.sqlite")
    load_registry(engine, path)
    for rules in (build_engine(reg), build_engine_from_sql(engine)):
        fridge = rules.temps[("qingshui-gw1", "p1")].live.settings
        freezer = rules.temps[("qingshui-gw1", "p3")].live.settings
        assert (fridge.heat_warning_after_min, fridge.high_c) == (20.0, 8.0)
        assert (freezer.high_c, freezer.low_c) == (-18.0, -25.0)
        t0 = 1_795_000_000.0
        assert rules.temperature("qingshui-gw1", "p1", t0, 9.0) == []
        (fired,) = rules.temperature("qingshui-gw1", "p1", t0 + 20 * 60, 9.0)
        assert fired.rule.value == "heat_warning"


def test_an_unknown_profile_setting_is_refused() -> None:
    raw = _demo_dict()
    raw["profiles"] = {"refrigerator": {"heat_warning_after": 20}}
    with pytest.raises(ValidationError, match="heat_warning_after"):
        RegistryFile.model_validate(raw)


def test_waste_sites_schedules_and_profiles_are_stored(tmp_path) -> None:
    from core.registry_store import device_tags, waste_registry

    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    raw = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    raw["waste_profiles"] = {"strict": {"storage_warning_h": 20, "storage_critical_h": 24}}
    raw["waste_profile"] = "strict"
    from core.registry_store import store_registry

    store_registry(engine, RegistryFile.model_validate(raw))
    w = waste_registry(engine)
    assert w.profile == "strict" and w.profiles == {
        "strict": {"storage_warning_h": 20, "storage_critical_h": 24}
    }
    assert w.pickups["qingshui-thc"] == (("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "16:00")
    tags = device_tags(engine)
    assert tags[("baihe-thc", "plant-scan1")].clinic == "baihe-thc"  # the plant's scanner, for every clinic
    raw["waste_profile"] = "lenient"
    with pytest.raises(ValueError, match="waste_profile 'lenient' is not a profile"):
        RegistryFile.model_validate(raw)
    raw["waste_profile"] = "national"
    raw["waste_profiles"] = {"strict": {"storage_hours": 3}}
    with pytest.raises(ValueError, match="unknown setting"):
        RegistryFile.model_validate(raw)


def test_the_fingerprint_changes_with_the_registry_and_only_then(tmp_path: Path) -> None:
    """What tells the alerting service to read the registry again (after the web admin's reload)."""
    from core.registry_store import registry_fingerprint, store_registry

    engine = make_engine(f"sqlite:///{tmp_path / 'fp.sqlite'}")
    load_registry(engine, DEMO_REGISTRY)
    before = registry_fingerprint(engine)
    load_registry(engine, DEMO_REGISTRY)  # the same file again: nothing to do
    assert registry_fingerprint(engine) == before
    doc = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    doc["district"]["townships"][0]["clinics"][0]["people"][0]["phone"] = "+86 139 0000 0001"
    store_registry(engine, RegistryFile.model_validate(doc))  # one nurse's new phone number
    assert registry_fingerprint(engine) != before
