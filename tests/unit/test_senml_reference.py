"""SenML decoding against RFC 8428's own examples and published validity cases (shared/reference)."""

from __future__ import annotations

import json

import pytest

from core import senml
from tests.reference import REFERENCE

CASES = json.loads((REFERENCE / "senml" / "cases.json").read_text())["cases"]
RFC = REFERENCE / "senml" / "rfc8428"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_validity_agrees_with_reference(case):
    try:
        senml.resolve(senml.loads(case["payload"]), now=1.7e9)
        valid = True
    except senml.SenMLError:
        valid = False
    assert valid == case["valid"], case["rule"]


RESOLVED = [*sorted(RFC.glob("*.resolved-by-spec-tool.json")), RFC / "5.1.4-resolved-data.json"]


@pytest.mark.parametrize("resolved_file", RESOLVED, ids=[p.name for p in RESOLVED])
def test_resolution_matches_the_rfc(resolved_file):
    source = resolved_file.name.replace(".resolved-by-spec-tool", "")
    if source == "5.1.4-resolved-data.json":
        source = "5.1.3-multiple-measurements.json"
    records = senml.resolve(senml.loads((RFC / source).read_text()), now=0)
    expected = json.loads(resolved_file.read_text())
    assert len(records) == len(expected)
    for got, exp in zip(records, expected, strict=True):
        assert got.name == exp["n"]
        assert got.time == pytest.approx(exp["t"])
        assert got.unit == exp.get("u")
        if "v" in exp:
            assert got.value == pytest.approx(exp["v"])
        if "vb" in exp:
            assert got.bool_value == exp["vb"]
        if "vs" in exp:
            assert got.string_value == exp["vs"]


def test_actuator_record_without_value_is_rejected_deliberately():
    # RFC 8428 §5.1.7's first record carries only "bn"; §4.2 requires a value. We follow §4.2.
    with pytest.raises(senml.SenMLError, match="no_value"):
        senml.resolve(senml.loads((RFC / "5.1.7a-setting-an-actuator.json").read_text()), now=0)
