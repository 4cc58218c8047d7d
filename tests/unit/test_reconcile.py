"""Stock reconciliation (``alerting.reconcile``): books recorded through ``core.stock.record`` in
SQLite, then a clinic's month as the bureau reads it — what adds up, and what is flagged in words."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from alerting.compliance import month_bounds
from alerting.reconcile import (
    TRANSIT,
    FlagKind,
    Reconciliation,
    read_reconciliation,
    tolerance,
)
from core.clinic_time import CLINIC_TZ
from core.db import make_engine
from core.stock import Kind, Movement, ensure_products, lot, record

CLINIC, OTHER = "qingshui-thc", "baihe-thc"
F1, F2 = "qingshui-fridge1", "qingshui-fridge2"
STORE, STORE_FRIDGE = "demo-bureau", "demo-bureau-store"
NURSE, KEEPER = "qingshui-nurse1", "bureau-keeper"
START, END, _, _ = month_bounds(2026, 11)
NAMES = {STORE: "示范区卫生健康局", CLINIC: "清水镇卫生院"}


@pytest.fixture
def session(tmp_path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'stock.sqlite'}")
    ensure_products(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def at(day: int, hour: float = 9.0, month: int = 11) -> float:
    """Epoch seconds of 2026-{month}-{day} {hour} clinic time."""
    return datetime(2026, month, day, tzinfo=CLINIC_TZ).timestamp() + hour * 3600


def put(s: Session, *moves: Movement) -> None:
    for m in moves:
        record(s, m, m.at)


def store_issue(s: Session, lot_id: int, doses: int, t: float, to: str = CLINIC) -> None:
    """The district store receives the doses and issues them to ``to``'s TRANSIT."""
    received = Movement(lot_id, Kind.received, STORE, STORE_FRIDGE, doses, t - 3600, KEEPER, source="华兰")
    issued = Movement(lot_id, Kind.moved, STORE, STORE_FRIDGE, doses, t, KEEPER, to_clinic_id=to)
    put(s, received, replace(issued, to_equipment_id=TRANSIT))


def clinic(lot_id: int, kind: Kind, doses: int, t: float, equipment: str = F1, **kw: object) -> Movement:
    return Movement(lot_id, kind, CLINIC, equipment, doses, t, NURSE, **kw)  # type: ignore[arg-type]


def check_in(lot_id: int, doses: int, t: float) -> Movement:
    return clinic(lot_id, Kind.moved, doses, t, TRANSIT, to_equipment_id=F1)


def november(s: Session, until: float = END) -> Reconciliation:
    return read_reconciliation(s, CLINIC, START, END, until, NAMES)


def test_books_that_balance_raise_no_flag(session: Session):
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    store_issue(session, hb, 100, at(3))
    put(
        session,
        check_in(hb, 100, at(3, 14)),
        clinic(hb, Kind.administered, 30, at(5, 10)),
        clinic(hb, Kind.wasted, 1, at(5, 11), reason="broken"),  # 3 %: under the 5 % limit
        clinic(hb, Kind.moved, 10, at(6), to_equipment_id=F2),
        clinic(hb, Kind.moved, 5, at(7), to_clinic_id=OTHER, to_equipment_id="baihe-fridge1"),
    )
    rec = november(session)
    (line,) = rec.lots
    counts = (line.opening, line.moved_in, line.administered, line.wasted, line.moved_out)
    assert counts == (0, 100, 30, 1, 5)
    assert line.closing == line.closing_books == 64
    assert (line.in_transit, line.unaccounted) == (0, 0)
    assert rec.flags == ()


def test_doses_issued_beyond_given_wasted_and_stock_are_flagged_in_words(session: Session):
    """The store moved out 200 doses; the clinic checked in 190, gave 50 and wasted 1: 10 doses are
    nowhere in its books."""
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    store_issue(session, hb, 200, at(3))
    put(
        session,
        check_in(hb, 190, at(3, 15)),
        clinic(hb, Kind.administered, 50, at(10)),
        clinic(hb, Kind.wasted, 1, at(10, 11), reason="broken"),
    )
    rec = november(session)
    (line,) = rec.lots
    assert line.moved_in == 200 and line.closing == line.closing_books == 149
    assert (line.in_transit, line.unaccounted) == (10, 10)
    (flag,) = rec.flags
    assert flag.kind is FlagKind.unaccounted and flag.doses == 10 and flag.lot_number == "HB2611A"
    assert "发放至本院 200 剂" in flag.text and "本院入库 190 剂" in flag.text and "10 剂未入账" in flag.text
    assert "示范区卫生健康局" in flag.text and "2026-11-03" in flag.text
    assert "10 doses not accounted for" in flag.text_en and "190 checked in" in flag.text_en


