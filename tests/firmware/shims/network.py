"""Shim of MicroPython's ``network``: a WLAN whose link is ``sim.WORLD.link``."""

import sim

STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, iface=STA_IF):
        self._active = False

    def active(self, v=None):
        if v is not None:
            self._active = bool(v)
        return self._active

    def connect(self, ssid=None, key=None):
        pass

    def isconnected(self):
        return sim.world().link
