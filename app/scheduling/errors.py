"""Errors raised by the scheduling core; each subclasses a built-in so callers can catch broadly."""

from __future__ import annotations


class InvalidProblem(ValueError):
    """The problem is malformed: unknown ids, bad indices, matrices that do not fit, bad options."""


class FixedStopConflict(ValueError):
    """Fixed (frozen) stops cannot all be kept: they overlap or contradict the shift or matrix."""


class SolverFailed(RuntimeError):
    """VROOM reported an error for an input the builder believed valid."""
