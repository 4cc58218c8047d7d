"""Builds the gateway's hardware objects (``gateway.Gateway``'s ``hw``) from the configuration, with the
MicroPython modules passed in: the board's own on the device, the tests' shims under the simulator."""

from gateway_firmware.board import Board
from gateway_firmware.probes import DS18B20, Bus, SHT3x


class Hardware:
    pass


def _rom(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2)) if text else None


def build(cfg, machine, onewire, ds18x20, ntptime, mqtt_class, clock, wlan, wdt):
    hw = Hardware()
    hw.clock = clock
    hw.ntptime = ntptime
    hw.mqtt = mqtt_class
    hw.wlan = wlan
    hw.wdt = wdt
    hw.board = Board(machine, cfg)
    hw.probes = []
    buses = {}
    i2cs = {}
    for i, p in enumerate(cfg["probes"]):
        if p.get("driver", "ds18b20") == "ds18b20":
            bus = buses.get(p["pin"])
            if bus is None:
                bus = buses[p["pin"]] = Bus(machine, onewire, ds18x20, p["pin"])
            driver = DS18B20(bus, _rom(p.get("rom")), p.get("index", i))
        else:
            key = (p["sda"], p["scl"])
            i2c = i2cs.get(key)
            if i2c is None:
                i2c = i2cs[key] = machine.I2C(0, sda=machine.Pin(p["sda"]), scl=machine.Pin(p["scl"]))
            driver = SHT3x(i2c, clock.sleep_ms, p.get("addr", SHT3x.ADDR))
        hw.probes.append((p["id"], driver))
    hw.buses = list(buses.values())
    return hw
