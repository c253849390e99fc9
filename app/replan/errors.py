"""Errors raised by the re-planning core; each subclasses a built-in so callers can catch broadly.

The API layer maps them to HTTP status codes in one place; nothing here knows about HTTP.
"""

from __future__ import annotations


class InvalidEventError(ValueError):
    """An event is malformed: a field is missing, negative, or out of order.

    Parameters
    ----------
    field
        Name of the offending field (for the API's error body).
    message
        A sentence that names the field and the bad value.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownReferenceError(LookupError):
    """An event names a visit, staff member, client or location the plan does not contain."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        # LookupError would repr() a single argument; keep the sentence readable.
        return str(self.args[0])


class EventConflictError(ValueError):
    """An event contradicts the plan or an earlier event (e.g. cancelling a started visit)."""


class FrozenStopChangedError(RuntimeError):
    """The solver moved a stop that re-planning had frozen, and it could not be repaired."""


class InvalidArgumentError(ValueError):
    """A parameter of a pure helper (freeze window, retry policy, signature header) is invalid."""
