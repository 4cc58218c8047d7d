"""On-disk spool: batches of line protocol that could not be written to InfluxDB yet.

A batch is durable once ``put`` returns (written to a temporary file, fsynced, renamed, directory
fsynced), so the collector may acknowledge its messages. Segments are drained oldest first and
removed only after InfluxDB accepted them; a crash in between re-sends a segment, which is harmless
because writes are idempotent.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        existing = [int(p.stem) for p in self.dir.glob("*.lp") if p.stem.isdigit()]
        self._next = max(existing, default=0) + 1
        for tmp in self.dir.glob("*.tmp"):  # a put that crashed before its rename: never acknowledged
            tmp.unlink(missing_ok=True)

    def put(self, body: bytes) -> Path:
        with self._lock:
            seq = self._next
            self._next += 1
        path = self.dir / f"{seq:012d}.lp"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(path)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.lp"))

    def __len__(self) -> int:
        return len(self.segments())

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
