"""The local alarm under a real MicroPython, on the simulated board's buzzer and LED: it follows the
server's heat and freeze timing (DESIGN §5), clears with hysteresis, sounds for the server's critical
alerts of the clinic, and the button silences it for 30 min."""

from __future__ import annotations

from pathlib import Path

from tests.firmware import mpy

START = 1795670000


def alert(aid: str, state: str, severity: str = "critical", clinic: str = "qingshui-thc") -> dict[str, str]:
    return {"id": aid, "clinic": clinic, "rule": "heat_alarm", "severity": severity, "state": state}


def sounding(outputs: list[list[int]]) -> tuple[set[int], set[int]]:
    """Minutes with the buzzer on, minutes with the LED on."""
    return {m for m, b, _ in outputs if b}, {m for m, _, led in outputs if led}


def spans(minutes: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in sorted(minutes):
        if out and out[-1][1] == m - 1:
            out[-1] = (out[-1][0], m)
        else:
            out.append((m, m))
    return out


def test_heat_and_freeze_timing_clearing_and_the_silence_button(tmp_path: Path) -> None:
    run = mpy.run(
        "alarm",
        tmp_path,
        start=START,
        minutes=330,
        # a 20-min door opening; then 80 min above +8 °C; later 100 min at -1 °C
        p1=[[0, 5.0], [10, 9.0], [30, 5.0], [40, 9.0], [120, 5.0], [200, -1.0], [300, 5.0]],
        presses=[80.2],
        alerts=[],
    )
    buzzer, led = sounding(run.one("done")["outputs"])
    # heat: the first reading above is at minute 40, the warning 30 min later (the door opening never
    # sounds); the press at 80 silences the buzzer for 30 min but not the LED; back in range by 0.3 °C
    # from minute 120: cleared 10 min later. Freeze: at or below -0.5 °C from 200, alarm after 60 min.
    assert spans(buzzer) == [(70, 79), (110, 129), (260, 309)]
    assert spans(led) == [(70, 129), (260, 309)]


def test_critical_alerts_from_the_server_sound_and_a_new_one_breaks_the_silence(tmp_path: Path) -> None:
    run = mpy.run(
        "alarm",
        tmp_path,
        start=START,
        minutes=80,
        p1=[[0, 5.0]],
        presses=[20.2],
        alerts=[
            [5.3, alert("a-other-clinic", "firing", clinic="other-thc")],
            [6.3, alert("a-warning", "firing", severity="warning")],
            [10.3, alert("a1", "firing")],
            [40.3, alert("a2", "firing")],
            [50.3, alert("a1", "acknowledged")],
            [60.3, alert("a2", "resolved")],
        ],
    )
    buzzer, led = sounding(run.one("done")["outputs"])
    assert spans(buzzer) == [(10, 19), (40, 59)]  # silenced at 20 for 30 min; a2 sounds again at 40
    assert spans(led) == [(10, 59)]


def test_ten_hours_above_in_a_day_is_a_heat_alarm_that_breaks_the_silence(tmp_path: Path) -> None:
    # nine 70-min runs above +8 °C, 15 min back in range between them (enough to clear the warning):
    # 8 x 69 min = 552 min by the end of the eighth run, 600 min 48 min into the ninth (from 680)
    plan = []
    for k in range(9):
        plan += [[85 * k, 9.0], [85 * k + 70, 5.0]]
    run = mpy.run("alarm", tmp_path, start=START, minutes=735, p1=plan, presses=[715.1], alerts=[])
    done = run.one("done")
    buzzer, _ = sounding(done["outputs"])
    # the ninth run's warning at 710, silenced at 715; the alarm at 728 sounds through the silence
    assert [m for m in range(700, 735) if m in buzzer] == [*range(710, 715), *range(728, 735)]
    assert done["firing"] == ["p1:heat_alarm", "p1:heat_warning"]


def test_ten_hours_above_without_a_break_is_a_heat_alarm(tmp_path: Path) -> None:
    """DESIGN §5: above +8 °C for 10 h continuous. The warning sounds from 30 min; the alarm joins it at
    exactly 600 min, not a minute before."""
    runs = {}
    for minutes in (599, 602):
        (tmp_path / str(minutes)).mkdir()
        runs[minutes] = mpy.run(
            "alarm",
            tmp_path / str(minutes),
            start=START,
            minutes=minutes,
            p1=[[0, 9.0]],
            presses=[100.2],
            alerts=[],
        ).one("done")
    assert runs[599]["firing"] == ["p1:heat_warning"]
    assert runs[602]["firing"] == ["p1:heat_alarm", "p1:heat_warning"]
    buzzer, led = sounding(runs[602]["outputs"])
    assert spans(buzzer) == [(30, 99), (130, 601)]  # the press at 100 silences it for 30 min
    assert spans(led) == [(30, 601)]
