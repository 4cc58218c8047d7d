"""The gateway's configuration: defaults, overridden by ``config.json`` on flash (written at
provisioning: ids, broker, Wi-Fi, pins, probes), then by the retained server config on
``cw/v1/{clinic}/{device}/config`` (interval and alarm thresholds only), which is kept on flash so a
gateway that reboots while offline keeps the last interval it was given."""

import json
import os

DEFAULTS = {
    "clinic": "clinic",
    "device": "gateway",
    "mqtt_host": "192.168.1.10",
    "mqtt_port": 1883,
    "mqtt_password": "",
    "mqtt_keepalive_s": 60,
    "wifi_ssid": "",
    "wifi_password": "",
    "interval_s": 60,
    # probes: {"id": "p1", "driver": "ds18b20", "pin": 4, "rom": "28ff..."|None, "index": 0}
    #     or  {"id": "p2", "driver": "sht3x", "sda": 21, "scl": 22, "addr": 68}
    "probes": [{"id": "p1", "driver": "ds18b20", "pin": 4}],
    "mains_pin": 34,
    "mains_on_level": 1,
    "battery_pin": 35,
    "battery_divider": 2,
    "buzzer_pin": 25,
    "led_pin": 2,
    "button_pin": 0,
    # local alarm (DESIGN §5 defaults, refrigerator profile)
    "high_c": 8.0,
    "low_c": 2.0,
    "freeze_c": -0.5,
    "clear_margin_c": 0.3,
    "warning_min": 30,
    "heat_alarm_h": 10,
    "freeze_min": 60,
    "clear_min": 10,
    "silence_min": 30,
    # store and forward
    "buffer_slots": 7 * 24 * 60,  # a week at 60 s (each slot holds all probes of one sample)
    "max_records": 500,
    "watchdog_ms": 120000,
    "tick_ms": 1000,
}

# what the server may set on the config topic, with the accepted range
SERVER_KEYS = {
    "interval_s": (10, 3600),
    "high_c": (-60, 70),
    "low_c": (-60, 70),
    "freeze_c": (-60, 70),
    "warning_min": (1, 1440),
    "freeze_min": (1, 1440),
}


def _read(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def load(path="config.json", server_path="server_config.json"):
    cfg = dict(DEFAULTS)
    cfg.update(_read(path))
    apply_server(cfg, _read(server_path))
    return cfg


def apply_server(cfg, doc):
    """Merge a server config document into ``cfg``; return the keys that changed. Unknown keys and
    values out of range are ignored (and listed by the caller's log)."""
    changed = []
    if not isinstance(doc, dict):
        return changed
    for key, (lo, hi) in SERVER_KEYS.items():
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            continue
        if key in ("interval_s", "warning_min", "freeze_min"):
            v = int(v)
        if cfg.get(key) != v:
            cfg[key] = v
            changed.append(key)
    return changed


def save_server(doc, server_path="server_config.json"):
    tmp = server_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, server_path)
