"""Home health care routing and scheduling (Mankowska et al. 2014) through the service's model.

Usage::

    python -m bench.hhcrsp [--dir DIR] [--only NAME,...] [--limit N] [--time-limit S]

``DIR/instances`` holds instances in the iolab JSON format (``.json`` or ``.json.gz``) and
``DIR/*.csv`` a best-known table with columns ``instance`` and ``bks``. Without solver options
the run uses the service's own solve options (``service_path`` true in the JSON).

Each instance becomes a :class:`app.scheduling.model.Problem`:

- one shift per caregiver from and back to the central office, its abilities as competences,
  open working day;
- one visit per required service of a patient, with the service's duration and competence; the
  patient's window ``[e, l]`` on the *start* of service becomes, as published, a hard earliest
  start ``e`` and a soft window (``Visit.due = l``: a later start is tardiness); with
  ``--windows hard`` it is kept hard (model window ``[e, l + duration]``);
- a patient needing two services gets two visits, the second depending on the first with gap
  ``[0, 0]`` (simultaneous) or ``[min, max]`` (sequential, the instance's ``distance``), both
  or neither (``Dependency.together``).

Travel time equals distance; times and distances are multiplied by ``--scale`` and rounded to
integers. The plan is then checked by :func:`check_solution`, written from the published
definition and sharing no code with ``app.scheduling.validate``, on the instance's own
(unrounded) distances, and scored with the published objective
``(distance + total tardiness + max tardiness) / 3``. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.domain import TravelMatrix
from app.scheduling import solve
from app.scheduling.model import Dependency, Plan, Problem, Shift, TimeWindow, Visit
from app.scheduling.options import is_service_path, service_options

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench" / "hhcrsp"
#: A caregiver's day is not bounded in the benchmark; this is far beyond every window.
HORIZON = 100_000.0
#: Rounding slack when the checker compares times (instance units).
EPS = 1e-3


@dataclass(frozen=True, slots=True)
class Service:
    """One service a patient needs: which ability and how long."""

    service: str
    duration: float


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient: location index (1-based in the matrix), window on the start, services."""

    id: str
    node: int
    early: float
    late: float
    services: tuple[Service, ...]
    #: "simultaneous", "sequential" or None (one service).
    sync: str | None = None
    gap_min: float = 0.0
    gap_max: float = 0.0


@dataclass(frozen=True, slots=True)
class Instance:
    """An HHCRSP instance: node 0 is the central office."""

    name: str
    patients: tuple[Patient, ...]
    caregivers: Mapping[str, frozenset[str]]
    distances: np.ndarray[Any, np.dtype[np.float64]]


def read_instance(path: Path) -> Instance:
    """Parse an iolab-format JSON instance (optionally gzipped).

    Parameters
    ----------
    path
        ``*.json`` or ``*.json.gz``.

    Returns
    -------
    Instance
        The patients (matrix index ``k + 1`` for the ``k``-th patient), caregivers and distances.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        raw = json.load(fh)
    patients = []
    for k, p in enumerate(raw["patients"]):
        sync = p.get("synchronization") or {}
        gap = sync.get("distance") or [0.0, 0.0]
        patients.append(
            Patient(
                id=str(p["id"]),
                node=k + 1,
                early=float(p["time_window"][0]),
                late=float(p["time_window"][1]),
                services=tuple(
                    Service(str(r["service"]), float(r["duration"]))
                    for r in p["required_caregivers"]
                ),
                sync=sync.get("type"),
                gap_min=float(gap[0]),
                gap_max=float(gap[1]),
            )
        )
    caregivers = {str(c["id"]): frozenset(map(str, c["abilities"])) for c in raw["caregivers"]}
    dist = np.asarray(raw["distances"], dtype=np.float64)
    name = path.name.removesuffix(".gz").removesuffix(".json")
    return Instance(name, tuple(patients), caregivers, dist)


def visit_id(patient: Patient, k: int) -> str:
    """Id of the visit doing the ``k``-th required service of ``patient``."""
    return f"{patient.id}/{k}"


def to_problem(inst: Instance, scale: int, *, soft: bool = True) -> Problem:
    """The service's :class:`Problem` for an instance (see the module docstring).

    ``soft``: the published rule, ``e`` hard and ``l`` a soft window (:attr:`Visit.due`, late
    starts allowed and counted as tardiness); otherwise ``[e, l]`` is a hard window.
    """
    d = np.rint(inst.distances * scale).astype(np.int64)
    visits: list[Visit] = []
    for p in inst.patients:
        for k, s in enumerate(p.services):
            dur = round(s.duration * scale)
            dep = None
            if k == 1:
                lo, hi = (0, 0) if p.sync == "simultaneous" else (p.gap_min, p.gap_max)
                dep = Dependency(
                    visit_id(p, 0), round(lo * scale), round(hi * scale), together=True
                )
            visits.append(
                Visit(
                    id=visit_id(p, k),
                    client_id=p.id,
                    location=p.node,
                    duration=dur,
                    windows=(
                        TimeWindow(
                            round(p.early * scale),
                            round(HORIZON * scale) if soft else round(p.late * scale) + dur,
                        ),
                    ),
                    due=round(p.late * scale) if soft else None,
                    competences=frozenset({s.service}),
                    depends_on=dep,
                )
            )
    shifts = tuple(
        Shift(
            id=cid,
            staff_id=cid,
            start=0,
            end=round(HORIZON * scale),
            competences=abilities,
            start_location=0,
            end_location=0,
        )
        for cid, abilities in inst.caregivers.items()
    )
    return Problem(visits=tuple(visits), shifts=shifts, matrices={"drive": TravelMatrix(d, d)})


# --------------------------------------------------------------------------- independent checker


@dataclass(frozen=True, slots=True)
class Operation:
    """One service operation of a solution: who, where, which service, when it starts."""

    caregiver: str
    patient: str
    service: str
    start: float


@dataclass(slots=True)
class Evaluation:
    """The published objective's parts and every rule the solution breaks."""

    distance: float = 0.0
    total_tardiness: float = 0.0
    max_tardiness: float = 0.0
    served: int = 0
    violations: list[str] | None = None

    @property
    def objective(self) -> float:
        """``(distance + total tardiness + max tardiness) / 3`` (Mankowska et al. 2014)."""
        return (self.distance + self.total_tardiness + self.max_tardiness) / 3.0


