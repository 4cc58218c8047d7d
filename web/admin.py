"""Admin pages (issue 6): users, registry reload, dead letters. (Being built.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["admin"])
