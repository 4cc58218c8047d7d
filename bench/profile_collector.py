"""``python -m bench.profile_collector OUT.pstats``: ``chainwatch collector`` with every thread under
cProfile, for ``bench.run`` when py-spy is not installed. cProfile only profiles the thread that enables
it, and the collector's work happens in paho's network thread and the writer thread, so each thread gets
its own profiler; their statistics are merged into ``OUT.pstats`` when the collector exits.

cProfile slows pure-Python code down much more than C code, so prefer py-spy's numbers (``bench.run``
uses py-spy when it finds it).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
from typing import Any


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.profile_collector OUT.pstats", file=sys.stderr)
        return 2
    out = argv[0]
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        prof = cProfile.Profile()
        prof.enable()
        try:
            original_run(self, *args, **kwargs)
        finally:
            prof.disable()
            with lock:
                profiles.append(prof)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from core.cli import main as cli_main

    main_prof = cProfile.Profile()
    main_prof.enable()
    try:
        code = cli_main(["collector"])
    finally:
        main_prof.disable()
        with lock:
            stats = pstats.Stats(main_prof)
            for prof in profiles:
                stats.add(prof)
        stats.dump_stats(out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
