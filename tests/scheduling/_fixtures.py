"""Small synthetic problems on a grid (travel seconds = 1 per 5 m) for fast scheduling tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.domain import TravelMatrix
from app.scheduling.model import Break, Problem, Shift, TimeWindow, Visit

H = 3600


def grid_matrix(n: int, seed: int = 0) -> TravelMatrix:
    """Euclidean travel over ``n`` random points in a 5 km square (seconds, metres)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 5000, size=(n, 2))
    metres = np.rint(np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)))
    dist = metres.astype(np.int64)
    return TravelMatrix(np.rint(dist / 5).astype(np.int64), dist)


def shift(
    k: int,
    *,
    competences: Sequence[str] = ("level2",),
    start: int = 7 * H,
    end: int = 15 * H,
    breaks: bool = True,
    staff: str | None = None,
) -> Shift:
    """Shift ``sh<k>`` of staff ``s<k>`` starting and ending at location ``k``."""
    brk = (Break("lunch", (TimeWindow(11 * H, 13 * H),), 1800),) if breaks else ()
    return Shift(
        f"sh{k}",
        staff or f"s{k}",
        start,
        end,
        competences=frozenset(competences),
        start_location=k,
        end_location=k,
        breaks=brk,
    )


def visits(first_loc: int, n: int, **kw: object) -> list[Visit]:
    """``n`` 20-minute basic visits at locations ``first_loc..`` with a 07:00-12:00 window."""
    out = []
    for i in range(n):
        loc = first_loc + i
        out.append(
            Visit(
                f"v{loc}",
                f"c{loc}",
                loc,
                1200,
                (TimeWindow(7 * H, 12 * H),),
                **kw,  # type: ignore[arg-type]
            )
        )
    return out


def problem(vs: Sequence[Visit], shifts: Sequence[Shift], n_locations: int = 30) -> Problem:
    """A problem over a random grid matrix under profile ``drive``."""
    return Problem(tuple(vs), tuple(shifts), {"drive": grid_matrix(n_locations)})
