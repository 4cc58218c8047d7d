"""Where simulated messages go: a thin paho-mqtt adapter, or an in-memory sink for tests.

``MqttPublisher`` opens one MQTT connection per simulated device, as real gateways do: client id
``sim-{device}``, username = the device id, a retained last will ``{"state":"offline",...}`` on
``cw/v1/{clinic}/{device}/status`` and, on every (re)connect, a retained ``online`` status. Telemetry
goes out with QoS 1; at most ``max_inflight`` messages may wait for their PUBACK at once (``publish``
blocks beyond that), and ``flush`` waits until the broker has acknowledged every message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.clock import Clock, SystemClock
from simulators.gateway import status_payload, status_topic

log = logging.getLogger(__name__)

FIRMWARE = "sim-1.0.0"


class PublishError(RuntimeError):
    """The broker cannot be reached or does not acknowledge; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class DeviceRef:
    clinic: str
    device: str


class Sink(Protocol):
    def connect(self, devices: Sequence[DeviceRef]) -> None: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...

    def flush(self, timeout: float = 60.0) -> None: ...

    def close(self) -> None: ...


def _device_of(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != ["cw", "v1"]:
        raise ValueError(f"topic {topic!r} is not cw/v1/{{clinic}}/{{device}}/{{kind}}")
    return parts[3]


# ------------------------------------------------------------------ in memory


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    payload: bytes
    retain: bool
    at: float  # the sink's clock when published (0.0 without a clock)


@dataclass
class MemorySink:
    """Records what would be published; the same interface as ``MqttPublisher``."""

    clock: Clock | None = None
    messages: list[Published] = field(default_factory=list)
    connected: list[DeviceRef] = field(default_factory=list)
    closed: bool = False

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else 0.0

    def connect(self, devices: Sequence[DeviceRef]) -> None:
        for d in devices:
            self.connected.append(d)
            self.publish(status_topic(d.clinic, d.device), status_payload("online", self._now()), retain=True)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        _device_of(topic)
        self.messages.append(Published(topic, payload, retain, self._now()))

    def flush(self, timeout: float = 60.0) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def telemetry(self) -> list[Published]:
        return [m for m in self.messages if m.topic.endswith("/telemetry")]


# ------------------------------------------------------------------ MQTT


class MqttPublisher:
    """One paho-mqtt 2.1 client per device; QoS 1 with a cap on unacknowledged messages."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_inflight: int = 200,
        keepalive: int = 60,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
        password: str | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_inflight = max_inflight
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.clock: Clock = clock or SystemClock()
        self.password = password
        self.passwords = dict(passwords or {})  # device id -> its own broker password
        self._clients: dict[str, Any] = {}
        self._refs: dict[str, DeviceRef] = {}
        self._cond = threading.Condition()
        self._pending = 0  # published with QoS 1, PUBACK not yet received
        self._acked = 0
        self._connected: set[str] = set()
        self._refused: dict[str, str] = {}

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def acknowledged(self) -> int:
        return self._acked

    def connect(self, devices: Sequence[DeviceRef]) -> None:
        import paho.mqtt.client as mqtt

        for ref in devices:
            client = mqtt.Client(
                callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                client_id=f"sim-{ref.device}",
                clean_session=True,
                userdata=ref,
            )
            client.username_pw_set(ref.device, self.passwords.get(ref.device, self.password))
            client.will_set(
                status_topic(ref.clinic, ref.device),
                status_payload("offline", self.clock.now(), FIRMWARE),
                qos=1,
                retain=True,
            )
            client.max_inflight_messages_set(self.max_inflight)
            client.connect_timeout = self.connect_timeout
            client.reconnect_delay_set(1, 30)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_publish = self._on_publish
            try:
                client.connect(self.host, self.port, keepalive=self.keepalive)
            except OSError as exc:
                self.close()
                raise PublishError(
                    f"cannot reach the MQTT broker at {self.where} ({exc.strerror or exc}) — start it with "
                    "`chainwatch services up` or set CHAINWATCH_MQTT_URL"
                ) from None
            client.loop_start()
            self._clients[ref.device] = client
            self._refs[ref.device] = ref
        deadline = time.monotonic() + self.connect_timeout
        with self._cond:
            while len(self._connected) < len(devices) and not self._refused:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            refused = dict(self._refused)
            missing = [d.device for d in devices if d.device not in self._connected]
        if refused:
            self.close()
            device, reason = next(iter(refused.items()))
            raise PublishError(
                f"the MQTT broker at {self.where} refused device {device}: {reason} — check its ACL and "
                "password settings in deploy/"
            )
        if missing:
            self.close()
            raise PublishError(
                f"the MQTT broker at {self.where} did not accept {len(missing)} connection(s) within "
                f"{self.connect_timeout:.0f} s — is it a running MQTT broker? (`chainwatch services status`)"
            )

    def _on_connect(self, client: Any, ref: DeviceRef, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            with self._cond:
                self._refused[ref.device] = str(reason_code)
                self._cond.notify_all()
            client.disconnect()
            return
        self._publish_raw(
            client, status_topic(ref.clinic, ref.device), status_payload("online", self.clock.now()), True
        )
        with self._cond:
            self._connected.add(ref.device)
            self._cond.notify_all()

    def _on_disconnect(
        self, client: Any, ref: DeviceRef, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._cond:
            self._connected.discard(ref.device)
        if reason_code.is_failure:
            log.warning("device %s lost its MQTT connection (%s); reconnecting", ref.device, reason_code)

    def _on_publish(self, client: Any, ref: DeviceRef, mid: int, reason_code: Any, properties: Any) -> None:
        with self._cond:
            self._pending -= 1
            self._acked += 1
            self._cond.notify_all()

    def _publish_raw(self, client: Any, topic: str, payload: bytes, retain: bool) -> None:
        import paho.mqtt.client as mqtt

        with self._cond:
            self._pending += 1
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued, sent later
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            raise PublishError(f"publishing to {topic} failed: {mqtt.error_string(info.rc)}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        device = _device_of(topic)
        client = self._clients.get(device)
        if client is None:
            raise ValueError(f"device {device} is not connected through this publisher")
        with self._cond:
            while self._pending >= self.max_inflight:
                if not self._cond.wait(timeout=60.0):
                    raise PublishError(
                        f"the MQTT broker at {self.where} has not acknowledged {self._pending} messages "
                        "for 60 s — is it overloaded or gone?"
                    )
        self._publish_raw(client, topic, payload, retain)

    def flush(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PublishError(
                        f"{self._pending} message(s) were not acknowledged by the MQTT broker at "
                        f"{self.where} within {timeout:.0f} s"
                    )
                self._cond.wait(left)

    def close(self, *, offline: bool = True) -> None:
        """Say offline (retained) and disconnect; a clean disconnect does not fire the last will."""
        if offline:
            for device, client in self._clients.items():
                if device in self._connected:
                    ref = self._refs[device]
                    self._publish_raw(
                        client,
                        status_topic(ref.clinic, ref.device),
                        status_payload("offline", self.clock.now()),
                        True,
                    )
            try:
                self.flush(timeout=5.0)
            except PublishError as exc:
                log.warning("%s", exc)
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
        self._connected.clear()
