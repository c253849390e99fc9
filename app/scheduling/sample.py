"""A seeded, deterministic sample district: clients on real addresses, staff, shifts and visits.

Used by the demo data, the benchmarks and tests. Everything is a plain frozen dataclass, so the
API/seed code can store it as it is.

Competence vocabulary (NL levels; a carer at a higher level holds everything below it):

=========  ================================  =========================================
level      who                               competences held
=========  ================================  =========================================
level2     helpende (care helper)            level2
level3     verzorgende-IG (certified carer)  level2, level3, insulin, injection
level4     MBO nurse                         ... + level4, wound_care, catheter
level5     HBO nurse (district nurse)        ... + level5
=========  ================================  =========================================

A visit requires a level and possibly one act: basic care (washing/ADL, level2, most visits),
medication and insulin (level3 + insulin/injection), nursing acts (level4 + wound_care or
catheter) and a few level5 visits (assessment, palliative care).

Days: early shifts 07:00-15:00 with a 30-minute break in 11:00-13:30, late shifts 14:30-22:30
with a break in 17:30-19:30. Visits: 1-4 per client in a morning (peak), lunch, afternoon and
evening slot; a few double-staffed hoist visits (two carers at once) and a few second insulin
doses that depend on the morning one (4-10 hours later).

Locations (:func:`district_points`): staff homes first, then **one location per client** (clients
sharing a building get the same coordinates twice), so continuity penalties are per client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.domain import Address, LatLon, TravelMatrix, TravelMode
from app.scheduling.model import (
    Break,
    Dependency,
    Priority,
    Problem,
    Shift,
    TimeWindow,
    Visit,
)

H = 3600
M = 60
LEVELS = ("level2", "level3", "level4", "level5")
#: Competences held per level (cumulative).
HOLDS: Mapping[str, frozenset[str]] = {
    "level2": frozenset({"level2"}),
    "level3": frozenset({"level2", "level3", "insulin", "injection"}),
    "level4": frozenset(
        {"level2", "level3", "insulin", "injection", "level4", "wound_care", "catheter"}
    ),
    "level5": frozenset(
        {"level2", "level3", "insulin", "injection", "level4", "wound_care", "catheter", "level5"}
    ),
}


@dataclass(frozen=True, slots=True)
class SampleClient:
    """A client living at an address, with 2-3 preferred carers from the same area."""

    id: str
    address: Address
    area: int
    preferred_staff: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SampleStaff:
    """A carer with a level, competences, travel mode and home (start and end of the shift)."""

    id: str
    level: str
    competences: frozenset[str]
    mode: TravelMode
    home: Address
    area: int


@dataclass(frozen=True, slots=True)
class SampleShift:
    """A carer's shift on the sample day."""

    id: str
    staff_id: str
    kind: str
    start: int
    end: int
    breaks: tuple[Break, ...]


@dataclass(frozen=True, slots=True)
class SampleVisit:
    """A visit to a client on the sample day."""

    id: str
    client_id: str
    task: str
    duration: int
    windows: tuple[TimeWindow, ...]
    competences: frozenset[str]
    priority: Priority
    carers_required: int = 1
    depends_on: Dependency | None = None


@dataclass(frozen=True, slots=True)
class SampleDistrict:
    """Output of :func:`generate_district`."""

    seed: int
    clients: tuple[SampleClient, ...]
    staff: tuple[SampleStaff, ...]
    shifts: tuple[SampleShift, ...]
    visits: tuple[SampleVisit, ...]


#: task -> (required competences, (min, max) duration in minutes, share of visits)
TASKS: Mapping[str, tuple[frozenset[str], tuple[int, int]]] = {
    "personal_care": (frozenset({"level2"}), (20, 45)),
    "help_dressing": (frozenset({"level2"}), (10, 25)),
    "medication": (frozenset({"level3", "injection"}), (5, 15)),
    "insulin": (frozenset({"level3", "insulin"}), (10, 15)),
    "wound_care": (frozenset({"level4", "wound_care"}), (20, 40)),
    "catheter": (frozenset({"level4", "catheter"}), (20, 30)),
    "assessment": (frozenset({"level5"}), (30, 60)),
    "hoist_transfer": (frozenset({"level2"}), (20, 40)),
}
_TASK_P = {
    "personal_care": 0.45,
    "help_dressing": 0.2,
    "medication": 0.12,
    "insulin": 0.08,
    "wound_care": 0.06,
    "catheter": 0.04,
    "assessment": 0.02,
    "hoist_transfer": 0.03,
}
_SLOTS = {
    "morning": [
        (7 * H, 10 * H),
        (7 * H + 30 * M, 9 * H + 30 * M),
        (8 * H, 11 * H),
        (9 * H, 12 * H),
    ],
    "lunch": [(11 * H + 30 * M, 13 * H + 30 * M)],
    "afternoon": [(14 * H + 30 * M, 17 * H)],
    "evening": [(17 * H + 30 * M, 20 * H), (19 * H, 22 * H)],
}
_SLOTS_PER_COUNT = {
    1: ("morning",),
    2: ("morning", "evening"),
    3: ("morning", "lunch", "evening"),
    4: ("morning", "lunch", "afternoon", "evening"),
}


