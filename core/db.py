"""SQL schema (SQLAlchemy 2): the registry, dead letters and device notices.

SQLite by default (a file in the data directory), any SQLAlchemy URL allowed. Services create the
schema on first start (``init_db``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DistrictRow(Base):
    __tablename__ = "district"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    bureau_id: Mapped[str] = mapped_column(String(64))
    bureau_name: Mapped[str] = mapped_column(String(200))
    waste_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)  # in force at start


class TownshipRow(Base):
    __tablename__ = "township"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("district.id"))
    name: Mapped[str] = mapped_column(String(200))


class ClinicRow(Base):
    __tablename__ = "clinic"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    township_id: Mapped[str] = mapped_column(ForeignKey("township.id"))
    name: Mapped[str] = mapped_column(String(200))
    waste_pickup_days: Mapped[str | None] = mapped_column(String(32), nullable=True)  # "mon,tue,..."
    waste_pickup_by: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM"; NULL: none


class WasteSiteRow(Base):
    """A licensed waste transporter or a disposal plant of the district."""

    __tablename__ = "waste_site"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # transporter / plant
    name: Mapped[str] = mapped_column(String(200))
    vehicles: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of number plates


class WasteSiteDeviceRow(Base):
    """A waste scanner of a plant: it publishes on the topics of the bags' clinics."""

    __tablename__ = "waste_site_device"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("waste_site.id"))


class WasteProfileDefRow(Base):
    """A waste profile of the registry (``waste_profiles``): the settings that differ from national."""

    __tablename__ = "waste_profile_def"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[str] = mapped_column(Text)  # JSON object


class DeviceRow(Base):
    __tablename__ = "device"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinic.id"))
    kind: Mapped[str] = mapped_column(String(32))
    interval_s: Mapped[int] = mapped_column(Integer)


class EquipmentRow(Base):
    __tablename__ = "equipment"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinic.id"))
    name: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    probe: Mapped[str] = mapped_column(String(32))


class PersonRow(Base):
    __tablename__ = "person"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))  # clinic id or bureau id
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))


class RotaRow(Base):
    __tablename__ = "rota"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id"))
    level: Mapped[int] = mapped_column(Integer)
    days: Mapped[str | None] = mapped_column(String(32), nullable=True)  # "mon,tue,..."; NULL: every day
    start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM" clinic time; NULL: all day
    end: Mapped[str | None] = mapped_column(String(5), nullable=True)


class EscalationRow(Base):
    """An escalation policy entry of the registry (``escalation:``): for a clinic and/or a severity
    (NULL: any), the settings it gives (JSON; the unset ones come from less specific entries)."""

    __tablename__ = "escalation_policy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clinic_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    settings: Mapped[str] = mapped_column(Text)


class ProfileOverrideRow(Base):
    """Rule settings of an equipment profile that differ from the defaults (registry YAML ``profiles``)."""

    __tablename__ = "profile_override"
    profile: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[str] = mapped_column(Text)  # JSON object


class DeadLetterRow(Base):
    """A message that failed validation, kept whole with its reason: nothing is silently dropped."""

    __tablename__ = "dead_letter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)


class DeviceNoticeRow(Base):
    """Readings from a device the registry does not know: stored, and noticed here."""

    __tablename__ = "device_notice"
    clinic_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # unregistered_device, ...
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    messages: Mapped[int] = mapped_column(Integer, default=0)
    last_reading_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
            cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
            # first: switching a new file to WAL takes a lock that another service starting may hold
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA journal_mode=WAL")  # the web app reads while the collector writes
            cur.execute("PRAGMA synchronous=FULL")  # a dead letter acknowledged is a dead letter kept
            cur.close()

    return engine


def init_db(engine: Engine) -> None:
    create_tables(engine)
    add_missing_columns(engine)


def create_tables(engine: Engine, tables: Sequence[Table] | None = None) -> None:
    """``CREATE TABLE`` for the tables (all of ``Base``'s by default) that do not exist yet. Services
    starting together on a new database (the collector, the alerting service, the web app) each do this:
    SQLAlchemy looks before it creates, so the loser of that race gets "already exists" for a table the
    winner made meanwhile, and on SQLite a reader that wants to write while another writes is refused
    at once ("database is locked": waiting could deadlock). Looking again a moment later settles both."""
    for attempt in range(10):
        try:
            Base.metadata.create_all(engine, tables=list(tables) if tables is not None else None)
            return
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc)
            if ("already exists" not in text and "database is locked" not in text) or attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


def add_missing_columns(engine: Engine) -> list[str]:
    """Bring tables made by an older ChainWatch up to date: a nullable column the models have and the
    table lacks is added (``ALTER TABLE ... ADD COLUMN``). Returns ``table.column`` of each one added.
    Anything else (a new NOT NULL column, a changed type) is not done silently: it raises."""
    from sqlalchemy import inspect, text

    added: list[str] = []
    insp = inspect(engine)
    existing_tables = set(insp.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable:
                raise RuntimeError(
                    f"table {table.name} lacks the NOT NULL column {col.name}: this database is from an "
                    "older ChainWatch; back it up and migrate it by hand"
                )
            ddl = col.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}'))
            added.append(f"{table.name}.{col.name}")
    return added