def test_an_issue_still_on_its_way_is_not_judged_yet(session: Session):
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    store_issue(session, hb, 100, at(20))
    assert november(session, until=at(21)).flags == ()  # one day after the issue: may be on its way
    (flag,) = november(session).flags  # at the month's end, ten days after: overdue
    assert flag.kind is FlagKind.unaccounted and flag.doses == 100


def test_an_opened_multi_dose_vial_is_within_tolerance_a_whole_vial_is_not(session: Session):
    assert tolerance(10) == 9 and tolerance(1) == 0
    bcg = lot(session, "bcg", "BCG2611", "2027-06-30").id
    store_issue(session, bcg, 100, at(3))
    put(session, check_in(bcg, 93, at(3, 14)))  # 7 doses: the rest of an opened 10-dose vial
    assert [f.kind for f in november(session).flags] == []
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    store_issue(session, hb, 100, at(3))
    put(session, check_in(hb, 99, at(3, 14)))  # one single-dose vial
    (flag,) = november(session).flags
    assert (flag.kind, flag.product_id, flag.doses) == (FlagKind.unaccounted, "hepb", 1)
    store_issue(session, bcg, 100, at(4))
    put(session, check_in(bcg, 90, at(4, 14)))  # 7 + 10: more than a vial
    flags = {f.product_id: f.doses for f in november(session).flags}
    assert flags == {"hepb": 1, "bcg": 17}


def test_doses_given_after_the_expiry_date_are_flagged(session: Session):
    old = lot(session, "mmr", "MMR2511", "2026-11-15").id
    store_issue(session, old, 20, at(2))
    put(
        session,
        check_in(old, 20, at(2, 14)),
        clinic(old, Kind.administered, 3, at(15, 16)),  # the expiry day itself: still valid
        clinic(old, Kind.administered, 2, at(16, 10)),
        clinic(old, Kind.administered, 1, at(18, 10)),
    )
    (flag,) = november(session).flags
    assert (flag.kind, flag.doses) == (FlagKind.expired_use, 3)
    assert "有效期至 2026-11-15" in flag.text and "2026-11-16…2026-11-18" in flag.text
    assert "3 doses were given" in flag.text_en


def test_a_wastage_rate_above_the_products_limit_is_flagged(session: Session):
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    bcg = lot(session, "bcg", "BCG2611", "2027-06-30").id
    for n in (hb, bcg):
        store_issue(session, n, 100, at(2))
        put(session, check_in(n, 100, at(2, 14)))
    put(
        session,
        clinic(hb, Kind.administered, 36, at(5)),
        clinic(hb, Kind.wasted, 4, at(5, 12), reason="broken"),  # 10 % > 5 %
        clinic(bcg, Kind.administered, 12, at(5)),
        clinic(bcg, Kind.wasted, 8, at(5, 12), reason="opened_vial_expiry"),  # 40 % < 50 %
    )
    rec = november(session)
    (flag,) = rec.flags
    assert (flag.kind, flag.product_id, flag.doses) == (FlagKind.wastage, "hepb", 4)
    assert "损耗率 10%" in flag.text and "5%" in flag.text and "wastage 10%" in flag.text_en
    rates = {w.product_id: (w.rate, w.threshold) for w in rec.wastage}
    assert rates == {"hepb": (0.1, 0.05), "bcg": (0.4, 0.5)}


def test_last_months_stock_is_this_months_opening_and_an_old_shortfall_is_still_flagged(session: Session):
    hb = lot(session, "hepb", "HB2610A", "2027-09-30").id
    store_issue(session, hb, 50, at(10, month=10))
    put(session, check_in(hb, 40, at(10, 15, month=10)), clinic(hb, Kind.administered, 5, at(4)))
    rec = november(session)
    (line,) = rec.lots
    assert (line.opening, line.moved_in, line.administered, line.closing) == (50, 0, 5, 45)
    (flag,) = rec.flags
    assert flag.kind is FlagKind.unaccounted and flag.doses == 10 and "2026-10-10" in flag.text


def test_another_clinics_lots_and_an_empty_month_are_left_out(session: Session):
    hb = lot(session, "hepb", "HB2611A", "2027-10-31").id
    store_issue(session, hb, 100, at(3), to=OTHER)
    rec = november(session)
    assert rec.lots == () and rec.flags == () and rec.wastage == ()
    assert rec.as_json()["clinic"] == CLINIC
