"""Care-record rows as vendors send them, validated field by field (Pydantic v2).

The wire convention: times of day are ``"HH:MM"`` strings in the organisation's timezone
(``"24:00"`` is the end of the day), durations and gaps are whole minutes, dates are ISO
``YYYY-MM-DD``. Once validated, a time of day is held as integer seconds since local midnight, the
unit of the database and of :mod:`app.scheduling.model`. Rows refer to each other by the vendor's
``external_id``. Cross-field rules that need only the row itself (a window ending before it starts,
a visit longer than all of its windows) are checked here so that *every* bad row is reported in one
answer; rules that need the database (unknown references, the competence vocabulary) are checked by
:mod:`app.store.importing`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.functional_validators import BeforeValidator
from pydantic_core import PydanticCustomError

from app.store.models import (
    CoordinateSource,
    GeocodePrecision,
    Priority,
    TravelMode,
    VisitStatus,
)

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_ROWS = 50_000


def parse_time_of_day(value: Any) -> int:
    """``"07:30"`` -> 27000 seconds since midnight."""
    if not isinstance(value, str) or not _HHMM.match(value):
        raise PydanticCustomError(
            "time_of_day", 'time of day must be a "HH:MM" string between 00:00 and 24:00'
        )
    hours, minutes = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def format_time_of_day(seconds: int) -> str:
    """27000 -> ``"07:30"`` (seconds are rounded down to the minute)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


#: The planning range: dates of visits, shifts, templates, plans and date filters lie inside it.
#: Wide enough for any care record; narrow enough that date arithmetic never leaves the calendar.
MIN_DATE = dt.date(2000, 1, 1)
MAX_DATE = dt.date(2099, 12, 31)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_planning_date(value: Any) -> dt.date:
    """An ISO ``"YYYY-MM-DD"`` string (or a date) inside [:data:`MIN_DATE`, :data:`MAX_DATE`].

    Numbers and timestamps are refused: a lax parser reads ``0`` as 1970-01-01.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    elif isinstance(value, str) and _ISO_DATE.match(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_invalid", "no such date in the calendar") from None
    else:
        raise PydanticCustomError("date_format", 'a date must be an ISO "YYYY-MM-DD" string')
    if not MIN_DATE <= day <= MAX_DATE:
        raise PydanticCustomError(
            "date_out_of_range",
            f"the date must lie between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}",
        )
    return day


PlanningDate = Annotated[
    dt.date,
    BeforeValidator(parse_planning_date),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "description": f"ISO date between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}.",
        }
    ),
]

TimeOfDay = Annotated[
    int,
    BeforeValidator(parse_time_of_day),
    PlainSerializer(format_time_of_day, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$"}),
]
ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@~-]*$",
        description="The sending system's id (letters, digits and . _ : @ ~ -).",
        examples=["C-1042"],
    ),
]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Minutes = Annotated[int, Field(ge=1, le=24 * 60)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Coordinates(_Row):
    """A WGS84 point in decimal degrees."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, examples=[47.1410])
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, examples=[9.5209])


class Window(_Row):
    """A time window ``[start, end]``: the visit (or break) starts and ends inside it."""

    start: TimeOfDay = Field(examples=["07:30"])
    end: TimeOfDay = Field(examples=["08:30"])

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: int, info: ValidationInfo) -> int:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise PydanticCustomError(
                "window_end_before_start", "the window must end after it starts"
            )
        return end


def _longest(windows: list[Window] | None) -> int | None:
    return max((w.end - w.start for w in windows), default=None) if windows else None


def _fits_some_window(minutes: int, info: ValidationInfo, what: str) -> int:
    """``minutes`` if a ``what`` that long fits in at least one of the row's windows."""
    longest = _longest(info.data.get("windows"))
    if longest is not None and minutes * 60 > longest:
        raise PydanticCustomError(
            "duration_exceeds_windows",
            "the {what} is longer than every one of its windows",
            {"what": what},
        )
    return minutes


class PlaceAddress(_Row):
    """An address the care record gives for a place (where a carer's day starts or ends).

    ``geocode_quality`` and ``geocode_precision`` are filled in when the service geocodes the
    address; send them back as read to keep stored coordinates as they are.
    """

    street: Text200
    housenumber: str = Field(default="", max_length=32, description="May be empty.")
    postcode: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=100)
    geocode_quality: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    geocode_precision: GeocodePrecision | None = None


def _place_given(value: PlaceAddress | None, info: ValidationInfo, coordinates: str) -> Any:
    """Refuse a row that gives neither ``coordinates`` nor the address being validated."""
    # Only when the coordinates field itself was valid (and absent): a bad one is reported alone.
    if value is None and coordinates in info.data and info.data[coordinates] is None:
        raise PydanticCustomError(
            "place_missing",
            "give {coordinates} (coordinates) or {coordinates}_address",
            {"coordinates": coordinates},
        )
    return value


class DistrictIn(_Row):
    """A district (the unit a plan is made for)."""

    external_id: ExternalId
    name: Text200