def check_solution(inst: Instance, routes: Mapping[str, Sequence[Operation]]) -> Evaluation:
    """Check caregiver routes against the HHCRSP definition and compute the objective.

    Rules (Mankowska, Meisel & Bierwirth 2014): each caregiver leaves the office, performs its
    operations in order and returns; an operation of service ``s`` needs a caregiver with ability
    ``s``; it starts no earlier than the patient's ``e`` and no earlier than the previous
    operation's end plus the travel distance; each required service of a served patient is done
    exactly once, a double service by two different caregivers, simultaneously (same start) or
    in sequence (second start minus first start within ``[min, max]``). Tardiness of an operation
    is ``max(0, start - l)``; the return to the office is not counted. A patient not served (some
    service missing) is reported by :attr:`Evaluation.served`, not as a violation.

    Parameters
    ----------
    inst
        The instance.
    routes
        Caregiver id -> operations in route order, with start times in instance units.

    Returns
    -------
    Evaluation
        Distance, total and max tardiness, patients served, violation messages.
    """
    out = Evaluation(violations=[])
    bad = out.violations
    assert bad is not None
    by_id = {p.id: p for p in inst.patients}
    done: dict[tuple[str, str], list[Operation]] = {}
    dist = inst.distances
    for cg, ops in routes.items():
        abilities = inst.caregivers.get(cg)
        if abilities is None:
            bad.append(f"unknown caregiver {cg}")
            continue
        node, free = 0, 0.0
        for op in ops:
            p = by_id.get(op.patient)
            if p is None:
                bad.append(f"{cg}: unknown patient {op.patient}")
                continue
            need = [s for s in p.services if s.service == op.service]
            if not need:
                bad.append(f"{cg}: patient {p.id} does not need service {op.service}")
                continue
            if op.service not in abilities:
                bad.append(f"{cg} lacks ability {op.service} for patient {p.id}")
            leg = float(dist[node, p.node])
            out.distance += leg
            if op.start < p.early - EPS:
                bad.append(f"{cg}: patient {p.id} starts {op.start:.3f} before e={p.early}")
            if op.start < free + leg - EPS:
                bad.append(f"{cg}: patient {p.id} starts before the caregiver can be there")
            tardiness = max(0.0, op.start - p.late)
            out.total_tardiness += tardiness
            out.max_tardiness = max(out.max_tardiness, tardiness)
            done.setdefault((p.id, op.service), []).append(op)
            node, free = p.node, op.start + need[0].duration
        out.distance += float(dist[node, 0])
    for p in inst.patients:
        per = [done.get((p.id, sv.service), []) for sv in p.services]
        if any(len(o) > 1 for o in per):
            bad.append(f"patient {p.id}: a service is performed more than once")
        if not all(per):
            if any(per):
                bad.append(f"patient {p.id}: only part of its services is performed")
            continue
        out.served += 1
        if len(per) == 2:
            a, b = per[0][0], per[1][0]
            if p.sync == "simultaneous" and a.caregiver == b.caregiver:
                bad.append(f"patient {p.id}: both services by caregiver {a.caregiver}")
            gap = b.start - a.start
            if p.sync == "simultaneous" and abs(gap) > EPS:
                bad.append(f"patient {p.id}: simultaneous services start {gap:.3f} apart")
            if p.sync == "sequential" and not p.gap_min - EPS <= gap <= p.gap_max + EPS:
                bad.append(
                    f"patient {p.id}: sequential gap {gap:.3f} outside [{p.gap_min}, {p.gap_max}]"
                )
    return out


