"""Reading times for the sampler: epoch seconds once the RTC is known to be right (NTP, or an RTC that
kept its time through a soft reset), else seconds since boot, corrected later by the offset learnt at
the first sync of that boot. A reading is never sent with a 1970 date: a reading whose boot ended
before any sync cannot be dated and is dropped (and counted) by the uplink instead.

Offsets ("anchors": epoch - seconds since boot, per boot number) are kept in a small flash file so
readings taken before a sync survive a reboot that follows the sync.
"""

import json
import os

MIN_VALID_EPOCH = 1735689600  # 2025-01-01: an RTC earlier than this was never set
RESYNC_MS = 24 * 3600 * 1000
RETRY_MS = 60 * 1000
_KEEP_ANCHORS = 16


class TimeKeeper:
    def __init__(self, clock, ntptime, path):
        self.clock = clock
        self.ntptime = ntptime
        self.path = path
        self.anchors = {}
        self.boot = 1
        try:
            with open(path) as f:
                doc = json.load(f)
            self.anchors = doc["anchors"]
            self.boot = doc["boot"] % 65535 + 1  # stored in 16 bits with each reading
        except (OSError, ValueError, KeyError):
            pass
        self.synced = False
        self.next_sync_ms = 0
        if self.clock.epoch() >= MIN_VALID_EPOCH:
            self._anchor()
            self.next_sync_ms = RETRY_MS  # confirm with NTP soon, but sampling need not wait
        self._save()

    def _save(self):
        boots = sorted(int(b) for b in self.anchors)
        for b in boots[:-_KEEP_ANCHORS]:
            del self.anchors[str(b)]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"boot": self.boot, "anchors": self.anchors}, f)
        os.rename(tmp, self.path)

    def _anchor(self):
        mono_s = self.clock.mono_ms() // 1000
        self.anchors[str(self.boot)] = self.clock.epoch() - mono_s
        self.synced = True

    def mono_s(self):
        return self.clock.mono_ms() // 1000

    def stamp(self):
        """``(dated, t)`` for a reading taken now."""
        if self.synced:
            return True, int(self.clock.epoch())
        return False, self.mono_s()

    def now(self):
        """Epoch seconds, or None while the time is not known."""
        return int(self.clock.epoch()) if self.synced else None

    def maybe_sync(self, online):
        """Ask NTP when due (first sync: every minute while online; then once a day)."""
        now_ms = self.clock.mono_ms()
        if not online or now_ms < self.next_sync_ms:
            return False
        try:
            self.ntptime.settime()
        except (OSError, OverflowError):
            self.next_sync_ms = now_ms + RETRY_MS
            return False
        if self.clock.epoch() < MIN_VALID_EPOCH:
            self.next_sync_ms = now_ms + RETRY_MS
            return False
        first = not self.synced
        if first:
            self._anchor()
            self._save()
        self.next_sync_ms = now_ms + RESYNC_MS
        return first

    def resolve(self, dated, boot, t):
        """Epoch seconds of a stored reading, or None: not yet known (this boot, before the sync) or
        never knowable (an earlier boot that never synced): see ``unknowable``."""
        if dated:
            return t
        a = self.anchors.get(str(boot))
        return None if a is None else a + t

    def unknowable(self, dated, boot):
        return not dated and boot != self.boot and str(boot) not in self.anchors
