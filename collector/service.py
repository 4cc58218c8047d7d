"""The collector service: MQTT (QoS 1, persistent session) -> validation -> InfluxDB, lossless.

Threads:
- paho's network thread runs ``on_message``: validates, converts and batches (``Batcher``);
- the flusher hands a batch to the writer when it is full or ~1 s old;
- the writer makes a batch durable — lines written to InfluxDB (retrying transient failures) or,
  while InfluxDB is unavailable, to the on-disk spool; dead letters and notices to SQL — and only
  then acknowledges its messages to the broker;
- the drainer sends spooled segments to InfluxDB with backoff.

Memory is bounded: the broker sends at most ``collector_receive_maximum`` unacknowledged messages
(MQTT 5 Receive Maximum) and at most two full batches wait for the writer; when the writer falls
behind, ``on_message`` blocks and TCP pushes back on the broker.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from collector.deadletters import store_dead_letters
from collector.ingest import Batch, Batcher, Ingestor
from collector.notices import record_notices
from collector.points import collector_stats_line
from collector.spool import Spool
from core.clock import Clock, SystemClock
from core.db import init_db, make_engine
from core.influx import InfluxClient, InfluxError
from core.mqtt import connect_persistent, persistent_client
from core.protocol import Limits
from core.registry_store import device_tags, ensure_registry
from core.settings import Settings
from core.waste_store import store_waste_events

log = logging.getLogger("chainwatch.collector")

SUBSCRIPTIONS = ("cw/v1/+/+/telemetry", "cw/v1/+/+/waste", "cw/v1/+/+/status")


@dataclass
class Stats:
    received: int = 0  # messages taken from the broker (acknowledged once their batch is durable)
    messages: int = 0  # messages whose batch is durable and acknowledged
    lines_written: int = 0
    readings_written: int = 0
    dead_letters: int = 0
    batches: int = 0
    batches_spooled: int = 0
    segments_drained: int = 0
    write_retries: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Collector:
    def __init__(self, settings: Settings, clock: Clock | None = None, client_suffix: str = "") -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = make_engine(settings.sql_url)
        init_db(self.engine)
        ensure_registry(self.engine, settings.registry_file)
        self.influx = InfluxClient(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password,
            timeout_s=settings.collector_write_timeout_s,
            create_missing_database=True,
        )
        self.spool = Spool(settings.spool_dir)
        limits = Limits(settings.max_records_per_message, settings.future_tolerance_s)
        self.ingestor = Ingestor(device_tags(self.engine), limits, self.clock)
        self.batcher = Batcher(
            self.ingestor, settings.collector_batch_lines, settings.collector_batch_seconds
        )
        self.stats = Stats()
        self._to_write: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._influx_ok = threading.Event()
        self._influx_ok.set()
        self._accepting = True
        self._threads: list[threading.Thread] = []
        self.client_id = settings.collector_client_id + client_suffix
        # collector.json, or collector-2.json for a second collector sharing the data directory
        self.stats_path = settings.data_dir / f"collector{client_suffix}.json"
        self.client = self._make_client()
        self.connected = threading.Event()

    # ------------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        c = persistent_client(self.client_id)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the connection: %s", rc)
            return
        group = self.settings.collector_shared_group
        topics = [(f"$share/{group}/{t}" if group else t, 1) for t in SUBSCRIPTIONS]
        client.subscribe(topics)
        log.info("connected to %s as %s", self.settings.mqtt_url, self.client_id)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, codes: Any, _p: object = None) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            log.error("the MQTT broker refused the subscriptions: %s", failed)
            return
        # only now does the broker queue messages for us: a publisher started before this would lose
        # its first messages on a fresh session (the supervisor waits for this)
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("lost the MQTT broker (%s); reconnecting", rc)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting:  # shutting down: not acknowledged, the broker redelivers it later
            return
        self.stats.received += 1
        batch = self.batcher.add((msg.mid, msg.qos), msg.topic, msg.payload)
        if batch is not None:
            self._to_write.put(batch)

    # ------------------------------------------------------------------ durability

    def _flusher(self) -> None:
        while not self._stop.is_set():
            time.sleep(0.05)
            batch = self.batcher.take_due()
            if batch is not None:
                self._to_write.put(batch)

    def _writer(self) -> None:
        while True:
            batch = self._to_write.get()
            if batch is None:
                return
            self._make_durable(batch)
            for mid, qos in batch.acks:  # type: ignore[misc]
                if qos:
                    self.client.ack(mid, qos)

    def _make_durable(self, batch: Batch) -> None:
        if batch.waste:  # SQL first: it knows which scans conflict with one already kept
            conflicts = store_waste_events(self.engine, batch.waste, self.clock.now()).conflicts
            batch.lines.extend(line for i, line in enumerate(batch.waste_lines) if i not in conflicts)
            batch.waste_lines.clear()
        body = batch.body()
        if body:
            written = False
            if self._influx_ok.is_set() and not len(self.spool):
                try:
                    self.influx.write_retrying(
                        body, attempts=self.settings.collector_write_attempts, precision="ns"
                    )
                    written = True
                except InfluxError as exc:
                    if not exc.retryable:
                        self._reject_batch(batch, exc)
                        written = True
                    else:
                        log.warning("InfluxDB unavailable, spooling to disk: %s", exc)
                        self._influx_ok.clear()
            if not written:
                self.spool.put(body)
                self.stats.batches_spooled += 1
            self.stats.lines_written += len(batch.lines)
            self.stats.readings_written += batch.readings
        store_dead_letters(self.engine, batch.dead)
        record_notices(self.engine, batch.notices, self.clock.now())
        self.stats.messages += batch.messages
        self.stats.dead_letters += len(batch.dead)
        self.stats.batches += 1

    def _reject_batch(self, batch: Batch, exc: InfluxError) -> None:
        """InfluxDB refused the body (4xx): find the lines it refuses and keep them as dead letters,
        write the rest. Our encoder should never produce such lines; this keeps them if it does."""
        from collector.deadletters import DeadLetter

        log.error("InfluxDB refused a batch (%s); writing it line by line", exc)
        now = self.clock.now()
        for line in batch.lines:
            try:
                self.influx.write_retrying(
                    line, attempts=self.settings.collector_write_attempts, precision="ns"
                )
            except InfluxError as line_exc:
                if line_exc.retryable:
                    self.spool.put(line.encode() + b"\n")
                else:
                    batch.dead.append(
                        DeadLetter("influxdb", line.encode(), "influx_rejected", str(line_exc), now)
                    )

    def _drainer(self) -> None:
        backoff = 0.5
        while not self._stop.is_set() or len(self.spool):
            segments = self.spool.segments()
            if not segments:
                self._influx_ok.set()
                backoff = 0.5
                self._stop.wait(0.2)
                continue
            seg = segments[0]
            try:
                self.influx.write(self.spool.read(seg), precision="ns")
                self.spool.remove(seg)
                self.stats.segments_drained += 1
                backoff = 0.5
            except InfluxError as exc:
                if not exc.retryable:
                    log.error("InfluxDB refuses spooled segment %s (%s); kept for inspection", seg.name, exc)
                    seg.rename(seg.with_suffix(".rejected"))
                    continue
                if self._stop.is_set():
                    return  # shutting down with InfluxDB away: the spool waits on disk for next start
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)

    def _registry_refresher(self) -> None:
        while not self._stop.wait(30.0):
            try:
                self.ingestor.tags = device_tags(self.engine)
            except Exception as exc:  # a registry being reloaded: keep the old lookup
                log.warning("registry refresh failed: %s", exc)

    def _stats_writer(self) -> None:
        path = self.stats_path
        last = 0.0
        every = self.settings.collector_stats_every_s
        last_point, before = time.monotonic(), self.stats.as_dict()
        while not self._stop.wait(min(1.0, every)):
            data = {
                **self.stats.as_dict(),
                "spool_segments": len(self.spool),
                "connected": self.connected.is_set(),
            }
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)
            if time.monotonic() - last_point >= every:
                last_point = time.monotonic()
                line = collector_stats_line(
                    self.client_id, before, data, data["spool_segments"], self.clock.now()
                )
                try:  # the system's own health: best effort, never in the way of the readings
                    self.influx.write(line, precision="ns")
                    before = data
                except InfluxError as exc:
                    log.debug("collector_stats not written: %s", exc)
            if time.monotonic() - last > 30:
                last = time.monotonic()
                log.info(
                    "messages %d, readings %d, dead letters %d, spool %d segment(s)",
                    self.stats.messages,
                    self.stats.readings_written,
                    self.stats.dead_letters,
                    data["spool_segments"],
                )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        s = self.settings
        try:  # a database that is not there yet is created (idempotent); a server that is down is not fatal
            self.influx.create_database()
        except InfluxError as exc:
            log.warning("could not create InfluxDB database %s yet: %s", s.influx_db, exc)
        for target in (
            self._writer,
            self._flusher,
            self._drainer,
            self._registry_refresher,
            self._stats_writer,
        ):
            t = threading.Thread(target=target, name=target.__name__.strip("_"), daemon=True)
            t.start()
            self._threads.append(t)
        connect_persistent(self.client, s, s.collector_receive_maximum)

    def stop(self, timeout: float = 30.0) -> None:
        """Flush what was received, acknowledge it, disconnect. What arrives after this is left to the
        broker (unacknowledged) and redelivered at the next start."""
        self._accepting = False
        batch = self.batcher.take_due(force=True)
        if batch is not None:
            self._to_write.put(batch)
        self._to_write.put(None)
        writer = self._threads[0]
        writer.join(timeout)
        self._stop.set()
        for t in self._threads[1:]:
            t.join(5.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.influx.close()
        self.engine.dispose()


def run_collector(settings: Settings, stop: threading.Event | None = None) -> int:
    """``chainwatch collector``: run until SIGTERM/SIGINT (or ``stop``), then flush and exit."""
    stop = stop or threading.Event()
    collector = Collector(settings)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    collector.start()
    if not collector.connected.wait(15):
        log.warning("not connected to the MQTT broker at %s yet; still trying", settings.mqtt_url)
    stop.wait()
    log.info("stopping: flushing and acknowledging what was received")
    collector.stop()
    return 0