def operations(inst: Instance, plan: Plan, scale: int) -> dict[str, list[Operation]]:
    """The plan's routes as benchmark operations (start times back in instance units)."""
    service_of = {
        visit_id(p, k): (p.id, s.service) for p in inst.patients for k, s in enumerate(p.services)
    }
    out: dict[str, list[Operation]] = {}
    for route in plan.routes:
        ops = out.setdefault(route.staff_id, [])
        for stop in route.stops:
            if stop.visit_id is None:
                continue
            patient, service = service_of[stop.visit_id]
            ops.append(Operation(route.staff_id, patient, service, stop.start / scale))
    return out


def load_bks(directory: Path) -> dict[str, float]:
    """Best-known objective by instance name (file name without ``.json``/``.gz``)."""
    out: dict[str, float] = {}
    for path in sorted(directory.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"instance", "bks"} <= set(reader.fieldnames):
                continue
            for row in reader:
                if row["bks"]:
                    name = row["instance"].removesuffix(".gz").removesuffix(".json")
                    out[name] = float(row["bks"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one row per instance and a JSON summary line."""
    ap = argparse.ArgumentParser(description="HHCRSP (Mankowska 2014) through the service's model")
    ap.add_argument("--dir", type=Path, default=DATA / "mankowska2014")
    ap.add_argument("--only", default="", help="comma-separated instance names (no extension)")
    ap.add_argument("--limit", type=int, default=0, help="first N instances (by size, then name)")
    ap.add_argument("--time-limit", type=float, default=None, help="default: the service's")
    ap.add_argument("--exploration", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--coupling-rounds", type=int, default=None)
    ap.add_argument("--improve", type=float, default=None)
    ap.add_argument("--scale", type=int, default=1000)
    ap.add_argument(
        "--windows",
        choices=("soft", "hard"),
        default="soft",
        help="soft: l is a due time (published rule); hard: [e, l] is a hard window",
    )
    args = ap.parse_args(argv)
    opts = service_options(
        time_limit_s=args.time_limit,
        exploration_level=args.exploration,
        threads=args.threads,
        coupling_rounds=args.coupling_rounds,
        improve_s=args.improve,
    )
    bks = load_bks(args.dir)
    files = [
        f for f in (args.dir / "instances").iterdir() if f.name.endswith((".json", ".json.gz"))
    ]

    def size_key(f: Path) -> tuple[int, int, str]:
        parts = f.name.split(".")[0].split("_")
        nums = [int(x) for x in parts if x.isdigit()]
        return (nums[0] if nums else 0, nums[-1] if nums else 0, f.name)

    files.sort(key=size_key)
    if args.only:
        keep = set(args.only.split(","))
        files = [f for f in files if f.name.split(".")[0] in keep]
    if args.limit:
        files = files[: args.limit]
    patients = served = complete = violations = 0
    gaps: list[float] = []
    times: list[float] = []
    print(f"{'instance':28} {'served':>8} {'objective':>10} {'bks':>9} {'gap%':>7} {'time_s':>7}")
    for f in files:
        inst = read_instance(f)
        problem = to_problem(inst, args.scale, soft=args.windows == "soft")
        t0 = time.perf_counter()
        plan = solve(problem, opts)
        elapsed = time.perf_counter() - t0
        ev = check_solution(inst, operations(inst, plan, args.scale))
        bad = ev.violations or []
        patients += len(inst.patients)
        served += ev.served
        violations += len(bad)
        times.append(elapsed)
        ref = bks.get(inst.name, math.nan)
        whole = ev.served == len(inst.patients)
        gap = 100.0 * (ev.objective - ref) / ref if whole and not bad else math.nan
        if whole and not bad:
            complete += 1
        if not math.isnan(gap):
            gaps.append(gap)
        print(
            f"{inst.name:28} {ev.served:3d}/{len(inst.patients):<4d} {ev.objective:10.2f} "
            f"{ref:9.2f} {gap:7.2f} {elapsed:7.2f}"
            + (f"  tardiness={ev.total_tardiness:.1f}" if ev.total_tardiness else "")
            + "".join(f"\n  VIOLATION {b}" for b in bad[:5])
        )
        sys.stdout.flush()
    summary = {
        "instances": len(files),
        "served_share": round(served / patients, 4) if patients else None,
        "complete_share": round(complete / len(files), 4) if files else None,
        "violations": violations,
        "mean_gap_pct": round(statistics.fmean(gaps), 3) if gaps else None,
        "median_gap_pct": round(statistics.median(gaps), 3) if gaps else None,
        "max_gap_pct": round(max(gaps), 3) if gaps else None,
        "mean_time_s": round(statistics.fmean(times), 3) if times else None,
        "service_path": is_service_path(opts),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