def _areas(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Tiny seeded k-means on (lat, lon): which area each point lies in."""
    centres = points[rng.choice(len(points), size=k, replace=False)]
    label = np.zeros(len(points), dtype=np.int64)
    for _ in range(10):
        dist = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        label = dist.argmin(axis=1)
        for c in range(k):
            if (label == c).any():
                centres[c] = points[label == c].mean(axis=0)
    return label


def _break_window(late: bool) -> TimeWindow:
    if late:
        return TimeWindow(17 * H + 30 * M, 19 * H + 30 * M)
    return TimeWindow(11 * H, 13 * H + 30 * M)


def _preferred(
    visits: Sequence[SampleVisit],
    team: Sequence[str],
    holds: Mapping[str, frozenset[str]],
    late_of: Mapping[str, bool],
    rng: np.random.Generator,
) -> tuple[str, ...]:
    """2-3 carers of the area team: qualified for the client's visits, covering early and late."""
    need = frozenset().union(*(v.competences for v in visits)) if visits else frozenset()
    late_needed = any(w.start >= 14 * H for v in visits for w in v.windows)
    early_needed = any(w.start < 14 * H for v in visits for w in v.windows)
    pool = [s for s in team if need <= holds[s]] or list(team) or list(holds)
    early = [s for s in pool if not late_of[s]]
    late = [s for s in pool if late_of[s]]
    chosen: list[str] = []
    if early_needed and early:
        chosen += rng.choice(early, size=min(2, len(early)), replace=False).tolist()
    if late_needed and late:
        chosen.append(str(rng.choice(late)))
    want = int(rng.integers(2, 4))
    for group in (pool, list(team), list(holds)):
        rest = [s for s in group if s not in chosen]
        if len(chosen) < want and rest:
            take = min(want - len(chosen), len(rest))
            chosen += rng.choice(rest, size=take, replace=False).tolist()
    return tuple(sorted(chosen[:3]))


def generate_district(
    addresses: Sequence[Address],
    *,
    visits: int,
    staff: int,
    seed: int,
    late_share: float = 0.35,
    bike_share: float = 0.4,
) -> SampleDistrict:
    """Generate a sample district day on real addresses.

    Parameters
    ----------
    addresses
        Addressed objects of a region (e.g. ``Region.addresses``); at least a few dozen.
    visits
        Number of visits to generate (exactly).
    staff
        Number of carers (each works one early or late shift).
    seed
        Random seed; the same inputs always give the same district.
    late_share, bike_share
        Share of late shifts and of carers on a bike (the others drive).

    Returns
    -------
    SampleDistrict
        Clients, staff, shifts and visits.
    """
    if visits < 1 or staff < 2:
        msg = f"need at least 1 visit and 2 staff, got {visits} and {staff}"
        raise ValueError(msg)
    if len(addresses) < 2:
        msg = "need at least 2 addresses"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    pts = np.asarray([(a.location.lat, a.location.lon) for a in addresses], dtype=float)
    n_areas = max(1, min(staff // 6, len(addresses) // 10, 12))
    area_of = _areas(pts, n_areas, rng)

    levels = rng.choice(LEVELS, size=staff, p=[0.3, 0.4, 0.2, 0.1]).tolist()
    levels[0], levels[1] = "level5", "level4"  # every district has nurses
    staff_rows = []
    for k in range(staff):
        area = k % n_areas
        homes = np.flatnonzero(area_of == area)
        home = (
            addresses[int(rng.choice(homes))]
            if homes.size
            else addresses[int(rng.integers(len(addresses)))]
        )
        mode = TravelMode.BIKE if rng.random() < bike_share else TravelMode.DRIVE
        staff_rows.append(
            SampleStaff(f"staff-{k + 1:03d}", levels[k], HOLDS[levels[k]], mode, home, area)
        )
    n_late = max(1, round(staff * late_share))
    late_ids = {s.id for s in staff_rows[-n_late:]}
    shifts = tuple(
        SampleShift(
            f"shift-{s.id}",
            s.id,
            "late" if s.id in late_ids else "early",
            14 * H + 30 * M if s.id in late_ids else 7 * H,
            22 * H + 30 * M if s.id in late_ids else 15 * H,
            (Break("break", (_break_window(s.id in late_ids),), 30 * M),),
        )
        for s in staff_rows
    )

    by_area: dict[int, list[str]] = {}
    for s in staff_rows:
        by_area.setdefault(s.area, []).append(s.id)
    clients: list[SampleClient] = []
    out: list[SampleVisit] = []
    tasks = list(_TASK_P)
    probs = np.asarray([_TASK_P[t] for t in tasks])
    late_of = {s.id: s.id in late_ids for s in staff_rows}
    holds = {s.id: s.competences for s in staff_rows}
    while len(out) < visits:
        c = len(clients)
        client_id = f"client-{c + 1:04d}"
        addr_i = int(rng.integers(len(addresses)))
        area = int(area_of[addr_i])
        count = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
        morning: SampleVisit | None = None
        mine: list[SampleVisit] = []
        slots = _SLOTS_PER_COUNT[count]
        if count == 1:
            slots = (str(rng.choice(["morning", "lunch", "afternoon"], p=[0.6, 0.15, 0.25])),)
        for slot in slots:
            if len(out) + len(mine) >= visits:
                break
            task = str(rng.choice(tasks, p=probs))
            comps, (lo, hi) = TASKS[task]
            a, b = _SLOTS[slot][int(rng.integers(len(_SLOTS[slot])))]
            windows = (TimeWindow(a, b),)
            if task == "insulin" and slot == "morning":
                windows = (TimeWindow(7 * H + 30 * M, 8 * H + 30 * M),)
            duration = int(rng.integers(lo, hi + 1)) * M
            dep = None
            if task == "insulin" and morning is not None and morning.task == "insulin":
                dep = Dependency(morning.id, min_gap=4 * H, max_gap=10 * H)
            optional = task in ("help_dressing", "personal_care") and rng.random() < 0.12
            v = SampleVisit(
                f"visit-{len(out) + len(mine) + 1:05d}",
                client_id,
                task,
                duration,
                windows,
                comps,
                Priority.OPTIONAL if optional else Priority.MANDATORY,
                carers_required=2 if task == "hoist_transfer" else 1,
                depends_on=dep,
            )
            if slot == "morning":
                morning = v
            mine.append(v)
        out.extend(mine)
        pref = _preferred(mine, by_area.get(area, []), holds, late_of, rng)
        clients.append(SampleClient(client_id, addresses[addr_i], area, pref))
    return SampleDistrict(seed, tuple(clients), tuple(staff_rows), shifts, tuple(out))


def district_points(district: SampleDistrict) -> list[LatLon]:
    """Locations of a district: staff homes first, then one per client (duplicates allowed)."""
    return [s.home.location for s in district.staff] + [
        c.address.location for c in district.clients
    ]


def to_problem(district: SampleDistrict, matrices: Mapping[str, TravelMatrix]) -> Problem:
    """Turn a sample district into a :class:`Problem`.

    Parameters
    ----------
    district
        Output of :func:`generate_district`.
    matrices
        One matrix per travel mode used by the staff (``"drive"``, ``"bike"``), each over
        :func:`district_points` in that order.

    Returns
    -------
    Problem
        Visits with the client's location and preferred staff, one shift per carer.
    """
    n_staff = len(district.staff)
    loc_of_client = {c.id: n_staff + i for i, c in enumerate(district.clients)}
    pref = {c.id: frozenset(c.preferred_staff) for c in district.clients}
    staff = {s.id: (i, s) for i, s in enumerate(district.staff)}
    visits = tuple(
        Visit(
            id=v.id,
            client_id=v.client_id,
            location=loc_of_client[v.client_id],
            duration=v.duration,
            windows=v.windows,
            competences=v.competences,
            priority=v.priority,
            carers_required=v.carers_required,
            preferred_staff=pref[v.client_id],
            depends_on=v.depends_on,
        )
        for v in district.visits
    )
    shifts = tuple(
        Shift(
            id=sh.id,
            staff_id=sh.staff_id,
            start=sh.start,
            end=sh.end,
            profile=staff[sh.staff_id][1].mode.value,
            competences=staff[sh.staff_id][1].competences,
            start_location=staff[sh.staff_id][0],
            end_location=staff[sh.staff_id][0],
            breaks=sh.breaks,
        )
        for sh in district.shifts
    )
    points = district_points(district)
    return Problem(visits, shifts, dict(matrices), locations=tuple(points))
