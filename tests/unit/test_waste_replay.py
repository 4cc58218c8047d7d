"""``chainwatch waste replay``: the production waste rules over a JSON-lines file of protocol-v1
events (with a ``clinic`` field), the clock advanced to ``--until``; one JSON line per decision."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from alerting.waste.replay import ReplayError, replay_main

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_392_000  # 2026-11-23 08:00 in the clinics (Monday)
CLINIC = "qingshui-thc"


def event(bag: str, stage: str, hours: float, kg: float = 2.0, n: int = 0, **extra: object) -> dict:
    doc = {
        "event_id": f"{bag}-{stage}-{n}",
        "bag_id": bag,
        "stage": stage,
        "category": "infectious",
        "weight_kg": kg,
        "ts": T0 + hours * 3600,
        "operator": "op",
        "clinic": CLINIC,
    }
    if stage in ("handed_over", "received", "disposed"):
        doc |= {"manifest_id": "MF-1", "counterparty": "demo-transport"}
    return doc | extra


def write(tmp_path: Path, events: list[dict | str]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def replay(path: Path, until: str | None = None, **kw: object) -> list[dict]:
    out = io.StringIO()
    options = {"until": until, "registry": None, "profile": None, "verbose": False, "updates": False} | kw
    replay_main(path, out=out, **options)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()]


GOOD = [
    event("b1", "generated", 0),
    event("b1", "collected", 3),
    event("b1", "stored", 3.2),
    event("b1", "handed_over", 5),
    event("b1", "received", 9),
    event("b1", "disposed", 20),
]


def test_a_clean_week_prints_nothing(tmp_path: Path) -> None:
    assert replay(write(tmp_path, ["# a comment", *GOOD, ""]), until="2026-11-30T00:00:00Z") == []


def test_the_clock_is_advanced_to_until(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD[:4])  # handed over, then nothing
    assert replay(path) == []  # the clock stops at the last scan
    assert replay(path, until=str(T0 + 29 * 3600)) == [
        {
            "time": "2026-11-24T05:00:00Z",
            "rule": "lost_in_transport",
            "severity": "critical",
            "subject": "b1",
            "action": "fire",
        }
    ]


def test_late_lines_and_a_lighter_bag(tmp_path: Path) -> None:
    lines = [
        event("b1", "generated", 0),
        event("b2", "generated", 30),  # the clock jumps: b1 has not been collected for 24 h
        event("b1", "collected", 26),  # then its scan comes, late
        event("b2", "collected", 31, 1.5),
    ]
    got = [(d["time"], d["rule"], d["subject"], d["action"]) for d in replay(write(tmp_path, lines))]
    assert got == [
        ("2026-11-24T00:00:00Z", "not_collected", "b1", "fire"),
        ("2026-11-24T02:00:00Z", "not_collected", "b1", "clear"),
        ("2026-11-24T07:00:00Z", "weight_discrepancy", "b2", "fire"),
    ]


def test_profiles_and_verbose_output(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD[:3])  # stored at 11:12, never handed over
    got = replay(path, until=str(T0 + 20 * 3600), profile="epidemic", verbose=True)
    assert [(d["rule"], d["profile"], d["clinic"]) for d in got] == [
        ("late_pickup", "epidemic", CLINIC),  # due by 16:00
        ("storage_overdue", "epidemic", CLINIC),  # 12 h under the epidemic profile
    ]
    assert got[1]["limit_h"] == 12.0 and got[0]["due"] == "2026-11-23 16:00"
    with pytest.raises(ReplayError, match="unknown waste profile 'strict'"):
        replay(path, profile="strict")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "events.jsonl:2: not JSON"),
        ("[1, 2]", "events.jsonl:2: not a JSON object"),
        (json.dumps(event("b9", "boiled", 1)), "events.jsonl:2: event: stage 'boiled' is not a waste stage"),
        (
            json.dumps(event("b9", "received", 1) | {"manifest_id": None}),
            "events.jsonl:2: event: 'manifest_id'",
        ),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ReplayError) as err:
        replay(write(tmp_path, [GOOD[0], line]))
    assert message in str(err.value) and str(err.value).startswith(str(tmp_path))


def test_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD[:4])
    run = [sys.executable, "-m", "core.cli", "waste", "replay", str(path), "--until", "2026-11-25T00:00:00Z"]
    proc = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["rule"] for x in proc.stdout.splitlines()] == ["lost_in_transport"]
    bad = subprocess.run([*run[:5], str(tmp_path / "none.jsonl")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip().endswith("none.jsonl: no such file")
    assert "Traceback" not in bad.stderr


def test_switching_the_profile_is_recorded(tmp_path: Path) -> None:
    from alerting.waste.profile_cli import profile_main
    from core.db import make_engine
    from core.settings import Settings
    from core.waste_store import profile_in_force, profile_switches

    settings = Settings(_env_file=None, data_dir=tmp_path)
    out = io.StringIO()
    profile_main(settings, None, "x", None, out)
    assert out.getvalue().startswith("in force: national (the registry's)")
    profile_main(settings, "epidemic", "bureau-duty1", "流感疫情", io.StringIO())
    sql = make_engine(settings.sql_url)
    assert profile_in_force(sql, "national") == "epidemic"
    (switch,) = profile_switches(sql)
    assert (switch.name, switch.by, switch.note) == ("epidemic", "bureau-duty1", "流感疫情")
    with pytest.raises(ReplayError, match="unknown waste profile 'lax'"):
        profile_main(settings, "lax", "x", None, io.StringIO())
