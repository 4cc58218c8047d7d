"""The InfluxDB adapter against the real server: InfluxData's line-protocol corpus round-trips through
our encoder, invalid lines are refused with a non-retryable error, and hostile values in InfluxQL stay
values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.influx import InfluxClient, InfluxError
from core.lineprotocol import encode_line, quote_ident, quote_literal
from tests.e2e.conftest import Env
from tests.reference import REFERENCE

pytestmark = pytest.mark.e2e

CASES = json.loads((REFERENCE / "lineprotocol" / "cases.json").read_text())["cases"]
VALID = [c for c in CASES if c["valid"]]
INVALID = [c for c in CASES if not c["valid"]]


def _typed(value: dict[str, Any]) -> Any:
    ((kind, v),) = value.items()
    return float(v) if kind == "float" else v


@pytest.mark.parametrize("case", VALID, ids=[c["corpus_key"][:8] for c in VALID])
def test_corpus_point_round_trips_through_influxdb(env: Env, case: dict[str, Any]) -> None:
    """Encode the corpus' expected point with our encoder, write it, read it back: same measurement,
    tags, fields and time. InfluxDB stores what the reference decoder reads from the corpus input."""
    (point,) = case["expected_points"]
    tags = {t["key"]: t["value"] for t in point["tags"]}
    fields = {f["key"]: _typed(f["value"]) for f in point["fields"]}
    line = encode_line(point["name"], tags, fields, point["time"])
    with env.influx() as client:
        client.write(line, precision="ns")
        series = client.query(f"SELECT * FROM {quote_ident(point['name'])}", epoch="ns")
    assert len(series) == 1, series
    (row,) = series[0]["values"]
    got = dict(zip(series[0]["columns"], row, strict=True))
    assert got.pop("time") == point["time"]
    got = {k: v for k, v in got.items() if v is not None}
    assert got == {**tags, **fields}


@pytest.mark.parametrize("case", INVALID, ids=[c["corpus_key"][:8] for c in INVALID])
def test_invalid_corpus_line_is_refused_and_not_retried(env: Env, case: dict[str, Any]) -> None:
    with env.influx() as client, pytest.raises(InfluxError) as err:
        client.write(case["input"], precision="ns")
    assert not err.value.retryable, "a bad line is not worth retrying: it must go to the dead letters"
    assert err.value.status == 400


HOSTILE = [
    "x' OR 1=1 --",
    'quo"te',
    "back\\slash",
    "semi; DROP DATABASE t_x",
    "/regex.*/",
    "空格 和,逗号=等号",
    "$param",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_values_in_influxql(env: Env, value: str) -> None:
    lines = [
        encode_line("temperature", {"clinic": value, "probe": "p1"}, {"celsius": 4.0}, 1_000),
        encode_line("temperature", {"clinic": "other", "probe": "p1"}, {"celsius": 9.0}, 2_000),
    ]
    with env.influx() as client:
        client.write("\n".join(lines), precision="ms")
        bound = client.query(
            "SELECT celsius FROM temperature WHERE clinic = $clinic", {"clinic": value}, epoch="ms"
        )
        quoted = client.query(
            f"SELECT celsius FROM temperature WHERE clinic = {quote_literal(value)}", epoch="ms"
        )
        tags = client.query(f"SHOW TAG VALUES FROM temperature WITH KEY = {quote_ident('clinic')}")
        databases = InfluxClient(env.settings.influx_url, "_internal").query("SHOW DATABASES")
    assert bound[0]["values"] == [[1_000, 4.0]]
    assert quoted[0]["values"] == [[1_000, 4.0]]
    assert sorted(v[1] for v in tags[0]["values"]) == sorted([value, "other"])
    assert [env.settings.influx_db] in databases[0]["values"]


def test_hostile_measurement_and_field_names_are_quoted(env: Env) -> None:
    name = 'm"ea;s urement'
    field = 'fi"eld, x'
    with env.influx() as client:
        client.write(encode_line(name, {}, {field: 1.5}, 5), precision="ms")
        series = client.query(f"SELECT {quote_ident(field)} FROM {quote_ident(name)}", epoch="ms")
    assert series[0]["name"] == name
    assert series[0]["values"] == [[5, 1.5]]
