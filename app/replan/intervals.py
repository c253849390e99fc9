"""Half-open time intervals ``(start, end)`` in seconds: the arithmetic of availability.

Shared by the re-plan core (:mod:`app.replan.apply`) and by the stored facts of a day
(:mod:`app.planning.day_facts`), so an absence or extra hours mean the same in a re-plan and in
a fresh plan of the day.
"""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[int, int]


def subtract(intervals: Iterable[Interval], a: int, b: int) -> list[Interval]:
    """``intervals`` minus ``[a, b)``, in their order."""
    out: list[Interval] = []
    for s, e in intervals:
        if e <= a or b <= s:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if b < e:
            out.append((b, e))
    return out


def subtract_all(intervals: Iterable[Interval], cuts: Iterable[Interval]) -> list[Interval]:
    """``intervals`` minus every ``[a, b)`` of ``cuts``, in their order."""
    out = list(intervals)
    for a, b in cuts:
        out = subtract(out, a, b)
    return out


def union(intervals: Iterable[Interval], a: int, b: int) -> list[Interval]:
    """``intervals`` plus ``[a, b)``, merged and sorted."""
    merged: list[Interval] = []
    for s, e in sorted([*intervals, (a, b)]):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


__all__ = ["Interval", "subtract", "union"]
