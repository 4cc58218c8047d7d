"""Identifier rules of protocol v1: clinic and device ids match ``[a-z0-9][a-z0-9-]{0,63}``."""

from __future__ import annotations

import re

ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,63}"
ID_RE = re.compile(rf"^{ID_PATTERN}\Z")


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))
