"""Where the shared reference material lives (../shared/reference beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE = Path(
    os.environ.get("CHAINWATCH_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference")
)
