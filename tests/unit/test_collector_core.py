"""The collector's pure core without servers: message -> lines / dead letters / notices, batching, spool.
The same behaviour against real Mosquitto and InfluxDB is in tests/e2e/test_ingest.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from collector.ingest import Batch, Batcher, Ingestor
from collector.spool import Spool
from core.clock import ManualClock
from core.protocol import Limits
from core.registry_store import device_tags, ensure_registry

NOW = 1_795_000_000.0
TOPIC = "cw/v1/qingshui-thc/qingshui-gw1/telemetry"


@pytest.fixture(scope="module")
def tags() -> dict:
    engine = create_engine("sqlite://")
    ensure_registry(engine)  # the demo district
    return device_tags(engine)


@pytest.fixture
def ingestor(tags: dict) -> Ingestor:
    return Ingestor(tags, Limits(), ManualClock(NOW))


def senml(device: str, *records: dict, bt: float = NOW - 60) -> bytes:
    return json.dumps([{"bn": f"urn:dev:{device}:", "bt": bt, **records[0]}, *records[1:]]).encode()


def test_reading_gets_registry_tags_and_reading_time(ingestor: Ingestor) -> None:
    batch = Batch()
    ingestor.add(TOPIC, senml("qingshui-gw1", {"n": "p1", "u": "Cel", "v": 4.6}), batch)
    assert batch.dead == []
    (line,) = batch.lines
    assert line == (
        "temperature,clinic=qingshui-thc,device=qingshui-gw1,district=demo-district,"
        f"equipment=qingshui-fridge1,probe=p1,township=qingshui celsius=4.6 {int((NOW - 60) * 1e9)}"
    )


def test_redelivered_message_gives_identical_lines(ingestor: Ingestor) -> None:
    payload = senml("qingshui-gw1", {"n": "p1", "u": "Cel", "v": 4.6}, {"n": "mains", "vb": True})
    first, second = Batch(), Batch()
    ingestor.add(TOPIC, payload, first)
    ingestor.clock.advance(3600)  # type: ignore[attr-defined]
    ingestor.add(TOPIC, payload, second)
    assert first.lines == second.lines  # same series and time: InfluxDB keeps one point


def test_ds18b20_power_on_code_is_a_probe_fault_not_a_temperature(ingestor: Ingestor) -> None:
    batch = Batch()
    ingestor.add(TOPIC, senml("qingshui-gw1", {"n": "p2", "u": "Cel", "v": 85.0}), batch)
    (line,) = batch.lines
    assert line.startswith("probe_fault,") and 'code="ds18b20_85"' in line and "raw=85.0" in line


def test_invalid_message_becomes_a_dead_letter_and_is_still_acknowledged(ingestor: Ingestor) -> None:
    batcher = Batcher(ingestor, max_lines=100, max_age_s=1.0)
    payload = senml("qingshui-gw1", {"n": "p1", "u": "Far", "v": 40})
    assert batcher.add("mid-1", TOPIC, payload) is None
    batch = batcher.take_due(force=True)
    assert batch is not None and batch.lines == [] and batch.acks == ["mid-1"]
    (dead,) = batch.dead
    assert (dead.topic, dead.payload, dead.reason) == (TOPIC, payload, "unknown_unit")


def test_unregistered_device_is_stored_without_equipment_and_noticed(ingestor: Ingestor) -> None:
    batch = Batch()
    ingestor.add(
        "cw/v1/qingshui-thc/new-gw/telemetry", senml("new-gw", {"n": "p1", "u": "Cel", "v": 5}), batch
    )
    (line,) = batch.lines
    assert line.startswith("temperature,clinic=qingshui-thc,device=new-gw,probe=p1 ")
    assert list(batch.notices) == [("qingshui-thc", "new-gw", "unregistered_device")]


def test_batches_close_at_the_line_limit_without_splitting_a_message(ingestor: Ingestor) -> None:
    batcher = Batcher(ingestor, max_lines=5, max_age_s=60.0)
    three = senml("qingshui-gw1", *({"n": p, "u": "Cel", "v": 5.0} for p in ("p1", "p2", "p3")))
    assert batcher.add(1, TOPIC, three) is None
    full = batcher.add(2, TOPIC, three)  # 6 lines >= 5: this batch goes, whole
    assert full is not None and len(full.lines) == 6 and full.acks == [1, 2]
    assert batcher.take_due(force=True) is None  # nothing left behind


def test_batches_close_after_max_age(ingestor: Ingestor) -> None:
    t = [100.0]
    batcher = Batcher(ingestor, max_lines=5000, max_age_s=1.0, monotonic=lambda: t[0])
    batcher.add(1, TOPIC, senml("qingshui-gw1", {"n": "p1", "u": "Cel", "v": 5.0}))
    t[0] += 0.5
    assert batcher.take_due() is None
    t[0] += 0.6
    due = batcher.take_due()
    assert due is not None and due.acks == [1]


def test_spool_keeps_batches_in_order_and_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a = spool.put(b"a 1\n")
    b = spool.put(b"b 2\n")
    (tmp_path / "000000000099.tmp").write_bytes(b"half a put")  # a crash before the rename
    again = Spool(tmp_path)
    assert again.segments() == [a, b]
    assert [again.read(p) for p in again.segments()] == [b"a 1\n", b"b 2\n"]
    assert not list(tmp_path.glob("*.tmp"))
    c = again.put(b"c 3\n")
    assert c.name > b.name  # numbering continues after the restart
    again.remove(a)
    assert len(again) == 2


def test_the_collectors_own_numbers_are_counts_since_the_previous_point() -> None:
    from collector.points import collector_stats_line

    before = {"messages": 10, "readings_written": 30, "dead_letters": 1}
    after = {"messages": 25, "readings_written": 75, "dead_letters": 3, "batches": 9}
    line = collector_stats_line("chainwatch-collector", before, after, 2, 1_795_633_920.5)
    assert line == (
        "collector_stats,collector=chainwatch-collector "
        "messages=15i,readings=45i,dead_letters=2i,spool_segments=2i 1795633920500000000"
    )
    # after a restart the counters start again from zero: a count, never a negative rate
    assert "messages=4i" in collector_stats_line("c", {}, {"messages": 4}, 0, 0.0)
