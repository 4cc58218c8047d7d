"""The simulated stock flow (``simulators.stock``): deterministic by seed, only valid movements through
``core.stock.record``, books that reconcile (``alerting.reconcile``) unless the deliberate mismatch is
asked for, and ``chainwatch simulate --stock`` with its summary in the JSON result."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerting.compliance import month_bounds
from alerting.reconcile import FlagKind, read_many
from core.clinic_time import CLINIC_TZ
from core.db import make_engine
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.stock import movements, replay
from simulators.stock import SideStreams, StockFlow, build_stock_sites

REGISTRY = load_registry_file(DEMO_REGISTRY)
CLINICS = [c.id for c in REGISTRY.clinics()][:3]
START = datetime(2026, 9, 28, 10, 30, tzinfo=CLINIC_TZ).timestamp()  # a Monday, mid-morning
END = datetime(2026, 11, 4, tzinfo=CLINIC_TZ).timestamp()


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'stock.sqlite'}")
    yield engine
    engine.dispose()


def simulate(sql: Engine, seed: int = 1, mismatch: str | None = None) -> StockFlow:
    flow = StockFlow(
        build_stock_sites(REGISTRY, CLINICS), sql, seed=seed, start=START, end=END, mismatch=mismatch
    )
    flow.run_until(END)
    return flow


def book(sql: Engine) -> list[tuple]:
    with Session(sql) as s:
        return [dataclasses.astuple(replace(m, id=0)) for m in movements(s)]


def october(sql: Engine) -> dict:
    start, end, _, _ = month_bounds(2026, 10)
    with Session(sql) as s:
        return read_many(s, CLINICS, start, end, END)


def test_the_flow_is_deterministic_by_seed(tmp_path: Path):
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        engine = make_engine(f"sqlite:///{tmp_path / name}.sqlite")
        simulate(engine, seed)
        runs.append(book(engine))
        engine.dispose()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_month_of_deliveries_sessions_wastage_and_moves_all_valid(sql: Engine):
    flow = simulate(sql)
    s = flow.summary(END)
    assert s["refused"] == 0 and s["stockout_doses"] == 0 and s["mismatch"] is None
    kinds = s["by_kind"]
    assert kinds["received"] >= 2 and kinds["moved"] > 0 and kinds["administered"] > 100
    assert s["doses"]["wasted"] > 0
    with Session(sql) as ses:
        moves = movements(ses)
    replay(moves)  # raises if any balance ever went negative
    assert all(m.at >= START for m in moves)
    reasons = {m.reason for m in moves if m.reason}
    assert {"opened_vial_expiry"} <= reasons
    given = [m for m in moves if m.kind.value == "administered"]
    assert all(datetime.fromtimestamp(m.at, CLINIC_TZ).weekday() < 5 for m in given)  # weekdays only


def test_the_simulated_books_reconcile_without_a_flag(sql: Engine):
    simulate(sql)
    recs = october(sql)
    assert {c: [f.text_en for f in r.flags] for c, r in recs.items()} == {c: [] for c in CLINICS}
    for r in recs.values():
        assert r.lots and all(x.closing == x.closing_books for x in r.lots)
        assert sum(x.administered for x in r.lots) > 50


def test_the_mismatch_option_makes_exactly_one_flag(sql: Engine):
    flow = simulate(sql, mismatch=CLINICS[1])
    truth = flow.summary(END)["mismatch"]
    assert truth["clinic"] == CLINICS[1] and truth["issued"] - truth["checked_in"] == truth["short"] == 10
    flags = [(c, f) for c, r in october(sql).items() for f in r.flags]
    ((clinic, flag),) = flags
    assert clinic == CLINICS[1] and flag.kind is FlagKind.unaccounted
    assert (flag.lot_number, flag.doses) == (truth["lot"], 10)


def test_an_unknown_mismatch_clinic_is_one_clear_error(sql: Engine):
    with pytest.raises(ValueError, match="--stock-mismatch nowhere: not a simulated clinic"):
        StockFlow(build_stock_sites(REGISTRY, CLINICS), sql, seed=1, start=START, mismatch="nowhere")


def test_side_streams_interleave_by_time():
    class Stream:
        def __init__(self, times: list[float], name: str, log: list[str]) -> None:
            self.times, self.name, self.log = times, name, log

        def next_time(self) -> float:
            return self.times[0] if self.times else float("inf")

        def publish_next(self, sink: object) -> None:
            self.log.append(f"{self.name}{self.times.pop(0):g}")

        def summary(self, end: float) -> dict:
            return {"name": self.name}

    log: list[str] = []
    both = SideStreams(Stream([1, 4], "w", log), Stream([2, 3], "s", log))
    while both.next_time() < 10:
        both.publish_next(None)
    assert log == ["w1", "s2", "s3", "w4"] and both.summary(10) == {"name": "w"}


def test_simulate_stock_writes_the_books_and_prints_the_summary(monkeypatch, tmp_path: Path, capsys):
    """``chainwatch simulate --stock`` through the CLI, the broker replaced by a memory sink."""
    from core.cli import main
    from simulators import cli as sim_cli
    from simulators.publisher import MemorySink

    class FakePublisher(MemorySink):
        def __init__(self, host: str, port: int, **kwargs: object) -> None:
            super().__init__()

    db = tmp_path / "cw.sqlite"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHAINWATCH_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setattr(sim_cli, "MqttPublisher", FakePublisher)
    argv = ["simulate", "--clinics", "2", "--speed", "0", "--start=-40d", "--duration", "3d", "--stock"]
    assert main([*argv, "--stock-mismatch", CLINICS[0]]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert "waste" not in result
    stock = result["stock"]
    assert stock["clinics"] == 2 and stock["refused"] == 0 and stock["movements"] > 20
    assert stock["mismatch"]["clinic"] == CLINICS[0]
    assert "[simulate] stock: up to " in err and "doses given" in err
    engine = make_engine(f"sqlite:///{db}")
    with Session(engine) as s:
        assert len(movements(s)) == stock["movements"]
    engine.dispose()
