"""Helpers for the scenario programs of tests/firmware (MicroPython code): boot the real firmware on
the simulated board, and report to the pytest side as JSON lines starting with ``@@``."""

import json
import sys

import ds18x20
import machine
import network
import ntptime
import onewire
import sim
from umqtt.simple import MQTTClient

FLASH = "/flash/"
ROMS = [bytes([0x28, 0xFF, 0, 0, 0, 0, 0, i]) for i in range(1, 9)]


def params():
    with open("/params.json") as f:
        return json.load(f)


def emit(kind, **fields):
    fields["kind"] = kind
    print("@@" + json.dumps(fields))


def base_config(n_probes=4, **over):
    cfg = {
        "clinic": "qingshui-thc",
        "device": "qingshui-gw1",
        "mqtt_host": "broker.test",
        "wifi_ssid": "clinic",
        "probes": [{"id": f"p{i + 1}", "driver": "ds18b20", "pin": 4, "index": i} for i in range(n_probes)],
        "tick_ms": 60000,
    }
    cfg.update(over)
    return cfg


def install_probes(world, temps):
    """``temps``: one function(t_s) -> °C per DS18B20 on pin 4."""
    world.roms[4] = ROMS[: len(temps)]
    for i, fn in enumerate(temps):  # MicroPython's zip() has no strict=
        world.probe_temps[ROMS[i]] = fn


def boot(cfg_over):
    """Start the firmware as ``main.py`` would (fresh modules, config from /flash), on the simulator."""
    for name in list(sys.modules):
        if name.startswith("gateway_firmware"):
            del sys.modules[name]
    from gateway_firmware import config, hardware
    from gateway_firmware.gateway import Gateway

    cfg = config.load(FLASH + "config.json", FLASH + "server_config.json")
    cfg.update(cfg_over)
    wlan = network.WLAN(network.STA_IF)
    wdt = machine.WDT(timeout=cfg["watchdog_ms"])
    hw = hardware.build(cfg, machine, onewire, ds18x20, ntptime, MQTTClient, sim.SimClock(), wlan, wdt)
    return Gateway(cfg, hw, FLASH)


def report_delivered(world, since=0):
    for t, topic, payload, retain in world.delivered[since:]:
        emit("delivered", t=t, topic=topic, payload=payload.decode(), retain=retain)
    return len(world.delivered)
