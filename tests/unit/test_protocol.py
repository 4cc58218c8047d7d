"""Protocol v1 parser: every way a message can be wrong gives its own reason."""

from __future__ import annotations

import json

import pytest

from core.protocol import Limits, ProtocolError, parse_status, parse_telemetry, parse_topic, parse_waste

NOW = 1_795_000_000.0
DEV = "qingshui-gw1"


def pack(*records: dict, bn: str = f"urn:dev:{DEV}:", bt: float = NOW - 60) -> str:
    first = {"bn": bn, "bt": bt, **records[0]}
    return json.dumps([first, *records[1:]])


def parse(payload: str | bytes, limits: Limits = Limits()):
    return parse_telemetry("qingshui-thc", DEV, payload, NOW, limits)


def test_valid_message_gives_readings_health_and_doors():
    tm = parse(
        pack(
            {"n": "p1", "u": "Cel", "v": 4.6, "t": 0},
            {"n": "p2", "u": "Cel", "v": 5.25, "t": 0},
            {"n": "mains", "vb": True},
            {"n": "battery", "u": "%EL", "v": 87},
            {"n": "rssi", "u": "dBm", "v": -71},
            {"n": "p1.door", "vb": True},
        )
    )
    assert [(r.probe, r.time, r.celsius, r.fault) for r in tm.temperatures] == [
        ("p1", NOW - 60, 4.6, None),
        ("p2", NOW - 60, 5.25, None),
    ]
    assert len(tm.health) == 1
    h = tm.health[0]
    assert (h.time, h.mains_on, h.battery_pct, h.rssi) == (NOW - 60, True, 87.0, -71.0)
    assert [(d.probe, d.open) for d in tm.doors] == [("p1", True)]


def test_relative_times_and_buffered_readings_keep_their_own_time():
    tm = parse(
        pack({"n": "p1", "u": "Cel", "v": 4.0, "t": -7200}, {"n": "p1", "u": "Cel", "v": 4.1, "t": -7140})
    )
    assert [r.time for r in tm.temperatures] == [NOW - 60 - 7200, NOW - 60 - 7140]


@pytest.mark.parametrize(
    ("celsius", "fault"),
    [
        (85.0, "ds18b20_85"),
        (-127.0, "ds18b20_minus127"),
        (70.1, "out_of_range"),
        (-60.5, "out_of_range"),
        (70.0, None),
        (-60.0, None),
        (8.0, None),
    ],
)
def test_probe_codes_and_out_of_range_are_flagged_not_rejected(celsius, fault):
    tm = parse(pack({"n": "p1", "u": "Cel", "v": celsius}))
    assert tm.temperatures[0].fault == fault


BAD = [
    # (payload, reason)
    (b"\xff\xfe[]", "bad_json"),
    ('[{"n":', "bad_json"),
    ('{"n":"p1","v":1}', "not_a_pack"),
    ("[]", "empty_pack"),
    (pack({"n": "p1", "u": "Cel", "v": "4.6"}), "not_a_number"),
    ('[{"bn":"urn:dev:qingshui-gw1:","n":"p1","u":"Cel","v":NaN}]', "not_a_number"),
    ('[{"bn":"urn:dev:qingshui-gw1:","n":"p1","u":"Cel","v":Infinity}]', "not_a_number"),
    ('[{"bn":"urn:dev:qingshui-gw1:","n":"p1","u":"Cel","v":4.6E0}]', "bad_number"),
    (pack({"n": "p1", "u": "Cel", "v": True}), "not_a_number"),
    (pack({"n": "p1", "u": "degC", "v": 4.6}), "unknown_unit"),
    (pack({"n": "p1", "v": 4.6}), "unknown_unit"),
    (pack({"n": "battery", "u": "%", "v": 50}), "unknown_unit"),
    (pack({"n": "p1", "u": "Cel", "v": -300}), "impossible_value"),
    (pack({"n": "battery", "u": "%EL", "v": 150}), "impossible_value"),
    (pack({"n": "mains", "v": 1}), "wrong_value_type"),
    (pack({"n": "mains", "vb": "yes"}), "not_a_boolean"),
    (pack({"n": "p1", "u": "Cel"}), "no_value"),
    (pack({"n": "p1", "u": "Cel", "v": 1, "vb": True}), "multiple_values"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6}, bn="urn:dev:other-gw:"), "device_mismatch"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6}, bn="sensor:"), "bad_name"),
    (pack({"n": "p 1", "u": "Cel", "v": 4.6}), "bad_name"),
    (pack({"n": "humidity", "u": "%RH", "v": 40}), "unknown_unit"),
    (pack({"n": "p1:x", "u": "Cel", "v": 4.6}), "unknown_measurement"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6, "t": 3600}), "future_timestamp"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6}, bt=NOW - 500 * 86400), "stale_timestamp"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6, "x_": 1}), "must_understand"),
    (pack({"n": "p1", "u": "Cel", "v": 4.6, "bver": 11}), "bad_version"),
    ("[1, 2]", "bad_record"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD, ids=[f"{i}-{r}" for i, (_, r) in enumerate(BAD)])
def test_invalid_telemetry_has_a_specific_reason(payload, reason):
    with pytest.raises(ProtocolError) as err:
        parse(payload)
    assert err.value.reason == reason
    assert err.value.detail  # a sentence a person can act on


def test_humidity_style_names_without_device_prefix_name_the_expected_prefix():
    with pytest.raises(ProtocolError, match="urn:dev:qingshui-gw1:"):
        parse(json.dumps([{"n": "p1", "u": "Cel", "v": 4.6}]))


