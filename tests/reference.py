"""Where the shared reference material lives: ``CHAINWATCH_REFERENCE_DIR``, else ``../shared/reference``
beside the repository, else ``/work/shared/reference`` (for a clone made elsewhere on this machine)."""

from __future__ import annotations

import os
from pathlib import Path


def _find() -> Path:
    if os.environ.get("CHAINWATCH_REFERENCE_DIR"):
        return Path(os.environ["CHAINWATCH_REFERENCE_DIR"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "reference"
    candidates = [beside, Path("/work/shared/reference")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


REFERENCE = _find()
