"""Runs a scenario program of ``tests/firmware/scenarios/`` under the real MicroPython (WebAssembly, by
node: ``run_mpy.mjs``) and returns what it reported. Missing node or the npm package is a failure with
one line saying what to do, never a skip: these tests are the firmware's only check."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / "run_mpy.mjs"
PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
SETUP_HINT = "run `make setup` (it installs node's MicroPython package with `npm ci`)"


@dataclass
class Run:
    events: list[dict[str, Any]]
    log: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert len(found) == 1, f"expected one {kind!r} event, got {len(found)}"
        return found[0]

    def delivered(self, suffix: str) -> list[dict[str, Any]]:
        return [e for e in self.of("delivered") if e["topic"].endswith(suffix)]


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.fail(f"node is not installed: {SETUP_HINT}", pytrace=False)
    if not PACKAGE.exists():
        pytest.fail(f"@micropython/micropython-webassembly-pyscript is missing: {SETUP_HINT}", pytrace=False)
    return exe


def run(scenario: str, tmp_path: Path, timeout: float = 120, **params: Any) -> Run:
    """Run ``scenarios/{scenario}.py`` with ``params`` (its /params.json); fail with its stderr."""
    exe = node()
    pfile = tmp_path / f"{scenario}.params.json"
    pfile.write_text(json.dumps(params))
    proc = subprocess.run(
        [exe, str(RUNNER), str(HERE / "scenarios" / f"{scenario}.py"), str(pfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"MicroPython scenario {scenario} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    events = []
    log = []
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            events.append(json.loads(line[2:]))
        else:
            log.append(line)
    return Run(events, log)