def test_record_limit():
    records = [{"n": "p1", "u": "Cel", "v": 4.0, "t": -i} for i in range(501)]
    with pytest.raises(ProtocolError) as err:
        parse(pack(*records))
    assert err.value.reason == "too_many_records"
    assert len(parse(pack(*records[:500])).temperatures) == 500


def test_future_tolerance_is_a_setting():
    payload = pack({"n": "p1", "u": "Cel", "v": 4.6, "t": 400})  # bt = NOW-60 -> 340 s ahead
    assert parse(payload, Limits(future_tolerance_s=600)).temperatures
    with pytest.raises(ProtocolError, match="future_timestamp"):
        parse(payload, Limits(future_tolerance_s=300))


@pytest.mark.parametrize(
    ("topic", "ok"),
    [
        ("cw/v1/qingshui-thc/qingshui-gw1/telemetry", True),
        ("cw/v1/qingshui-thc/qingshui-gw1/waste", True),
        ("cw/v1/Qingshui/qingshui-gw1/telemetry", False),  # upper case
        ("cw/v1/-clinic/gw/telemetry", False),  # leading dash
        ("cw/v1/clinic/gw/telemetry/extra", False),
        ("cw/v1/clinic/" + "g" * 65 + "/telemetry", False),
        ("cw/v1/clinic/gw/humidity", False),
        ("cw/v2/clinic/gw/telemetry", False),
        ("cw/v1/clinic/gw'; DROP/telemetry", False),
    ],
)
def test_topic_ids_follow_the_pattern(topic, ok):
    if ok:
        assert parse_topic(topic).clinic == "qingshui-thc"
    else:
        with pytest.raises(ProtocolError, match="bad_topic"):
            parse_topic(topic)


def waste(**over):
    ev = {
        "event_id": "0b9c6a1e-2c1f-4f0e-9d37-5b0c1c0f0007",
        "bag_id": "QJ-0001-20261122-0007",
        "stage": "generated",
        "category": "infectious",
        "weight_kg": 2.35,
        "ts": NOW - 10,
        "operator": "qingshui-nurse1",
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not None}


def test_waste_event_object_or_array():
    assert parse_waste(json.dumps(waste()), NOW)[0].weight_kg == 2.35
    evs = parse_waste(json.dumps([waste(), waste(event_id="e2", stage="collected")]), NOW)
    assert [e.stage.value for e in evs] == ["generated", "collected"]
    handed = waste(stage="handed_over", manifest_id="M-1", counterparty="transporter-1", vehicle="浙A·D1234")
    (ev,) = parse_waste(json.dumps(handed), NOW)
    assert (ev.manifest_id, ev.vehicle) == ("M-1", "浙A·D1234")
    assert parse_waste(json.dumps(waste()), NOW)[0].vehicle is None  # optional
    recv = waste(
        stage="received", manifest_id="M-1", counterparty="plant-1", refused_kg=0.5, refusal_reason="bag torn"
    )
    assert parse_waste(json.dumps(recv), NOW)[0].refused_kg == 0.5


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (waste(stage="burnt"), "bad_value"),
        (waste(category="general"), "bad_value"),
        (waste(weight_kg="2.35"), "not_a_number"),
        (waste(weight_kg=0), "impossible_value"),
        (waste(weight_kg=500), "impossible_value"),
        (waste(bag_id=None), "missing_field"),
        (waste(bag_id="QJ 0001"), "bad_value"),
        (waste(operator=""), "bad_value"),
        (waste(stage="handed_over"), "missing_field"),  # manifest and counterparty from handed_over on
        (waste(refused_kg=1.0), "bad_value"),  # only on received
        (waste(vehicle="浙A·D1234"), "bad_value"),  # only on handed_over and received
        (waste(ts=NOW + 3600), "future_timestamp"),
        (waste(colour="red"), "unknown_field"),
    ],
)
def test_invalid_waste_events(event, reason):
    with pytest.raises(ProtocolError) as err:
        parse_waste(json.dumps(event), NOW)
    assert err.value.reason == reason


def test_status():
    st = parse_status(json.dumps({"state": "online", "fw": "1.0.0", "ts": NOW - 5}), NOW)
    assert (st.state, st.fw, st.ts) == ("online", "1.0.0", NOW - 5)
    assert parse_status('{"state":"offline"}', NOW).ts is None
    with pytest.raises(ProtocolError, match="bad_value"):
        parse_status('{"state":"sleeping"}', NOW)


def test_status_with_what_the_gateway_buffered_and_dropped():
    doc = {"state": "online", "fw": "1.0.0", "ts": NOW - 5, "buffered": 5760, "dropped": 12}
    st = parse_status(json.dumps(doc), NOW)
    assert (st.buffered, st.dropped) == (5760, 12)
    plain = parse_status('{"state":"online"}', NOW)
    assert (plain.buffered, plain.dropped) == (None, None)
    for bad in ('"buffered":-1', '"dropped":1.5', '"buffered":"many"', '"dropped":true'):
        with pytest.raises(ProtocolError) as err:
            parse_status('{"state":"online",' + bad + "}", NOW)
        assert err.value.reason in ("impossible_value", "not_a_number"), bad


def test_a_status_point_keeps_the_buffer_numbers():
    from collector.points import status_line

    doc = {"state": "online", "fw": "1.0.0", "ts": NOW - 60, "buffered": 40, "dropped": 3}
    line = status_line(parse_status(json.dumps(doc), NOW), "qingshui-thc", "qingshui-gw1", None, NOW)
    assert line == (
        "device_status,clinic=qingshui-thc,device=qingshui-gw1 "
        f'state="online",fw="1.0.0",buffered=40i,dropped=3i {round((NOW - 60) * 1000) * 1_000_000}'
    )
