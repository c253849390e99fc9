"""Errors raised in solver worker processes come back to the service intact.

A routing error whose pickled form could not be rebuilt (``cls(message)`` without the keyword
arguments) made the process pool count the worker as dead: every later plan and re-plan answered
500 (simulator: a position report near a road cut off from the network).
"""

from __future__ import annotations

import inspect
import pickle

import pytest

import app.errors
import app.replan.errors
import app.scheduling.errors
from app.routing import OffRoadLocation, UnreachableLocation


@pytest.mark.parametrize(
    "exc",
    [
        OffRoadLocation([("c1", 80.0), ("c2", 95.0)], mode="drive", limit_m=50),
        UnreachableLocation("location 28", mode="drive", distance_m=18),
    ],
    ids=["off_road", "unreachable"],
)
def test_routing_errors_survive_pickling(exc: Exception) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert vars(back) == vars(exc)


@pytest.mark.parametrize("module", [app.errors, app.replan.errors, app.scheduling.errors])
def test_every_error_with_a_message_survives_pickling(module: object) -> None:
    for _name, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, Exception) or cls.__module__ != module.__name__:  # type: ignore[attr-defined]
            continue
        try:
            exc = cls("something broke")
        except TypeError:
            continue  # needs more than a message: covered by its own tests
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is cls
        assert str(back) == str(exc)
