"""Load generator for the ingest benchmark: protocol-v1 telemetry from many gateways, published over MQTT
by several processes (one Python publisher manages only 7-10k msgs/s).

Each process owns a slice of the devices and its own paho client (QoS 1). It keeps at most ``window``
messages unacknowledged: paho numbers messages with 16-bit ids, so more than 65,535 pending at once would
reuse ids and overwrite messages in paho's own queue. A job ends when the broker has acknowledged every
message. Two modes:

- as fast as the broker acknowledges (``rate`` 0): to queue a backlog for the backlog-drain cases;
- paced (``rate`` > 0, messages/s of this process): to offer a known load to a running collector.

Timestamps are unique per device and probe: a device's ``k``-th message has base time
``base_time - k`` (one message per device per second, going back), so the number of points InfluxDB
must end up with is exactly ``messages x readings``.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

PROBES = 10
WINDOW = 10_000  # unacknowledged QoS 1 messages per publisher (well below paho's 65,535 message ids)
ACK_TIMEOUT_S = 120.0
_VALUES = [f"{4.0 + i / 10:.1f}" for i in range(40)]  # 4.0 ... 7.9 °C: inside the refrigerator range
# records p2..p10 of a 10-reading message, one string per value index (cheap to build a payload from)
_TAILS = [
    "".join(f',{{"n":"p{p}","u":"Cel","v":{4.0 + (i + p) % 40 / 10:.1f}}}' for p in range(2, PROBES + 1))
    for i in range(40)
]


def payload(device: str, bt: int, readings: int, k: int) -> bytes:
    """SenML telemetry of ``device`` at base time ``bt``: probe p1 only, or probes p1..p10."""
    head = f'[{{"bn":"urn:dev:{device}:","bt":{bt},"n":"p1","u":"Cel","v":{_VALUES[k % 40]}}}'
    if readings == 1:
        return (head + "]").encode()
    return (head + _TAILS[k % 40] + "]").encode()


def topic(clinic: str, device: str) -> str:
    return f"cw/v1/{clinic}/{device}/telemetry"


@dataclass(frozen=True)
class PublishJob:
    """What one publisher process sends: ``messages`` messages round-robin over its ``devices``."""

    index: int
    host: str
    port: int
    client_id: str
    devices: tuple[tuple[str, str], ...]  # (clinic, device)
    messages: int
    readings: int  # records per message: 1 (p1) or 10 (p1..p10)
    base_time: int  # base time of each device's first message (epoch seconds)
    rate: float = 0.0  # messages/s of this process; 0: as fast as the broker acknowledges
    start_at: float = 0.0  # wall-clock time to start at, so that all publishers start together
    window: int = WINDOW
    forward: bool = False  # each device's k-th message at base_time + k (as a gateway sends), not - k

    @property
    def readings_total(self) -> int:
        return self.messages * self.readings

    @property
    def oldest_time(self) -> int:
        per_device = -(-self.messages // max(len(self.devices), 1))
        return self.base_time - per_device + 1


@dataclass(frozen=True)
class PublishResult:
    index: int
    sent: int
    acked: int
    started: float  # wall clock (time.time()) of the first publish
    send_s: float  # first publish -> last publish handed to paho
    total_s: float  # first publish -> last PUBACK
    error: str = ""

    @property
    def rate(self) -> float:
        return self.acked / self.total_s if self.total_s > 0 else 0.0


def make_jobs(
    devices: Sequence[tuple[str, str]],
    messages: int,
    readings: int,
    *,
    host: str,
    port: int,
    name: str,
    base_time: int,
    processes: int = 3,
    rate: float = 0.0,
    start_at: float = 0.0,
    forward: bool = False,
) -> list[PublishJob]:
    """Split ``devices`` into ``processes`` contiguous slices and ``messages`` (and the total ``rate``)
    in proportion to the slice sizes."""
    processes = max(1, min(processes, len(devices)))
    bounds = [len(devices) * i // processes for i in range(processes + 1)]
    jobs: list[PublishJob] = []
    assigned = 0
    for i in range(processes):
        devs = tuple(devices[bounds[i] : bounds[i + 1]])
        share = len(devs) / len(devices)
        n = messages - assigned if i == processes - 1 else round(messages * share)
        assigned += n
        jobs.append(
            PublishJob(
                index=i,
                host=host,
                port=port,
                client_id=f"{name}-pub{i}",
                devices=devs,
                messages=n,
                readings=readings,
                base_time=base_time,
                rate=rate * share,
                start_at=start_at,
                forward=forward,
            )
        )
    return jobs


def publish(job: PublishJob, progress: Callable[[int], None] | None = None) -> PublishResult:
    """Run one job in this process: connect, publish every message, wait for every PUBACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=job.client_id, protocol=MQTTProtocolVersion.MQTTv311
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    window = threading.BoundedSemaphore(job.window)
    connected = threading.Event()
    all_acked = threading.Event()
    acked = 0

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if not rc.is_failure:
            connected.set()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked >= job.messages:
            all_acked.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    sent = 0
    started = time.time()
    t0 = t_sent = time.monotonic()

    def result(error: str = "") -> PublishResult:
        end = time.monotonic()
        return PublishResult(job.index, sent, acked, started, t_sent - t0, end - t0, error)

    try:
        client.connect(job.host, job.port, keepalive=60)
    except OSError as exc:
        return result(f"cannot connect to the MQTT broker at {job.host}:{job.port}: {exc}")
    client.loop_start()
    try:
        if not connected.wait(15):
            return result(f"the MQTT broker at {job.host}:{job.port} did not accept the connection")
        if job.messages <= 0:
            all_acked.set()
        topics = [topic(c, d) for c, d in job.devices]
        names = [d for _c, d in job.devices]
        n_dev = len(topics)
        delay = time.time()
        if job.start_at > delay:
            time.sleep(job.start_at - delay)
        started = time.time()
        t0 = time.monotonic()
        interval = 1.0 / job.rate if job.rate > 0 else 0.0
        for j in range(job.messages):
            if interval:
                ahead = t0 + j * interval - time.monotonic()
                if ahead > 0.002:
                    time.sleep(ahead)
            if not window.acquire(timeout=60):
                return result(f"the broker stopped acknowledging after {acked} of {sent} publishes")
            i, k = j % n_dev, j // n_dev
            bt = job.base_time + k if job.forward else job.base_time - k
            info = client.publish(topics[i], payload(names[i], bt, job.readings, k), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return result(f"paho refused a publish: {mqtt.error_string(info.rc)}")
            sent += 1
            if progress is not None and not sent % 1000:
                progress(sent)
        t_sent = time.monotonic()
        if progress is not None:
            progress(sent)
        if not all_acked.wait(ACK_TIMEOUT_S):
            return result(f"the broker acknowledged only {acked} of {job.messages} publishes")
        return result()
    finally:
        client.disconnect()
        client.loop_stop()


def _child(job: PublishJob, counters: SynchronizedArray[int], results: multiprocessing.Queue[Any]) -> None:
    def progress(n: int) -> None:
        counters[job.index] = n

    try:
        res = publish(job, progress)
    except Exception as exc:  # reported to the parent as one line
        res = PublishResult(job.index, 0, 0, time.time(), 0.0, 0.0, f"{type(exc).__name__}: {exc}")
    results.put(res)


class PublishError(RuntimeError):
    pass


def run_publishers(
    jobs: Sequence[PublishJob],
    *,
    progress: Callable[[str], None] | None = None,
    tick: Callable[[], None] | None = None,
    tick_s: float = 0.5,
    progress_s: float = 5.0,
) -> list[PublishResult]:
    """Run each job in its own process; return their results once every one has finished. ``tick`` is
    called about every ``tick_s`` seconds meanwhile (the live run samples the collector with it)."""
    ctx = multiprocessing.get_context("spawn")
    counters = ctx.Array("q", len(jobs), lock=False)
    results: multiprocessing.Queue[Any] = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(job, counters, results), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    done: dict[int, PublishResult] = {}
    total = sum(j.messages for j in jobs)
    next_progress = time.monotonic() + progress_s
    try:
        while len(done) < len(jobs):
            try:
                res = results.get(timeout=tick_s)
                done[res.index] = res
                continue
            except queue.Empty:
                pass
            if tick is not None:
                tick()
            dead = [i for i, p in enumerate(procs) if p.exitcode not in (None, 0) and i not in done]
            if dead:
                raise PublishError(f"publisher process {dead[0]} died (exit {procs[dead[0]].exitcode})")
            if progress is not None and time.monotonic() >= next_progress:
                next_progress += progress_s
                sent = sum(counters[:])
                progress(f"published {sent:,} of {total:,} messages")
    finally:
        for p in procs:
            p.join(5 if len(done) == len(jobs) else 0.1)
            if p.is_alive():
                p.terminate()
                p.join(5)
    failed = [r for r in done.values() if r.error]
    if failed:
        raise PublishError(f"publisher {failed[0].index}: {failed[0].error}")
    return [done[i] for i in range(len(jobs))]
