"""Shim of MicroPython's ``ntptime``: ``settime`` sets the simulated RTC when the link is up."""

import sim

host = "pool.ntp.org"


def settime():
    w = sim.world()
    if not (w.link and w.ntp_ok):
        raise OSError(110)  # ETIMEDOUT
    w.rtc_set = True