class TeamIn(_Row):
    """A small fixed team of carers inside a district."""

    external_id: ExternalId
    name: Text200
    district: ExternalId


class StaffIn(_Row):
    """A carer: competences, travel mode, where the day starts and ends."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "S-7",
                    "name": "Anna Beck",
                    "district": "vaduz",
                    "team": "vaduz-north",
                    "competences": ["level3", "insulin"],
                    "travel_mode": "drive",
                    "start": {"lat": 47.1410, "lon": 9.5209},
                },
                {
                    "external_id": "S-8",
                    "name": "Jonas Marxer",
                    "district": "vaduz",
                    "competences": ["level2"],
                    "start_address": {
                        "street": "Aeulestrasse",
                        "housenumber": "5",
                        "postcode": "9490",
                        "city": "Vaduz",
                    },
                },
            ]
        }
    )

    external_id: ExternalId
    name: Text200
    district: ExternalId
    team: ExternalId | None = None
    competences: list[Code] = Field(default_factory=list, max_length=100)
    travel_mode: TravelMode = TravelMode.DRIVE
    start: Coordinates | None = Field(
        default=None, description="Where the day starts; wins over ``start_address``."
    )
    end: Coordinates | None = Field(
        default=None, description="Defaults to ``end_address``, else to the start."
    )
    active: bool = True
    start_address: PlaceAddress | None = Field(
        default=None,
        validate_default=True,
        description="Geocoded like a client's address when ``start`` is not given.",
    )
    end_address: PlaceAddress | None = Field(
        default=None, description="Geocoded when ``end`` is not given."
    )
    start_source: CoordinateSource | None = Field(
        default=None, description="Defaults to ``care_record`` when ``start`` is given."
    )
    end_source: CoordinateSource | None = Field(
        default=None, description="Defaults to ``care_record`` when ``end`` is given."
    )

    @field_validator("start_address")
    @classmethod
    def _start_given(cls, value: PlaceAddress | None, info: ValidationInfo) -> Any:
        return _place_given(value, info, "start")

    def __repr_args__(self) -> Any:
        # Never the addresses: where a carer lives is personal data.
        return [("external_id", self.external_id)]


class ClientIn(_Row):
    """A client. Coordinates from the care record win over geocoding; notes are never logged."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "C-1042",
                    "district": "vaduz",
                    "street": "Aeulestrasse",
                    "housenumber": "5",
                    "postcode": "9490",
                    "city": "Vaduz",
                    "coordinates": {"lat": 47.1398, "lon": 9.5215},
                    "preferred_carers": ["S-7"],
                    "display_name": "Mrs. M. Beck",
                }
            ]
        }
    )

    external_id: ExternalId
    district: ExternalId
    street: Text200
    housenumber: str = Field(
        default="",
        max_length=32,
        description="May be empty: the address is then geocoded to its street.",
    )
    postcode: str | None = Field(default=None, max_length=32)
    city: str | None = Field(default=None, max_length=100)
    coordinates: Coordinates | None = None
    coordinate_source: CoordinateSource | None = Field(
        default=None, description="Defaults to ``care_record`` when coordinates are given."
    )
    geocode_quality: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    preferred_carers: list[ExternalId] = Field(default_factory=list, max_length=50)
    allowed_team: ExternalId | None = Field(
        default=None, description="Hard continuity: only this team's carers may visit."
    )
    notes: str = Field(default="", max_length=10_000)
    active: bool = True
    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The name the carer's route shows. Health data: never logged.",
        examples=["Mrs. M. Beck"],
    )
    geocode_precision: GeocodePrecision | None = Field(
        default=None,
        description="Whether geocoded coordinates are the house (``address``) or only its "
        "street (``street``).",
    )

    def __repr_args__(self) -> Any:
        # Never the name, address or notes: reprs end up in logs and tracebacks.
        return [("external_id", self.external_id)]


class BreakIn(_Row):
    """A break of ``duration_minutes`` taken inside one of ``windows``."""

    windows: list[Window] = Field(min_length=1, max_length=5)
    duration_minutes: Minutes

    @field_validator("duration_minutes")
    @classmethod
    def _fits_a_window(cls, minutes: int, info: ValidationInfo) -> int:
        return _fits_some_window(minutes, info, "break")


