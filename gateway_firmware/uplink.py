"""MQTT uplink over ``umqtt.simple`` (protocol v1, DESIGN §3) for the gateway loop: connect with
username = device id and a retained last will ``offline`` on the status topic, announce ``online`` with
the firmware version, subscribe to the device's config and the clinic's alerts, publish with QoS 1
(``publish`` returns only after the broker's PUBACK), reconnect with exponential backoff (1 s … 5 min).
"""

import json

from gateway_firmware import FW_VERSION

BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 300000


def status_payload(state, ts=None, dropped=0, buffered=None):
    """The status document (DESIGN §3, docs/protocol.md). ``buffered``: samples waiting in the buffer
    as the gateway comes online (what it is about to send); ``dropped`` (samples the full buffer had
    to drop, cumulative) only in the message after the count changed."""
    doc = {"state": state, "fw": FW_VERSION}
    if ts is not None:
        doc["ts"] = ts
    if buffered is not None:
        doc["buffered"] = buffered
    if dropped:
        doc["dropped"] = dropped
    return json.dumps(doc)


class Uplink:
    def __init__(self, mqtt_client_class, cfg, on_message):
        self.cls = mqtt_client_class
        self.cfg = cfg
        self.on_message = on_message
        base = "cw/v1/%s/%s/" % (cfg["clinic"], cfg["device"])
        self.telemetry_topic = base + "telemetry"
        self.status_topic = base + "status"
        self.config_topic = base + "config"
        self.alerts_topic = "cw/v1/%s/alerts" % cfg["clinic"]
        self.client = None
        self.next_try_ms = 0
        self.backoff_ms = BACKOFF_MIN_MS
        self.last_io_ms = 0
        self.failures = 0

    def connected(self):
        return self.client is not None

    def _cb(self, topic, msg):
        self.on_message(topic.decode() if isinstance(topic, bytes) else topic, msg)

    def connect(self, now_ms, ts, dropped, buffered=None):
        """Try to connect when the backoff allows; True when connected."""
        if self.client is not None:
            return True
        if now_ms < self.next_try_ms:
            return False
        cfg = self.cfg
        c = self.cls(
            cfg["device"],
            cfg["mqtt_host"],
            port=cfg["mqtt_port"],
            user=cfg["device"],
            password=cfg["mqtt_password"],
            keepalive=cfg["mqtt_keepalive_s"],
        )
        c.set_callback(self._cb)
        c.set_last_will(self.status_topic, status_payload("offline"), retain=True, qos=1)
        try:
            c.connect()
            c.publish(self.status_topic, status_payload("online", ts, dropped, buffered), retain=True, qos=1)
            c.subscribe(self.config_topic, qos=1)
            c.subscribe(self.alerts_topic, qos=1)
        except OSError:
            self._failed(now_ms, c)
            return False
        self.client = c
        self.backoff_ms = BACKOFF_MIN_MS
        self.last_io_ms = now_ms
        return True

    def _failed(self, now_ms, c=None):
        c = c or self.client
        self.client = None
        self.failures += 1
        if c is not None:
            try:
                c.sock.close()  # no DISCONNECT: the broker publishes the last will
            except Exception:
                pass
        self.next_try_ms = now_ms + self.backoff_ms
        self.backoff_ms = min(self.backoff_ms * 2, BACKOFF_MAX_MS)

    def poll(self, now_ms):
        """Deliver pending messages (config, alerts); ping when idle. False when the link broke."""
        if self.client is None:
            return False
        try:
            self.client.check_msg()
            if now_ms - self.last_io_ms >= self.cfg["mqtt_keepalive_s"] * 500:
                self.client.ping()
                self.last_io_ms = now_ms
        except OSError:
            self._failed(now_ms)
            return False
        return True

    def status(self, now_ms, ts, dropped=0):
        """Publish the retained ``online`` status again (with a new drop count); True when acknowledged."""
        if self.client is None:
            return False
        try:
            self.client.publish(self.status_topic, status_payload("online", ts, dropped), retain=True, qos=1)
        except OSError:
            self._failed(now_ms)
            return False
        self.last_io_ms = now_ms
        return True

    def publish(self, now_ms, payload):
        """Publish telemetry with QoS 1; True once the broker acknowledged it."""
        if self.client is None:
            return False
        try:
            self.client.publish(self.telemetry_topic, payload, qos=1)
        except OSError:
            self._failed(now_ms)
            return False
        self.last_io_ms = now_ms
        return True
