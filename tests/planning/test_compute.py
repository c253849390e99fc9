"""The worker-side pipeline without a database: problem building, reasons, JSON round trips."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from app.domain import UNREACHABLE
from app.planning import codec
from app.planning.compute import build_problem, compute_plan
from app.planning.inputs import ClientIn, PlanInput, PlanOptions, ShiftIn, StaffIn, VisitIn
from app.planning.pool import get_region
from app.routing import Region
from app.scheduling import solve, validate
from app.scheduling.model import SolveOptions
from app.settings import Settings

H = 3600
OPTIONS = PlanOptions(time_limit_s=1, exploration_level=5, threads=1, continuity_penalty_s=900)


def _input(region: Region) -> PlanInput:
    a = region.addresses
    clients = (
        ClientIn("c1", a[10].location.lat, a[10].location.lon, preferred_staff=("s1",)),
        ClientIn("c2", a[20].location.lat, a[20].location.lon),
        ClientIn("no-coords", None, None),
        ClientIn("far", 47.02, 9.62),
    )
    home = (a[0].location.lat, a[0].location.lon)
    staff = (
        StaffIn("s1", ("level2", "level3"), "drive", home, home),
        StaffIn("s2", ("level2",), "bike", home, home),
    )
    shifts = (ShiftIn("sh1", "s1", 7 * H, 15 * H), ShiftIn("sh2", "s2", 7 * H, 15 * H))

    def visit(vid: str, client: str) -> VisitIn:
        return VisitIn(vid, client, ((8 * H, 12 * H),), 1800, ("level2",), "mandatory")

    visits = (
        visit("v1", "c1"),
        visit("v2", "c2"),
        visit("v3", "no-coords"),
        visit("v4", "far"),
    )
    return PlanInput(1, 1, "d", dt.date(2026, 12, 1), clients, staff, shifts, visits)


def test_build_problem_has_one_location_per_client_and_marks_unusable_ones(region: Region) -> None:
    built = build_problem(_input(region), region)
    p = built.problem
    assert set(p.matrices) == {"drive", "bike"}
    # One shared staff home, then c1, c2 and "far"; the client without coordinates has none.
    assert len(p.locations) == 4
    by_id = {v.id: v for v in p.visits}
    assert by_id["v3"].geocoded is False
    assert "far" in built.unreachable_clients
    far = by_id["v4"].location
    for m in p.matrices.values():
        assert int(m.durations[0, far]) == UNREACHABLE
        assert int(m.durations[far, far]) == 0
    assert by_id["v1"].preferred_staff == frozenset({"s1"})


def test_compute_plan_gives_reasons_naming_the_client_and_a_valid_plan(region: Region) -> None:
    result = compute_plan(_input(region), region, OPTIONS)
    reasons = {u["visit"]: u for u in result.unassigned}
    assert reasons["v3"]["reason"] == "not_geocoded"
    assert reasons["v4"]["reason"] == "unreachable"
    assert "far" in reasons["v4"]["detail"]
    planned = {s["visit"] for r in result.routes for s in r["stops"] if s["visit"]}
    assert planned == {"v1", "v2"}
    assert set(result.geometry) == {r["shift"] for r in result.routes}
    assert result.kpis["unassigned_unreachable"] == 1


def test_problem_and_plan_survive_their_json_round_trip(region: Region) -> None:
    problem = build_problem(_input(region), region).problem
    plan = solve(problem, SolveOptions(time_limit_s=1, threads=1))
    doc = codec.problem_to_doc(problem)
    again = codec.problem_from_doc(doc, problem.matrices)
    assert again.visits == problem.visits
    assert again.shifts == problem.shifts
    assert again.locations == problem.locations
    stored = codec.plan_from_docs(
        codec.routes_to_doc(problem, plan), codec.unassigned_to_doc(problem, plan), plan.kpis
    )
    assert stored.routes == plan.routes
    assert stored.unassigned == plan.unassigned
    assert validate(again, stored) == []


def test_a_carer_whose_mode_is_not_loaded_keeps_an_empty_route_with_a_warning() -> None:
    """REGION_MODES=drive: the bike carer plans nothing (a warning says why), drive carries on."""
    settings = Settings(dev_mode=True)
    if not settings.region_file.is_file():
        pytest.skip(f"shared OSM data not found at {settings.region_file}")
    drive_only = get_region(settings.region_file, settings.osm_cache_dir, ("drive",))
    built = build_problem(_input(drive_only), drive_only)
    assert any("s2" in w and "bike" in w and "REGION_MODES" in w for w in built.warnings)
    bike = built.problem.matrices["bike"]
    off_diagonal = ~np.eye(bike.size, dtype=bool)
    assert (bike.durations[off_diagonal] == UNREACHABLE).all()
    result = compute_plan(_input(drive_only), drive_only, OPTIONS)
    by_shift = {r["shift"]: r for r in result.routes}
    assert not [s for s in by_shift.get("sh2", {"stops": []})["stops"] if s["visit"]]
    planned = {s["visit"] for r in result.routes for s in r["stops"] if s["visit"]}
    assert planned == {"v1", "v2"}
