"""A small vaccine stock for the demo district (issue 9), so that the clinic and bureau stock pages of a
fresh ``chainwatch run`` are not empty: one delivery per clinic from the district CDC, a few products of
the programme in 2–3 lots each, with realistic doses and expiries 6–18 months ahead, put in the clinic's
refrigerators.

Only for the demo district (another registry: nothing is done). Idempotent: each delivery line has a
fixed ``ident`` and a lot keeps the expiry it was first given, so calling it at every start records
nothing new. The simulator's daily stock flow (sessions, wastage) is built elsewhere; this is only the
opening stock.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.clinic_time import CLINIC_TZ
from core.db import ClinicRow, EquipmentRow, TownshipRow
from core.stock import (
    Kind,
    Movement,
    StockMovementRow,
    VaccineLotRow,
    ensure_products,
    lot,
    record,
)

DEMO_DISTRICT = "demo-district"
SOURCE = "示范区疾病预防控制中心"  # the district CDC's store, where deliveries come from
PERSON = "demo-seed"  # who recorded the opening stock
DELIVERED_DAYS_AGO = 3.0
# product, its lots: (lot number, months until expiry, doses for the first clinic), manufacturer
DEMO_LOTS: tuple[tuple[str, tuple[tuple[str, int, int], ...], str], ...] = (
    ("hepb", (("HB202603A", 6, 40), ("HB202605C", 11, 60), ("HB202607B", 18, 30)), "华兰生物"),
    ("dtap", (("DT20260412", 8, 30), ("DT20260618", 15, 40)), "武汉生物"),
    ("bopv", (("P202604-07", 7, 100), ("P202606-11", 13, 50)), "北京生物"),
    ("mmr", (("MMR260315", 9, 20), ("MMR260522", 16, 30)), "上海生物"),
)


def seed_demo_stock(engine: Engine, now: float) -> int:
    """Record the demo district's opening stock (once); returns how many delivery lines were recorded
    now (0 when they are all there already, or the registry is not the demo district)."""
    ensure_products(engine)
    added = 0
    with Session(engine) as s, s.begin():
        clinics = list(
            s.scalars(
                select(ClinicRow.id)
                .join(TownshipRow, TownshipRow.id == ClinicRow.township_id)
                .where(TownshipRow.district_id == DEMO_DISTRICT)
                .order_by(ClinicRow.id)
            )
        )
        have = set(s.scalars(select(StockMovementRow.ident).where(StockMovementRow.ident.like("demo:%"))))
        today = datetime.fromtimestamp(now, CLINIC_TZ).date()
        at = now - DELIVERED_DAYS_AGO * 86400.0
        for i, clinic in enumerate(clinics):
            fridges = list(
                s.scalars(
                    select(EquipmentRow.id)
                    .where(EquipmentRow.clinic_id == clinic, EquipmentRow.profile == "refrigerator")
                    .order_by(EquipmentRow.id)
                )
            )
            if not fridges:
                continue
            j = 0
            for product, lots, maker in DEMO_LOTS:
                for number, months, doses in lots:
                    ident = f"demo:{clinic}:{product}:{number}"
                    if ident in have:
                        continue
                    row = s.scalars(
                        select(VaccineLotRow).where(
                            VaccineLotRow.product_id == product, VaccineLotRow.lot_number == number
                        )
                    ).first() or lot(s, product, number, _months_ahead(today, months).isoformat(), maker)
                    movement = Movement(
                        lot_id=row.id,
                        kind=Kind.received,
                        clinic_id=clinic,
                        equipment_id=fridges[j % len(fridges)],
                        doses=_doses(product, doses, i),
                        at=at,
                        person_id=PERSON,
                        source=SOURCE,
                        ident=ident,
                    )
                    record(s, movement, now)
                    added += 1
                    j += 1
    return added


def _doses(product: str, doses: int, clinic_index: int) -> int:
    """The first clinic's doses, a little more or less at the others (whole vials: 10-dose bOPV)."""
    step = 10 if product == "bopv" else 5
    return max(step, doses + step * ((clinic_index * 3) % 5 - 2))


def _months_ahead(day: date, months: int) -> date:
    """The last day of the month ``months`` after ``day``'s (lots expire at a month's end)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return date(year, month, calendar.monthrange(year, month)[1])
