"""The gateway firmware under a real MicroPython speaks protocol v1 (DESIGN §3): what it publishes is
accepted by the server's own parser (``core.protocol``), with the values the probes gave."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.protocol import parse_status, parse_telemetry, parse_topic
from tests.firmware import mpy

CLINIC = "qingshui-thc"
DEVICE = "qingshui-gw1"


def test_telemetry_status_and_will_are_accepted_by_the_server_parser(tmp_path: Path) -> None:
    start = int(time.time()) - 600
    run = mpy.run("protocol", tmp_path, start=start)

    telemetry = run.delivered("/telemetry")
    assert len(telemetry) == 3  # one message per sampling interval
    for msg in telemetry:
        topic = parse_topic(msg["topic"])
        assert (topic.clinic, topic.device) == (CLINIC, DEVICE)
        tm = parse_telemetry(CLINIC, DEVICE, msg["payload"], now=msg["t"])
        by_probe = {r.probe: r for r in tm.temperatures}
        assert by_probe["p1"].celsius == 4.56 and by_probe["p1"].fault is None
        assert by_probe["p2"].celsius == -127.0 and by_probe["p2"].fault == "ds18b20_minus127"
        assert by_probe["p3"].celsius == -18.25
        assert by_probe["p4"].fault == "ds18b20_85"
        assert by_probe["amb"].celsius == 25.0
        assert by_probe["amb2"].fault == by_probe["amb3"].fault == "ds18b20_minus127"  # CRC, no answer
        assert all(abs(r.time - msg["t"]) <= 1 for r in tm.temperatures)  # time of reading, not 1970
        (health,) = tm.health
        assert health.battery_pct == 80
    mains = [parse_telemetry(CLINIC, DEVICE, m["payload"], now=m["t"]).health[0].mains_on for m in telemetry]
    assert mains == [True, False, False]

    status = run.delivered("/status")
    assert [json.loads(m["payload"])["state"] for m in status] == ["online", "offline"]
    assert all(m["retain"] for m in status)
    online = parse_status(status[0]["payload"], now=status[0]["t"])
    assert online.fw == "1.0.0" and online.ts is not None and abs(online.ts - start) <= 1
    assert parse_status(status[1]["payload"], now=status[1]["t"]).fw == "1.0.0"

    (connect,) = run.one("done")["connects"]
    assert connect["user"] == DEVICE  # username = device id
    assert connect["will"][0] == f"cw/v1/{CLINIC}/{DEVICE}/status"
