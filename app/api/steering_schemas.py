"""Request and response bodies of manual steering: moves, recommendations and comparisons."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import PlanSummary
from app.store.inputs import ExternalId, TimeOfDay


class MoveRequest(BaseModel):
    """Move one visit to a carer, optionally at a start; a preview unless `preview` is false."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"visit": "V-1001@2026-11-25", "staff": "staff-004", "start": "10:30"}]
        },
    )

    visit: ExternalId = Field(description="Visit external id (planned or unassigned).")
    staff: ExternalId = Field(description="The carer who should make the visit.")
    start: TimeOfDay | None = Field(
        default=None, description="Start time; omitted: the cheapest place on the route."
    )
    pin: bool | None = Field(
        default=None,
        description="true: later re-plans keep the visit with this carer; false: unpin; "
        "omitted: unchanged.",
    )
    preview: bool = Field(default=True, description="false: store the move as a new version.")
    based_on_version: int | None = Field(
        default=None, ge=1, le=2_147_483_647, description="Instead of If-Match."
    )


class ViolationOut(BaseModel):
    """A rule the move would break, and where."""

    rule: str = Field(examples=["time_window"])
    visit: str | None
    shift: str | None
    message: str


class PlacementOut(BaseModel):
    """Where the visit goes: carer, shift, start, added travel and continuity."""

    staff: str
    shift: str
    start: str = Field(examples=["10:30"])
    travel_delta_s: int = Field(description="Travel of the whole day after minus before.")
    preferred: bool = Field(description="The carer is one of the client's preferred carers.")


class MovedVisitOut(BaseModel):
    """Another visit the move changes (carer or time)."""

    visit: str
    change: str = Field(examples=["retimed"])
    from_staff: list[str]
    to_staff: list[str]
    from_start: str | None
    to_start: str | None


class MoveOut(BaseModel):
    """The verdict on a move; `plan` is the new version when it was committed."""

    valid: bool
    violations: list[ViolationOut]
    travel_delta_s: int
    continuity: dict[str, bool | None] = Field(
        description="`before_preferred` (null when it was unassigned) and `after_preferred`."
    )
    placement: PlacementOut
    moved: list[MovedVisitOut]
    plan: PlanSummary | None


class RecommendationsOut(BaseModel):
    """The best valid placements of a visit, best first."""

    plan_id: int
    version: int
    visit: str | None = Field(description="The visit asked about (null for a new visit).")
    client: str | None = Field(description="A new visit's client (null for an existing one).")
    items: list[PlacementOut]


class CarerChangesOut(BaseModel):
    """One carer's changes in words, and the visit ids by kind."""

    staff: str
    lines: list[str] = Field(examples=[["V-7 moved from 09:00-09:30 to 10:15-10:45."]])
    added: list[str]
    removed: list[str]
    moved: list[str]


class CompareOut(BaseModel):
    """Two versions of one day, per carer."""

    district: str
    date: dt.date
    from_version: int
    to_version: int
    summary: str
    carers: list[CarerChangesOut]
