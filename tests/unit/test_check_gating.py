"""The service evaluates check machines only when something can change (a due time or a slot's end
passed, or the equipment has checks): that must give exactly the decisions of evaluating all of them
at every tick."""

from __future__ import annotations

from datetime import UTC, datetime

from alerting.rules.checks import Check, CheckMachine, CheckSettings, boundaries

START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-21 00:00 clinic local time
HOUR = 3600.0


def test_boundaries_are_the_due_times_and_slot_ends_in_local_time() -> None:
    s = CheckSettings()
    assert boundaries(s, START + 9 * HOUR, START + 10 * HOUR)  # 10:00 local: morning reminder due
    assert not boundaries(s, START + 10 * HOUR, START + 11.9 * HOUR)
    assert boundaries(s, START + 11.9 * HOUR, START + 12 * HOUR)  # noon: the morning slot ends
    assert boundaries(s, START + 23.9 * HOUR, START + 24.1 * HOUR)  # midnight
    assert not boundaries(s, START + 16.5 * HOUR, START + 23.5 * HOUR)


def test_gated_evaluation_gives_the_same_decisions_as_evaluating_everything() -> None:
    checks = {
        "fridge-a": [Check(START + 8 * HOUR, "nurse"), Check(START + 13 * HOUR, "nurse")],  # 5 h apart
        "fridge-b": [Check(START + 9 * HOUR, "nurse"), Check(START + 15.5 * HOUR, "nurse")],
        "fridge-c": [Check(START + 10.5 * HOUR, "nurse")],  # late morning, no afternoon
        "fridge-d": [],
        "fridge-e": [Check(START + 24 * HOUR + 7 * HOUR, "nurse")],  # the next day
    }

    def run(gated: bool) -> list[tuple[float, str, str, str]]:
        machines = {eq: CheckMachine(eq, clinic="c") for eq in checks}
        out = []
        last = None
        t = START + 60.0
        while t < START + 2 * 24 * HOUR + 600:
            every = not gated or last is None or boundaries(CheckSettings(), last, t)
            known = {eq: [c for c in cs if c.time <= t] for eq, cs in checks.items()}
            for eq, m in machines.items():
                if every or known[eq]:
                    out += [
                        (d.time, d.subject, d.action.value, d.severity.value)
                        for d in m.evaluate(t, known[eq])
                    ]
            last = t
            t += 300.0
        return sorted(out)

    everything = run(gated=False)
    assert everything  # reminders, clears and missed checks happen in this scenario
    assert run(gated=True) == everything


def test_check_times_come_from_the_equipment_profile() -> None:
    from alerting.rules.checks import check_settings
    from core.profiles import profile_settings

    default = check_settings(profile_settings("refrigerator"))
    assert (default.morning_due.hour, default.afternoon_due.hour, default.min_gap_h, default.enabled) == (
        10,
        16,
        6.0,
        True,
    )
    changed = check_settings(
        profile_settings(
            "refrigerator", {"refrigerator": {"check_morning_due": "09:30", "check_min_gap_h": 5}}
        )
    )
    assert (changed.morning_due.hour, changed.morning_due.minute, changed.min_gap_h) == (9, 30, 5.0)
    assert check_settings(profile_settings("waste_store")).enabled is False
