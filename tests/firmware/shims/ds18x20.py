"""Shim of MicroPython's ``ds18x20``: DS18B20 probes whose temperatures come from ``sim.WORLD``."""

import sim


class DS18X20:
    def __init__(self, onewire):
        self.ow = onewire

    def scan(self):
        return list(sim.world().roms.get(self.ow.pin, []))

    def convert_temp(self):
        pass

    def read_temp(self, rom):
        w = sim.world()
        fn = w.probe_temps.get(bytes(rom))
        if fn is None or rom not in w.roms.get(self.ow.pin, []):
            raise Exception("CRC error")  # as the real driver does for a probe that does not answer
        return fn(w.now_s())
