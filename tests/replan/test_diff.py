"""Mutation counting on hand-built plans: carer change, >1 h start move, order change, unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.replan.diff import diff_plans
from app.replan.errors import InvalidArgumentError
from app.scheduling.model import Plan, Problem, Unassigned, UnassignedReason

from .conftest import H, build_route


def _plan(problem: Problem, routes: dict[str, list[tuple[str, int]]]) -> Plan:
    return Plan(
        routes=tuple(build_route(problem, sid, stops) for sid, stops in routes.items()),
        unassigned=(),
    )


BASE = {
    "s-anna": [("a1", 8 * H), ("a2", 9 * H), ("a3", 10 * H + 1800), ("a4", 12 * H)],
    "s-bert": [("b1", 8 * H), ("b2", 9 * H + 1800), ("b3", 11 * H), ("b4", 13 * H)],
    "s-cora": [("c1", 8 * H), ("c2", 9 * H), ("c3", 11 * H), ("c4", 13 * H)],
}


class TestDiff:
    def test_identical_plans_have_no_changes(self, district: tuple[Problem, Plan]) -> None:
        problem, plan = district
        d = diff_plans(plan, _plan(problem, BASE))
        assert d.mutations == 0
        assert d.affected_staff == ()
        assert d.added == d.removed == ()
        assert all(c.mutations == 0 and not c.affected for c in d.carers)

    def test_carer_change_is_one_mutation_for_both_carers(
        self, district: tuple[Problem, Plan]
    ) -> None:
        problem, plan = district
        routes = {**BASE, "s-anna": BASE["s-anna"][:3]}
        routes["s-bert"] = [*BASE["s-bert"], ("a4", 14 * H)]
        d = diff_plans(plan, _plan(problem, routes))
        assert d.resource_changed == ("a4",)
        assert d.mutated == ("a4",)
        assert d.mutations == 1
        anna, bert, cora = (d.carer(s) for s in ("anna", "bert", "cora"))
        assert anna is not None
        assert bert is not None
        assert cora is not None
        assert anna.moved_out == ("a4",)
        assert anna.mutations == 1
        assert bert.moved_in == ("a4",)
        assert bert.mutations == 1
        assert d.affected_staff == ("anna", "bert")
        assert not cora.affected

    def test_start_moved_more_than_an_hour_is_a_mutation(
        self, district: tuple[Problem, Plan]
    ) -> None:
        problem, plan = district
        later = {**BASE, "s-cora": [*BASE["s-cora"][:3], ("c4", 14 * H + 60)]}
        d = diff_plans(plan, _plan(problem, later))
        assert d.start_moved == ("c4",)
        assert d.mutations == 1
        assert d.affected_staff == ("cora",)

    def test_start_moved_exactly_the_threshold_is_not_a_mutation_but_affects(
        self, district: tuple[Problem, Plan]
    ) -> None:
        problem, plan = district
        later = {**BASE, "s-cora": [*BASE["s-cora"][:3], ("c4", 14 * H)]}
        d = diff_plans(plan, _plan(problem, later))
        assert d.mutations == 0
        assert d.affected_staff == ("cora",)
        assert diff_plans(plan, _plan(problem, later), start_threshold_s=1800).mutations == 1

    def test_moving_one_visit_to_the_end_is_one_order_change(
        self, district: tuple[Problem, Plan]
    ) -> None:
        problem, plan = district
        reordered = {
            **BASE,
            "s-bert": [("b2", 8 * H), ("b3", 9 * H), ("b4", 10 * H), ("b1", 11 * H)],
        }
        d = diff_plans(plan, _plan(problem, reordered), start_threshold_s=10 * H)
        assert d.order_changed == ("b1",)
        assert d.mutations == 1

    def test_swapping_neighbours_is_one_order_change(self, district: tuple[Problem, Plan]) -> None:
        problem, plan = district
        swapped = {
            **BASE,
            "s-anna": [("a2", 8 * H), ("a1", 9 * H), ("a3", 10 * H + 1800), ("a4", 12 * H)],
        }
        d = diff_plans(plan, _plan(problem, swapped))
        assert len(d.order_changed) == 1
        assert set(d.order_changed) <= {"a1", "a2"}

    def test_a_visit_with_several_changes_counts_once(self, district: tuple[Problem, Plan]) -> None:
        problem, plan = district
        routes = {**BASE, "s-anna": BASE["s-anna"][1:]}
        routes["s-bert"] = [("a1", 7 * H + 1800), *BASE["s-bert"][1:], ("b1", 14 * H)]
        d = diff_plans(plan, _plan(problem, routes))
        assert set(d.resource_changed) == {"a1"}
        assert "b1" in d.start_moved
        assert "b1" in d.order_changed
        assert d.mutations == 2

    def test_added_and_removed_are_not_mutations(self, district: tuple[Problem, Plan]) -> None:
        problem, plan = district
        routes = {**BASE, "s-anna": BASE["s-anna"][:3]}
        new = _plan(problem, routes)
        new = replace(new, unassigned=(Unassigned("a4", UnassignedReason.CANCELLED, "cancelled"),))
        d = diff_plans(plan, new)
        assert d.removed == ("a4",)
        assert d.mutations == 0
        assert d.affected_staff == ("anna",)
        back = diff_plans(new, plan)
        assert back.added == ("a4",)

    def test_to_dict_is_json_ready(self, district: tuple[Problem, Plan]) -> None:
        problem, plan = district
        d = diff_plans(plan, _plan(problem, BASE)).to_dict()
        assert d["mutations"] == 0
        assert isinstance(d["carers"], list)
        assert len(d["carers"]) == 3

    def test_negative_threshold_is_refused(self, district: tuple[Problem, Plan]) -> None:
        _, plan = district
        with pytest.raises(InvalidArgumentError):
            diff_plans(plan, plan, start_threshold_s=-1)
