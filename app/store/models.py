"""SQLAlchemy 2 models: the stored shape of tenants, care data, plans, jobs, keys and logs.

Conventions: every tenant-owned row carries ``org_id`` and every query filters by it (see
:mod:`app.store.repositories`); times of day are integer seconds since local midnight in the
organisation's timezone; durations are integer seconds; dates are DATE; instants are UTC.
Relationships are ``lazy="raise"`` so a forgotten eager load fails loudly instead of issuing N+1
queries. Vendors address rows by ``external_id`` (unique per organisation), the API never exposes
the integer primary keys of care data.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON documents; JSONB on PostgreSQL so they compare and index well.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC instant on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Refuse naive datetimes and store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetime given for a UTC column"
            raise ValueError(msg)
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current instant, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with constraint naming conventions (stable names for migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONDoc}


def _enum(cls: type[enum.Enum], name: str) -> SAEnum:
    """A portable enum: VARCHAR plus a CHECK constraint, storing the enum *values*."""
    return SAEnum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class TravelMode(enum.StrEnum):
    """How a carer moves between clients (same values as app.domain.TravelMode)."""

    DRIVE = "drive"
    BIKE = "bike"
    WALK = "walk"


class CoordinateSource(enum.StrEnum):
    """Where a client's coordinates came from; the care record wins over geocoding."""

    CARE_RECORD = "care_record"
    GEOCODED = "geocoded"


class GeocodePrecision(enum.StrEnum):
    """What a geocoded position stands for: the house itself, or only its street."""

    ADDRESS = "address"
    STREET = "street"


class Priority(enum.StrEnum):
    """Whether a visit must happen on its date or may move."""

    MANDATORY = "mandatory"
    OPTIONAL = "optional"


class VisitStatus(enum.StrEnum):
    """Life cycle of a dated visit."""

    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PlanStatus(enum.StrEnum):
    """Life cycle of a plan version."""

    DRAFT = "draft"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class JobStatus(enum.StrEnum):
    """Life cycle of a solve job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Role(enum.StrEnum):
    """What a person (or an API key acting for the organisation) may do."""

    NURSE = "nurse"
    PLANNER = "planner"
    ADMIN = "admin"


# --------------------------------------------------------------------------------------------
# Tenants and organisation structure
# --------------------------------------------------------------------------------------------


class Organisation(Base):
    """A care organisation: the tenant every other row belongs to."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Competence(Base):
    """One entry of an organisation's competence vocabulary (levels, reserved acts...)."""

    __tablename__ = "competences"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")


