"""The MQTT session every ChainWatch service holds: MQTT 5, a fixed client id, no clean start and a
week of session expiry, so the broker queues QoS 1 messages while the service is away; manual
acknowledgement, so a message is acknowledged only once the service has made it durable."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.settings import Settings

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps a service's queue a week while it is away


def persistent_client(client_id: str) -> mqtt.Client:
    """A client for a persistent session with manual acknowledgement; set its callbacks, then
    ``connect_persistent``."""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True
    )
    c.reconnect_delay_set(0.5, 10)
    return c


def connect_persistent(client: mqtt.Client, settings: Settings, receive_maximum: int) -> None:
    """Connect in the background (reconnecting for ever), resuming the session; the broker sends at
    most ``receive_maximum`` unacknowledged messages at once (MQTT 5 Receive Maximum). Logs in as
    ``settings.mqtt_username`` when it is set."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = min(max(receive_maximum, 1), 65535)
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password.get_secret_value() or None)
    client.connect_async(
        settings.mqtt_host, settings.mqtt_port, keepalive=30, clean_start=False, properties=props
    )
    client.loop_start()
