"""Two versions of a district's day side by side, per carer, in plain words.

The changes are the ones a re-plan's diff reports (:func:`app.replan.changes.describe_changes`
with no events), so a comparison and a re-plan's answer never disagree; this module only words
them per carer: a visit handed from one carer to another appears on both carers' lists.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from app.planning import codec
from app.replan.changes import Placement, VisitChange, describe_changes
from app.store.inputs import format_time_of_day
from app.store.models import Plan


@dataclass(frozen=True)
class CarerChanges:
    """What one carer's day gained, lost or had moved, in words and as visit ids."""

    staff: str
    lines: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    moved: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """Every carer whose day differs, and one summary line."""

    summary: str
    carers: tuple[CarerChanges, ...]


def _span(p: Placement) -> str:
    return f"{format_time_of_day(p.start)}-{format_time_of_day(p.end)}"


def compare_versions(old: Plan, new: Plan) -> Comparison:
    """The per-carer changes from stored version ``old`` to stored version ``new``."""
    before = codec.plan_from_docs(old.routes, old.unassigned, old.kpis, old.solve_time_s)
    after = codec.plan_from_docs(new.routes, new.unassigned, new.kpis, new.solve_time_s)
    changes = describe_changes(before, after, ())
    lines: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in changes.visits:
        for staff, kind, text in _words(c):
            lines[staff].append(text)
            kinds[staff][kind].append(c.visit_id)
    carers = tuple(
        CarerChanges(
            staff=s,
            lines=tuple(lines[s]),
            added=tuple(kinds[s]["added"]),
            removed=tuple(kinds[s]["removed"]),
            moved=tuple(kinds[s]["moved"]),
        )
        for s in sorted(lines)
    )
    body = changes.summary.split(": ", 1)[-1]
    return Comparison(f"Version {old.version} to version {new.version}: {body}", carers)


def _words(c: VisitChange) -> list[tuple[str, str, str]]:
    """(carer, kind for that carer, sentence) for each carer the change concerns."""
    v, old, new = c.visit_id, c.old, c.new
    if old is not None and new is not None:
        if old.staff == new.staff:
            return [
                (s, "moved", f"{v} moved from {_span(old)} to {_span(new)}.") for s in new.staff
            ]
        out = []
        for s in old.staff:
            if s not in new.staff:
                to = " and ".join(new.staff)
                out.append((s, "removed", f"{v} ({_span(old)}) handed to {to}, {_span(new)}."))
        for s in new.staff:
            if s not in old.staff:
                was = " and ".join(old.staff)
                out.append(
                    (s, "added", f"{v} taken over from {was}: {_span(new)} (was {_span(old)}).")
                )
        return out
    if new is not None:
        return [(s, "added", f"{v} added at {_span(new)}.") for s in new.staff]
    if old is None:
        return []
    why = {
        "cancelled": "cancelled",
        "unassigned": f"left without a carer ({c.detail.rstrip('.')})"
        if c.detail
        else "left without a carer",
    }.get(c.change, "removed")
    return [(s, "removed", f"{v} ({_span(old)}) {why}.") for s in old.staff]
