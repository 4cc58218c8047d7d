"""Line-protocol encoding: what cannot be carried is refused before it reaches InfluxDB (the round trip
of InfluxData's corpus through the real server is in tests/e2e/test_influx_adapter.py)."""

from __future__ import annotations

import pytest

from core.lineprotocol import LineProtocolError, encode_line, quote_ident, quote_literal


@pytest.mark.parametrize("bad", ["trailing\\", "line\nbreak", "cr\rreturn"])
def test_tag_values_line_protocol_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        encode_line("temperature", {"clinic": bad}, {"celsius": 1.0}, 1)


def test_a_point_needs_a_field_and_finite_numbers() -> None:
    with pytest.raises(LineProtocolError):
        encode_line("temperature", {"clinic": "a"}, {"celsius": None}, 1)
    with pytest.raises(LineProtocolError):
        encode_line("temperature", {"clinic": "a"}, {"celsius": float("nan")}, 1)


def test_empty_tags_are_left_out_and_tags_sorted() -> None:
    line = encode_line("t", {"z": "1", "a": "", "m": None, "b": "x y"}, {"v": 2}, 7)
    assert line == "t,b=x\\ y,z=1 v=2i 7"


def test_influxql_quoting() -> None:
    assert quote_literal("it's") == "'it\\'s'"
    assert quote_ident('a"b') == '"a\\"b"'