class ShiftIn(_Row):
    """A staff member's working day (including travel from the start and back to the end)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "SH-7-2025-03-03",
                    "staff": "S-7",
                    "date": "2025-03-03",
                    "start": "07:00",
                    "end": "15:00",
                    "breaks": [
                        {"windows": [{"start": "11:30", "end": "13:00"}], "duration_minutes": 30}
                    ],
                }
            ]
        }
    )

    external_id: ExternalId
    staff: ExternalId
    date: PlanningDate
    start: TimeOfDay
    end: TimeOfDay
    breaks: list[BreakIn] = Field(default_factory=list, max_length=10)

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: int, info: ValidationInfo) -> int:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise PydanticCustomError(
                "shift_end_before_start", "the shift must end after it starts"
            )
        return end


class DependencyIn(_Row):
    """This visit starts between ``min_gap_minutes`` and ``max_gap_minutes`` after ``visit``."""

    visit: ExternalId
    min_gap_minutes: int = Field(default=0, ge=0, le=24 * 60)
    max_gap_minutes: int | None = Field(default=None, ge=0, le=24 * 60)

    @field_validator("max_gap_minutes")
    @classmethod
    def _max_not_below_min(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_gap_minutes")
        if value is not None and low is not None and value < low:
            raise PydanticCustomError(
                "gap_max_below_min", "max_gap_minutes is smaller than min_gap_minutes"
            )
        return value


class _VisitFields(_Row):
    windows: list[Window] = Field(min_length=1, max_length=10)
    duration_minutes: Minutes
    competences: list[Code] = Field(default_factory=list, max_length=50)
    priority: Priority = Priority.MANDATORY
    carers_required: Literal[1, 2] = 1

    @field_validator("duration_minutes")
    @classmethod
    def _fits_a_window(cls, minutes: int, info: ValidationInfo) -> int:
        return _fits_some_window(minutes, info, "visit")


class VisitIn(_VisitFields):
    """One dated visit."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "V-2025-03-03-1042-1",
                    "client": "C-1042",
                    "date": "2025-03-03",
                    "windows": [{"start": "07:30", "end": "08:30"}],
                    "duration_minutes": 15,
                    "competences": ["insulin"],
                    "priority": "mandatory",
                }
            ]
        }
    )

    external_id: ExternalId
    client: ExternalId
    date: PlanningDate
    pinned_carer: ExternalId | None = None
    depends_on: DependencyIn | None = None
    status: VisitStatus = VisitStatus.PLANNED
    template: ExternalId | None = None
    # Read-only (set by re-planning events, ignored on input so a GET can be PUT back as is).
    origin: Literal["import", "urgent"] = Field(
        default="import",
        description="Read-only. `urgent`: added by an `urgent_visit_added` event.",
    )
    actual_start: str | None = Field(
        default=None, description="Read-only. Reported start (`HH:MM`) of a started or done visit."
    )
    actual_end: str | None = Field(default=None, description="Read-only. Reported end (`HH:MM`).")
    actual_carer: str | None = Field(
        default=None, description="Read-only. The carer whose route held the reported visit."
    )


class VisitTemplateIn(_VisitFields):
    """A weekly recurring visit; ``POST /v1/visit-templates/expand`` makes dated visits of it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "external_id": "T-1042-insulin-am",
                    "client": "C-1042",
                    "weekdays": [1, 2, 3, 4, 5, 6, 7],
                    "windows": [{"start": "07:30", "end": "08:30"}],
                    "duration_minutes": 15,
                    "competences": ["insulin"],
                    "valid_from": "2025-03-01",
                }
            ]
        }
    )

    external_id: Annotated[ExternalId, Field(max_length=80)]
    client: ExternalId
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        min_length=1, max_length=7, description="ISO weekdays: 1 = Monday ... 7 = Sunday."
    )
    valid_from: PlanningDate
    valid_to: PlanningDate | None = None

    @field_validator("valid_to")
    @classmethod
    def _not_before_from(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise PydanticCustomError("valid_to_before_valid_from", "valid_to is before valid_from")
        return value


class ImportBatch(_Row):
    """One all-or-nothing batch: rows are upserted by ``external_id`` in dependency order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "districts": [{"external_id": "vaduz", "name": "Vaduz"}],
                    "staff": [
                        {
                            "external_id": "S-7",
                            "name": "Anna Beck",
                            "district": "vaduz",
                            "competences": ["level3", "insulin"],
                            "start": {"lat": 47.1410, "lon": 9.5209},
                        }
                    ],
                    "clients": [
                        {
                            "external_id": "C-1042",
                            "district": "vaduz",
                            "street": "Aeulestrasse",
                            "housenumber": "5",
                            "coordinates": {"lat": 47.1398, "lon": 9.5215},
                        }
                    ],
                    "visits": [
                        {
                            "external_id": "V-1",
                            "client": "C-1042",
                            "date": "2025-03-03",
                            "windows": [{"start": "07:30", "end": "08:30"}],
                            "duration_minutes": 15,
                            "competences": ["insulin"],
                        }
                    ],
                }
            ]
        }
    )

    districts: list[DistrictIn] = Field(default_factory=list, max_length=MAX_ROWS)
    teams: list[TeamIn] = Field(default_factory=list, max_length=MAX_ROWS)
    staff: list[StaffIn] = Field(default_factory=list, max_length=MAX_ROWS)
    clients: list[ClientIn] = Field(default_factory=list, max_length=MAX_ROWS)
    templates: list[VisitTemplateIn] = Field(default_factory=list, max_length=MAX_ROWS)
    visits: list[VisitIn] = Field(default_factory=list, max_length=MAX_ROWS)
    shifts: list[ShiftIn] = Field(default_factory=list, max_length=MAX_ROWS)
