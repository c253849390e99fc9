"""Response models and the ORM -> API conversions.

A resource is returned in the same shape it is imported in (so a GET can be PUT back unchanged),
plus read-only fields (``created_at``, ``updated_at``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from app.store.inputs import (
    ClientIn,
    DistrictIn,
    ShiftIn,
    StaffIn,
    TeamIn,
    VisitIn,
    VisitTemplateIn,
    format_time_of_day,
)
from app.store.models import PlanStatus
from app.store.repositories import Row


class Stamps(BaseModel):
    """Read-only bookkeeping."""

    created_at: dt.datetime
    updated_at: dt.datetime


class DistrictOut(DistrictIn, Stamps):
    """A stored district."""


class TeamOut(TeamIn, Stamps):
    """A stored team."""


class StaffOut(StaffIn, Stamps):
    """A stored staff member."""


class ClientOut(ClientIn, Stamps):
    """A stored client."""


class ShiftOut(ShiftIn, Stamps):
    """A stored shift."""


class VisitOut(VisitIn, Stamps):
    """A stored visit."""


class VisitTemplateOut(VisitTemplateIn, Stamps):
    """A stored visit template."""


class PageInfo(BaseModel):
    """Pagination of a list answer."""

    total: int = Field(description="Matches over all pages.", examples=[1234])
    limit: int = Field(examples=[100])
    offset: int = Field(examples=[0])


class DistrictPage(PageInfo):
    """A page of districts."""

    items: list[DistrictOut]


class TeamPage(PageInfo):
    """A page of teams."""

    items: list[TeamOut]


class StaffPage(PageInfo):
    """A page of staff."""

    items: list[StaffOut]


class ClientPage(PageInfo):
    """A page of clients."""

    items: list[ClientOut]


class ShiftPage(PageInfo):
    """A page of shifts."""

    items: list[ShiftOut]


class VisitPage(PageInfo):
    """A page of visits."""

    items: list[VisitOut]


class VisitTemplatePage(PageInfo):
    """A page of visit templates."""

    items: list[VisitTemplateOut]


class PlanSummary(BaseModel):
    """A plan version without its routes."""

    id: int
    district: str
    date: dt.date
    version: int
    status: PlanStatus
    based_on_version: int | None
    kpis: dict[str, Any]
    solve_time_s: float
    created_at: dt.datetime
    created_by: str


class PlanOut(PlanSummary):
    """A plan version with routes and unassigned visits (as stored by the planner)."""

    routes: list[dict[str, Any]]
    unassigned: list[dict[str, Any]]
    diff: dict[str, Any] | None


class PlanPage(PageInfo):
    """A page of plan versions (summaries)."""

    items: list[PlanSummary]


def _windows(windows: list[list[int]]) -> list[dict[str, str]]:
    return [{"start": format_time_of_day(s), "end": format_time_of_day(e)} for s, e in windows]


def _time_or_none(seconds: int | None) -> str | None:
    return None if seconds is None else format_time_of_day(seconds)


def _stamps(obj: Any) -> dict[str, Any]:
    return {"created_at": obj.created_at, "updated_at": obj.updated_at}


def district_out(row: Row) -> DistrictOut:
    """API view of a district row."""
    d = row.obj
    return DistrictOut.model_validate({"external_id": d.external_id, "name": d.name, **_stamps(d)})


def team_out(row: Row) -> TeamOut:
    """API view of a team row."""
    t = row.obj
    return TeamOut.model_validate(
        {"external_id": t.external_id, "name": t.name, **row.refs, **_stamps(t)}
    )


def staff_out(row: Row) -> StaffOut:
    """API view of a staff row."""
    s = row.obj
    return StaffOut.model_validate(
        {
            "external_id": s.external_id,
            "name": s.name,
            "district": row.refs["district"],
            "team": row.refs["team"],
            "competences": s.competences,
            "travel_mode": s.travel_mode,
            "start": {"lat": s.start_lat, "lon": s.start_lon},
            "end": {"lat": s.end_lat, "lon": s.end_lon},
            "active": s.active,
            "start_address": s.start_address,
            "end_address": s.end_address,
            "start_source": s.start_source,
            "end_source": s.end_source,
            **_stamps(s),
        }
    )


def client_out(row: Row) -> ClientOut:
    """API view of a client row."""
    c = row.obj
    coords = None if c.lat is None or c.lon is None else {"lat": c.lat, "lon": c.lon}
    return ClientOut.model_validate(
        {
            "external_id": c.external_id,
            "district": row.refs["district"],
            "street": c.street,
            "housenumber": c.housenumber,
            "postcode": c.postcode,
            "city": c.city,
            "coordinates": coords,
            "coordinate_source": c.coordinate_source,
            "geocode_quality": c.geocode_quality,
            "preferred_carers": row.refs["preferred_carers"],
            "allowed_team": row.refs["allowed_team"],
            "notes": c.notes,
            "active": c.active,
            "display_name": c.display_name,
            "geocode_precision": c.geocode_precision,
            **_stamps(c),
        }
    )


def shift_out(row: Row) -> ShiftOut:
    """API view of a shift row."""
    s = row.obj
    return ShiftOut.model_validate(
        {
            "external_id": s.external_id,
            "staff": row.refs["staff"],
            "date": s.date,
            "start": format_time_of_day(s.start_s),
            "end": format_time_of_day(s.end_s),
            "breaks": [
                {"windows": _windows(b["windows"]), "duration_minutes": b["duration_s"] // 60}
                for b in s.breaks
            ],
            **_stamps(s),
        }
    )


def _visit_fields(v: Any) -> dict[str, Any]:
    return {
        "windows": _windows(v.windows),
        "duration_minutes": v.duration_s // 60,
        "competences": v.competences,
        "priority": v.priority,
        "carers_required": v.carers_required,
    }


def visit_out(row: Row) -> VisitOut:
    """API view of a visit row."""
    v = row.obj
    dep = None
    if row.refs["depends_on"] is not None:
        dep = {
            "visit": row.refs["depends_on"],
            "min_gap_minutes": (v.dependency_min_gap_s or 0) // 60,
            "max_gap_minutes": (
                None if v.dependency_max_gap_s is None else v.dependency_max_gap_s // 60
            ),
        }
    return VisitOut.model_validate(
        {
            "external_id": v.external_id,
            "client": row.refs["client"],
            "date": v.date,
            **_visit_fields(v),
            "pinned_carer": row.refs["pinned_carer"],
            "depends_on": dep,
            "status": v.status,
            "template": row.refs["template"],
            "origin": v.origin,
            "actual_start": _time_or_none(v.actual_start_s),
            "actual_end": _time_or_none(v.actual_end_s),
            "actual_carer": row.refs.get("actual_carer"),
            **_stamps(v),
        }
    )


def template_out(row: Row) -> VisitTemplateOut:
    """API view of a visit template row."""
    t = row.obj
    return VisitTemplateOut.model_validate(
        {
            "external_id": t.external_id,
            "client": row.refs["client"],
            "weekdays": t.weekdays,
            **_visit_fields(t),
            "valid_from": t.valid_from,
            "valid_to": t.valid_to,
            **_stamps(t),
        }
    )


def plan_summary(row: Row) -> PlanSummary:
    """API view of a plan row without routes."""
    p = row.obj
    return PlanSummary(
        id=p.id,
        district=row.refs["district"],
        date=p.date,
        version=p.version,
        status=p.status,
        based_on_version=p.based_on_version,
        kpis=p.kpis,
        solve_time_s=p.solve_time_s,
        created_at=p.created_at,
        created_by=p.created_by,
    )


def plan_out(row: Row) -> PlanOut:
    """API view of a plan row with routes."""
    p = row.obj
    return PlanOut(
        **plan_summary(row).model_dump(), routes=p.routes, unassigned=p.unassigned, diff=p.diff
    )
