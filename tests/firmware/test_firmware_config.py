"""The gateway under a real MicroPython takes its sampling interval from the server's retained config
(DESIGN §3) and keeps it through a reboot without network; a watchdog guards the loop."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.firmware import mpy


def test_retained_config_sets_the_interval_and_survives_a_reboot_offline(tmp_path: Path) -> None:
    run = mpy.run("config", tmp_path, start=1795670000, config={"interval_s": 300, "unknown": 1})
    done = run.one("done")
    gaps = [round(b - a) for a, b in itertools.pairwise(done["reads"])]
    # first boot: the sample at boot comes before the retained config arrives (60 s), then 300 s;
    # the reboot at minute 60 samples at once; the second boot, offline, keeps 300 s from flash
    assert gaps == [60, *[300] * 11, 241, *[300] * 11], gaps
    assert done["wdt_expired"] == 0


def test_an_out_of_range_interval_is_ignored(tmp_path: Path) -> None:
    run = mpy.run("config", tmp_path, start=1795670000, config={"interval_s": 1})
    gaps = {round(b - a) for a, b in itertools.pairwise(run.one("done")["reads"])}
    assert gaps <= {60, 61}
