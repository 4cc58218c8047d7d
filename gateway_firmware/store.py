"""Store-and-forward buffer: a ring of fixed-size sample slots in one flash file, for the gateway's
uplink. Survives a reboot and a power cut; bounded; the oldest sample is dropped only when the ring
is full, and every drop is counted (``dropped``, persisted; the uplink reports it once in the status message).

A slot is one sampling instant: up to 8 probe temperatures (integer hundredths of a degree), mains
and battery. Its time is either epoch seconds (``dated``) or, before the clock was ever set, seconds
since boot ``boot`` (the time keeper turns those into epoch seconds once it knows the time).

Files: ``{path}`` (the slots) and ``{path}.hdr`` (head, count, counters; replaced atomically by a
rename after the slot is written, so a power cut loses at most the sample being written). RAM: one
slot at a time (``peek`` is a generator), a few hundred bytes of header.
"""

import json
import os
import struct

MAX_PROBES = 8
_FMT = "<BBHIBB8h"  # flags, probe count, boot, time, mains, battery, 8 temperatures
SLOT = struct.calcsize(_FMT)  # 26 bytes
DATED = 1


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class RingStore:
    def __init__(self, path, slots):
        self.path = path
        self.hdr_path = path + ".hdr"
        self.cap = slots
        self.head = 0
        self.count = 0
        self.dropped = 0  # samples dropped because the ring was full
        self.undated = 0  # samples dropped because their time could never be known
        self.reported = 0  # ``dropped`` as last reported to the server
        if _exists(self.hdr_path) and _exists(path):
            with open(self.hdr_path) as f:
                h = json.load(f)
            self.cap = h["cap"]  # the layout on flash wins over a changed setting
            self.head = h["head"]
            self.count = h["count"]
            self.dropped = h["dropped"]
            self.undated = h["undated"]
            self.reported = h.get("reported", 0)
            self._f = open(path, "r+b")
        else:
            self._f = open(path, "w+b")
            self._save()

    def __len__(self):
        return self.count

    def _save(self):
        tmp = self.hdr_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {
                    "cap": self.cap,
                    "head": self.head,
                    "count": self.count,
                    "dropped": self.dropped,
                    "undated": self.undated,
                    "reported": self.reported,
                },
                f,
            )
        os.rename(tmp, self.hdr_path)

    def append(self, dated, boot, t, temps, mains, battery):
        """Add one sample at the tail; when full, the oldest sample makes room (and is counted)."""
        if self.count == self.cap:
            self.head = (self.head + 1) % self.cap
            self.count -= 1
            self.dropped += 1
        vals = list(temps) + [0] * (MAX_PROBES - len(temps))
        raw = struct.pack(
            _FMT, DATED if dated else 0, len(temps), boot & 0xFFFF, int(t), mains, battery, *vals
        )
        self._f.seek(((self.head + self.count) % self.cap) * SLOT)
        self._f.write(raw)
        self._f.flush()
        self.count += 1
        self._save()

    def peek(self, n):
        """Up to ``n`` samples from the oldest, one slot read at a time (a generator: RAM for one slot):
        ``(dated, boot, t, temps, mains, battery)`` tuples."""
        for i in range(min(n, self.count)):
            self._f.seek(((self.head + i) % self.cap) * SLOT)
            v = struct.unpack(_FMT, self._f.read(SLOT))
            yield (v[0] & DATED, v[2], v[3], list(v[6 : 6 + v[1]]), v[4], v[5])

    def remove(self, n, undated=0):
        """Forget the ``n`` oldest samples (acknowledged by the broker, or ``undated`` of them unsendable)."""
        n = min(n, self.count)
        self.head = (self.head + n) % self.cap
        self.count -= n
        self.undated += undated
        self._save()

    def unreported_drops(self):
        """The drop count when it changed since it was last reported, else 0."""
        return self.dropped if self.dropped != self.reported else 0

    def mark_reported(self, dropped):
        if dropped and dropped != self.reported:
            self.reported = dropped
            self._save()

    def close(self):
        self._f.close()
