"""``chainwatch waste profile [NAME]``: which jurisdiction profile the waste rules use, and switching it
at run time (an epidemic regime, say). The alerting service takes a switch at its next tick; every waste
alert records the profile it was judged under. Without NAME: the profile in force, its thresholds and
the history of switches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TextIO

from alerting.waste.profiles import all_profiles
from alerting.waste.replay import ReplayError
from core.clock import SystemClock
from core.db import init_db, make_engine
from core.registry_store import ensure_registry, waste_registry
from core.settings import Settings
from core.waste_store import profile_in_force, profile_switches, switch_profile


def profile_main(settings: Settings, name: str | None, by: str, note: str | None, out: TextIO) -> int:
    sql = make_engine(settings.sql_url)
    init_db(sql)
    ensure_registry(sql, settings.registry_file)
    wreg = waste_registry(sql)
    profiles = all_profiles(wreg.profiles)
    if name is not None:
        if name not in profiles:
            raise ReplayError(f"unknown waste profile {name!r} (known: {', '.join(sorted(profiles))})")
        switch_profile(sql, name, by, SystemClock().now(), note)
        print(f"waste profile is now {name}; the alerting service takes it at its next tick", file=out)
        return 0
    current = profile_in_force(sql, wreg.profile)
    print(f"in force: {current}" + (" (the registry's)" if current == wreg.profile else ""), file=out)
    for key, value in profiles[current].as_values().items():
        if key != "name":
            print(f"  {key} = {value:g}", file=out)
    for row in profile_switches(sql):
        when = datetime.fromtimestamp(row.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        print(f"{when}  -> {row.name}  by {row.by}" + (f"  ({row.note})" if row.note else ""), file=out)
    print(f"known: {', '.join(sorted(profiles))}", file=out)
    return 0
