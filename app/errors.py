"""Domain errors: what went wrong, in the domain's words; never an HTTP status.

app/api/errors.py maps each class to a status code and the common error body. Raise them as
``msg = "..."; raise X(msg)``. ``details`` lists problems with a location (a field path such as
``("visits", 3, "windows", 0, "end")``), a machine-readable code and a human message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem with one field of the input."""

    loc: Loc
    code: str
    msg: str
    #: Machine-readable facts about the problem (e.g. ``{"allowed": [...]}``); never input values.
    ctx: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def path(self) -> str:
        """The location as a readable path, e.g. ``visits[3].windows[0].end``."""
        return format_path(self.loc)


def format_path(loc: Sequence[str | int]) -> str:
    """Render ``("visits", 3, "windows", 0)`` as ``visits[3].windows[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class DomainError(Exception):
    """Base class of every error the service raises on purpose."""

    code = "error"

    def __init__(self, message: str, details: Sequence[ErrorDetail] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)


class InvalidInput(DomainError, ValueError):
    """The input is well-formed but breaks a rule (every bad row is in ``details``)."""

    code = "invalid_input"


class NotFound(DomainError, LookupError):
    """The resource does not exist in the caller's organisation."""

    code = "not_found"


class Conflict(DomainError):
    """The request conflicts with the stored state (a reference in use, a stale version...)."""

    code = "conflict"


class IdempotencyKeyReused(DomainError):
    """An ``Idempotency-Key`` was sent again with a different request body."""

    code = "idempotency_key_reused"


class Unauthenticated(DomainError):
    """No credential, or one that is unknown or revoked."""

    code = "unauthenticated"


class Forbidden(DomainError, PermissionError):
    """The credential is valid but lacks the role or scope for this action."""

    code = "forbidden"


class GeocodingFailed(DomainError):
    """An address could not be turned into coordinates."""

    code = "geocoding_failed"


class Unroutable(DomainError):
    """A location cannot be reached on the travel-mode graph."""

    code = "unroutable"


class InfeasibleVisit(DomainError):
    """A visit can never be planned as specified."""

    code = "infeasible_visit"


class RegionUnavailable(DomainError):
    """The road network and address index could not be loaded; the message says why."""

    code = "region_unavailable"


class SolverUnavailable(DomainError):
    """The solver's worker process died on this request twice; nothing was stored."""

    code = "solver_unavailable"


class PlanConflict(Conflict):
    """A plan change was based on a version that is no longer current."""

    code = "plan_conflict"
