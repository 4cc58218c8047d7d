"""The SQL schema's creation (``core.db``): services starting together on a new database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

import alerting.store  # noqa: F401  (its tables on Base)
from core.db import Base, create_tables, init_db, make_engine


def test_losing_the_race_to_create_a_table_is_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """The collector and the alerting service start together on an empty SQLite file: one of them finds
    a table made by the other between SQLAlchemy's look and its CREATE (seen in the benchmark)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'race.sqlite'}")
    real = Base.metadata.create_all
    calls = []

    def racing(bind, tables=None, checkfirst=True):  # the other service got there first, once
        calls.append(1)
        if len(calls) == 1:
            real(bind, tables=tables)
            raise OperationalError("CREATE TABLE alert", {}, Exception("table alert already exists"))
        return real(bind, tables=tables, checkfirst=checkfirst)

    monkeypatch.setattr(Base.metadata, "create_all", racing)
    init_db(engine)
    assert len(calls) == 2 and "alert" in inspect(engine).get_table_names()


def test_other_errors_still_stop_the_service(monkeypatch: pytest.MonkeyPatch, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'locked.sqlite'}")

    def broken(bind, tables=None, checkfirst=True):
        raise OperationalError("CREATE TABLE alert", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Base.metadata, "create_all", broken)
    with pytest.raises(OperationalError, match="disk I/O error"):
        create_tables(engine)


def test_services_starting_together_on_a_new_database(tmp_path):
    """Four at once, as the supervisor and docker-compose start them: every one gets its schema."""
    url = f"sqlite:///{tmp_path / 'together.sqlite'}"
    errors: list[BaseException] = []

    def start() -> None:
        try:
            init_db(make_engine(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert "alert" in inspect(make_engine(url)).get_table_names()
