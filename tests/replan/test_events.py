"""Events validate their own fields and name the bad one."""

from __future__ import annotations

import pytest

from app.replan.errors import InvalidEventError
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerAvailable,
    CarerPositionReported,
    ClientUnavailable,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
    VisitDelayed,
    event_to_dict,
)
from app.scheduling.model import Visit

from .conftest import H, visit


class TestValidation:
    def test_absence_ending_before_it_starts_names_until_time(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            CarerAbsent("anna", 10 * H, 9 * H)
        assert err.value.field == "until_time"

    def test_negative_time_names_the_field(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            CarerAvailable("anna", -1, 9 * H)
        assert err.value.field == "from_time"

    def test_empty_id_names_the_field(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            VisitCancelled(" ")
        assert err.value.field == "visit_id"

    def test_actual_end_before_start_names_actual_end(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            ActualTimesReported("a1", 9 * H, 8 * H)
        assert err.value.field == "actual_end"

    def test_urgent_visit_without_window_names_windows(self) -> None:
        v = Visit(id="u", client_id="c", location=1, duration=600, windows=())
        with pytest.raises(InvalidEventError) as err:
            UrgentVisitAdded(v)
        assert err.value.field == "visit.windows"

    def test_non_integer_time_is_rejected(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            ClientUnavailable("c", 9 * H, 10.5 * H)  # type: ignore[arg-type]
        assert err.value.field == "until_time"

    def test_negative_position_names_location(self) -> None:
        with pytest.raises(InvalidEventError) as err:
            CarerPositionReported("anna", -3, 9 * H)
        assert err.value.field == "location"


class TestKinds:
    def test_each_event_type_has_its_own_kind(self) -> None:
        events: list[Event] = [
            CarerAbsent("anna", 10 * H),
            CarerAvailable("anna", 10 * H, 12 * H),
            VisitCancelled("a1"),
            UrgentVisitAdded(visit("u1", 3)),
            VisitDelayed("a1", 8 * H),
            ActualTimesReported("a1", 8 * H, 9 * H),
            ClientUnavailable("c", 9 * H, 10 * H),
            CarerPositionReported("anna", 2, 9 * H),
        ]
        kinds = [e.kind for e in events]
        assert len(set(kinds)) == len(kinds)

    def test_to_dict_is_plain_json(self) -> None:
        assert event_to_dict(CarerAbsent("anna", 10 * H)) == {
            "kind": "carer_absent",
            "staff_id": "anna",
            "from_time": 10 * H,
            "until_time": None,
        }
        urgent = event_to_dict(UrgentVisitAdded(visit("u1", 3, competences=("nurse",))))
        assert urgent["kind"] == "urgent_visit_added"
        assert urgent["visit"] == {
            "id": "u1",
            "client_id": "client-u1",
            "location": 3,
            "duration": 1800,
            "windows": [[7 * H, 16 * H]],
            "competences": ["nurse"],
            "priority": "mandatory",
            "carers_required": 1,
        }