class District(Base):
    """A district team's area (wijkteam, distrikt): the unit a plan is made for."""

    __tablename__ = "districts"
    __table_args__ = (UniqueConstraint("org_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Team(Base):
    """A small fixed group of carers inside a district (vaste gezichten, faste teams)."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    district: Mapped[District] = relationship(lazy="raise")


# --------------------------------------------------------------------------------------------
# Care data: staff, clients, shifts, visits, templates
# --------------------------------------------------------------------------------------------


class Staff(Base):
    """A carer or nurse: competences, travel mode and where the working day starts and ends."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("org_id", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    competences: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    travel_mode: Mapped[TravelMode] = mapped_column(_enum(TravelMode, "travel_mode"))
    start_lat: Mapped[float] = mapped_column(Float)
    start_lon: Mapped[float] = mapped_column(Float)
    end_lat: Mapped[float] = mapped_column(Float)
    end_lon: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(default=True)
    #: Where the day starts and ends as the care record gives it (``street``, ``housenumber``,
    #: ``postcode``, ``city`` and, once geocoded, ``geocode_quality`` and ``geocode_precision``).
    #: Personal data: never logged.
    start_address: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    end_address: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    #: Where ``start_lat``/``start_lon`` (``end_*``) came from; the care record wins.
    start_source: Mapped[CoordinateSource | None] = mapped_column(
        _enum(CoordinateSource, "start_source")
    )
    end_source: Mapped[CoordinateSource | None] = mapped_column(
        _enum(CoordinateSource, "end_source")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    district: Mapped[District] = relationship(lazy="raise")
    team: Mapped[Team | None] = relationship(lazy="raise")


class Client(Base):
    """A person cared for at home. Address, notes and name-like data never go to logs."""

    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        CheckConstraint("lat IS NULL OR (lat >= -90 AND lat <= 90)", name="lat_range"),
        CheckConstraint("lon IS NULL OR (lon >= -180 AND lon <= 180)", name="lon_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    street: Mapped[str] = mapped_column(String(200))
    housenumber: Mapped[str] = mapped_column(String(32))
    postcode: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(100))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    coordinate_source: Mapped[CoordinateSource | None] = mapped_column(
        _enum(CoordinateSource, "coordinate_source")
    )
    #: 0..1 confidence of the geocoder (1 = exact house number match); None if not geocoded.
    geocode_quality: Mapped[float | None] = mapped_column(Float)
    #: Hard continuity: only staff of this team may visit.
    allowed_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    #: The name the carer's route shows (health data: never logged, never in plans or audit).
    display_name: Mapped[str | None] = mapped_column(String(200))
    #: Whether the geocoded position is the house or only its street (None if not geocoded).
    geocode_precision: Mapped[GeocodePrecision | None] = mapped_column(
        _enum(GeocodePrecision, "geocode_precision")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    district: Mapped[District] = relationship(lazy="raise")
    allowed_team: Mapped[Team | None] = relationship(lazy="raise")

    def __repr__(self) -> str:
        # Never the address or notes: reprs end up in logs and tracebacks.
        return f"Client(id={self.id!r}, external_id={self.external_id!r})"


class ClientPreferredStaff(Base):
    """Soft continuity: carers a client knows, in order of preference."""

    __tablename__ = "client_preferred_staff"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    rank: Mapped[int] = mapped_column(Integer, default=0)


class Shift(Base):
    """One staff member's working day.

    ``breaks`` is ``[{"windows": [[start_s, end_s], ...], "duration_s": n}, ...]``.
    """

    __tablename__ = "shifts"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        CheckConstraint("end_s > start_s", name="end_after_start"),
        Index("ix_shifts_org_id_date", "org_id", "date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    date: Mapped[dt.date] = mapped_column(Date)
    start_s: Mapped[int] = mapped_column(Integer)
    end_s: Mapped[int] = mapped_column(Integer)
    breaks: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    staff: Mapped[Staff] = relationship(lazy="raise")


class VisitTemplate(Base):
    """A recurring weekly visit; expanding it creates one dated visit per matching day."""

    __tablename__ = "visit_templates"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        CheckConstraint("duration_s > 0", name="duration_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    #: ISO weekdays, 1 = Monday .. 7 = Sunday.
    weekdays: Mapped[list[int]] = mapped_column(JSONDoc)
    #: ``[[start_s, end_s], ...]``
    windows: Mapped[list[list[int]]] = mapped_column(JSONDoc)
    duration_s: Mapped[int] = mapped_column(Integer)
    competences: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    carers_required: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(lazy="raise")


class Visit(Base):
    """One dated visit to a client's home."""

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        CheckConstraint("duration_s > 0", name="duration_positive"),
        CheckConstraint("carers_required IN (1, 2)", name="carers_required_1_or_2"),
        Index("ix_visits_org_id_date", "org_id", "date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    date: Mapped[dt.date] = mapped_column(Date)
    #: ``[[start_s, end_s], ...]``: the visit starts and ends inside one of them.
    windows: Mapped[list[list[int]]] = mapped_column(JSONDoc)
    duration_s: Mapped[int] = mapped_column(Integer)
    competences: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"))
    carers_required: Mapped[int] = mapped_column(Integer, default=1)
    pinned_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    depends_on_visit_id: Mapped[int | None] = mapped_column(
        ForeignKey("visits.id", ondelete="SET NULL"), index=True
    )
    dependency_min_gap_s: Mapped[int | None] = mapped_column(Integer)
    dependency_max_gap_s: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[VisitStatus] = mapped_column(
        _enum(VisitStatus, "visit_status"), default=VisitStatus.PLANNED
    )
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("visit_templates.id", ondelete="SET NULL"), index=True
    )
    #: Reported times (seconds since midnight): a started (end None) or done visit is a fact
    #: every later plan of the day keeps, with the carer who reported it.
    actual_start_s: Mapped[int | None] = mapped_column(Integer)
    actual_end_s: Mapped[int | None] = mapped_column(Integer)
    actual_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", ondelete="SET NULL"), index=True
    )
    #: ``import`` (the care record's) or ``urgent`` (added by an ``urgent_visit_added`` event).
    origin: Mapped[str] = mapped_column(String(16), default="import", server_default="import")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(lazy="raise")
    pinned_staff: Mapped[Staff | None] = relationship(lazy="raise", foreign_keys=[pinned_staff_id])
    depends_on: Mapped[Visit | None] = relationship(lazy="raise", remote_side=[id])
    template: Mapped[VisitTemplate | None] = relationship(lazy="raise")


# --------------------------------------------------------------------------------------------
# Plans, events, jobs
# --------------------------------------------------------------------------------------------


class Plan(Base):
    """An immutable plan version for one district and date; a new version supersedes the old.

    ``routes``, ``unassigned`` and ``kpis`` hold the serialised :class:`app.scheduling.model.Plan`.
    """

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("district_id", "date", "version"),
        Index("ix_plans_org_id_date", "org_id", "date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[PlanStatus] = mapped_column(
        _enum(PlanStatus, "plan_status"), default=PlanStatus.DRAFT
    )
    based_on_version: Mapped[int | None] = mapped_column(Integer)
    routes: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    unassigned: Mapped[list[dict[str, Any]]] = mapped_column(JSONDoc, default=list)
    kpis: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    #: ``{shift_id: [[lon, lat], ...]}`` along the roads; deferred: only maps need it.
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, deferred=True)
    #: The solved problem without matrices (app.planning.codec), the start of a re-plan.
    problem: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, deferred=True)
    solve_time_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    district: Mapped[District] = relationship(lazy="raise")


class PlanEvent(Base):
    """Something that happened to a plan (sick call, cancellation, publication...)."""

    __tablename__ = "plan_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DayFactKind(enum.StrEnum):
    """What a stored fact of a day says about a carer or a client."""

    CARER_ABSENT = "carer_absent"
    CARER_AVAILABLE = "carer_available"
    CLIENT_UNAVAILABLE = "client_unavailable"


class DayFact(Base):
    """A carer's absence or extra hours, or a client's unavailability, on one date.

    Written by re-planning events in the transaction of the version they make; every later plan
    of the day (re-plan or fresh ``POST /v1/plans``) honours them, in ``id`` order.
    ``until_s`` None means "to the end of the day".
    """

    __tablename__ = "day_facts"
    __table_args__ = (
        Index("ix_day_facts_org_id_district_id_date", "org_id", "district_id", "date"),
        CheckConstraint("until_s IS NULL OR until_s > from_s", name="until_after_from"),
        CheckConstraint("(staff_id IS NULL) <> (client_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[DayFactKind] = mapped_column(_enum(DayFactKind, "day_fact_kind"))
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    from_s: Mapped[int] = mapped_column(Integer)
    until_s: Mapped[int | None] = mapped_column(Integer)
    #: The plan version whose events recorded the fact.
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SolveJob(Base):
    """A stored unit of background work (solve or re-plan); survives restarts."""

    __tablename__ = "solve_jobs"
    __table_args__ = (Index("ix_solve_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus, "job_status"), default=JobStatus.QUEUED
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    result_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --------------------------------------------------------------------------------------------
# Credentials, idempotency, audit, caches
# --------------------------------------------------------------------------------------------


class ApiKey(Base):
    """An integration credential. Only the SHA-256 of the key is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    #: The first characters of the key, to tell keys apart in listings and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    scopes: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class User(Base):
    """A person who signs in (planner, nurse, admin); nurses link to their staff row."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column()


class UserDistrict(Base):
    """The districts a planner may plan for."""

    __tablename__ = "user_districts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    district_id: Mapped[int] = mapped_column(
        ForeignKey("districts.id", ondelete="CASCADE"), primary_key=True
    )


class IdempotencyKey(Base):
    """A stored response for an ``Idempotency-Key``, replayed when the same request comes again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class AuditEntry(Base):
    """Who changed what: imports, events, publications, key changes (no health data)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_id_at", "org_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GeocodeCache(Base):
    """Geocoder answers, shared by all tenants.

    ``query_key`` is the SHA-256 of the normalised address query, so the cache holds no address
    text that could be linked back to a client.
    """

    __tablename__ = "geocode_cache"

    query_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeliveryStatus(enum.StrEnum):
    """Where a webhook delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookSubscription(Base):
    """A vendor's endpoint for plan-changed events.

    ``secret`` signs every delivery (HMAC-SHA256); it is stored as given because signing needs it,
    shown to the caller once at creation and never returned or logged afterwards.
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class WebhookDelivery(Base):
    """One event to send to one subscription (the outbox row) and how sending it went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
