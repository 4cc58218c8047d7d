"""Heat and freeze exposure of vaccine lots (issue 9): how much of each lot's heat-stability budget its
time in the clinics' appliances has used, and how long it spent at or below −0.5 °C.

(Being built: the table and ``latest_exposure`` are the interface the excursion impact, the pages and
the reports read; the computation fills them.)

Table ``lot_exposure`` (on ``core.db.Base``): one row per computation of a lot's exposure, never
updated: ``heat_budget_used`` is the fraction (0 = none, 1 = all) of the lot's VVM budget used since
it was received (None: the product has no VVM type), ``freeze_minutes`` the minutes at or below
−0.5 °C (freeze-sensitive products only; None otherwise), ``covered_until`` the time up to which
temperatures were known, ``computed_at`` when it was computed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Double, Engine, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base

FREEZE_AT_C = -0.5  # DESIGN §5: the freeze alarm's threshold


class LotExposureRow(Base):
    __tablename__ = "lot_exposure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("vaccine_lot.id"))
    computed_at: Mapped[float] = mapped_column(Double)
    covered_until: Mapped[float] = mapped_column(Double)
    heat_budget_used: Mapped[float | None] = mapped_column(Double, nullable=True)
    freeze_minutes: Mapped[float | None] = mapped_column(Double, nullable=True)
    trigger: Mapped[str] = mapped_column(String(32))  # "daily", "alert:{id}", "manual"

    __table_args__ = (Index("ix_lot_exposure_lot", "lot_id", "computed_at"),)


def init_exposure_tables(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[LotExposureRow.__table__])  # type: ignore[list-item]


def latest_exposure(session: Session, lot_ids: Sequence[int]) -> dict[int, LotExposureRow]:
    """lot id -> its latest exposure row (lots never computed are absent)."""
    if not lot_ids:
        return {}
    newest = (
        select(LotExposureRow.lot_id, func.max(LotExposureRow.id).label("id"))
        .where(LotExposureRow.lot_id.in_(list(lot_ids)))
        .group_by(LotExposureRow.lot_id)
        .subquery()
    )
    rows = session.scalars(select(LotExposureRow).join(newest, LotExposureRow.id == newest.c.id))
    return {r.lot_id: r for r in rows}
