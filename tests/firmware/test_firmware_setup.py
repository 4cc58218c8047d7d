"""Without node or its MicroPython package the firmware tests fail (never skip), saying what to run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.firmware import mpy


def test_a_missing_micropython_package_fails_with_one_line_saying_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(mpy, "PACKAGE", tmp_path / "node_modules" / "missing.mjs")
    with pytest.raises(pytest.fail.Exception) as failed:
        mpy.run("protocol", tmp_path, start=0)
    message = str(failed.value)
    assert "\n" not in message and "run `make setup`" in message


def test_missing_node_fails_with_one_line_saying_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        mpy.run("protocol", tmp_path, start=0)
    message = str(failed.value)
    assert "\n" not in message and "node is not installed" in message and "make setup" in message
