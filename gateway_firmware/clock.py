"""The board's clocks for the gateway loop: a monotonic millisecond counter that does not wrap (MicroPython's
``ticks_ms`` wraps after ~12 days) and the RTC in Unix epoch seconds, whatever epoch the port uses.
The tests replace this with a simulated clock of the same interface."""

import time

EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0  # ports with a 2000 epoch


class Clock:
    def __init__(self):
        self._last = time.ticks_ms()
        self._mono = 0

    def mono_ms(self):
        now = time.ticks_ms()
        self._mono += time.ticks_diff(now, self._last)
        self._last = now
        return self._mono

    def epoch(self):
        return time.time() + EPOCH_OFFSET

    def sleep_ms(self, ms):
        time.sleep_ms(ms)
