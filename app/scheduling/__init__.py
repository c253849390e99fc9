"""Scheduling core: problem -> VROOM -> plan, independent validation, explanations and KPIs.

The only package that imports vroom; never imports a web framework or an ORM.
"""

from app.scheduling._timing import with_matrix_distances
from app.scheduling.explain import explain_one, explain_unassigned, qualified_shifts
from app.scheduling.kpis import compute_kpis, route_kpis
from app.scheduling.solver import check_problem, prefer_mandatory, solve
from app.scheduling.validate import Violation, ViolationKind, validate

__all__ = [
    "Violation",
    "ViolationKind",
    "check_problem",
    "compute_kpis",
    "explain_one",
    "explain_unassigned",
    "prefer_mandatory",
    "qualified_shifts",
    "route_kpis",
    "solve",
    "validate",
    "with_matrix_distances",
]
