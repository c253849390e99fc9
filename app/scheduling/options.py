"""The solver options the service runs with, built by one function for the service and benchmarks.

The service turns its settings (``Settings.solver_*``, ``Settings.continuity_penalty_s``) and a
plan request's overrides into :class:`SolveOptions` through :func:`service_options`; the
benchmarks (``bench.solomon``, ``bench.district``, ``bench.hhcrsp``) call the same function, so a
benchmark run without overrides measures exactly what the service plans with. The product
defaults are the field defaults of :class:`SolveOptions`; the settings take theirs from there.
"""

from __future__ import annotations

from dataclasses import replace

from app.scheduling.model import SolveOptions

#: The product defaults (what the service runs when no setting or request overrides them).
SERVICE_DEFAULTS = SolveOptions()


def service_options(
    *,
    time_limit_s: float | None = None,
    exploration_level: int | None = None,
    threads: int | None = None,
    continuity_penalty_s: int | None = None,
    coupling_rounds: int | None = None,
    improve_s: float | None = None,
) -> SolveOptions:
    """The solve options of the service: the product defaults, with the given knobs overridden.

    Parameters
    ----------
    time_limit_s, exploration_level, threads, continuity_penalty_s, coupling_rounds, improve_s
        None keeps the product default (:data:`SERVICE_DEFAULTS`); a value overrides it.

    Returns
    -------
    SolveOptions
        The options :func:`app.scheduling.solve` is called with.
    """
    d = SERVICE_DEFAULTS
    return replace(
        d,
        time_limit_s=d.time_limit_s if time_limit_s is None else time_limit_s,
        exploration_level=d.exploration_level if exploration_level is None else exploration_level,
        threads=d.threads if threads is None else threads,
        continuity_penalty_s=(
            d.continuity_penalty_s if continuity_penalty_s is None else continuity_penalty_s
        ),
        coupling_rounds=d.coupling_rounds if coupling_rounds is None else coupling_rounds,
        improve_s=d.improve_s if improve_s is None else improve_s,
    )


def is_service_path(options: SolveOptions) -> bool:
    """Whether ``options`` are exactly the service's defaults (what benchmarks report)."""
    return options == SERVICE_DEFAULTS


__all__ = ["SERVICE_DEFAULTS", "is_service_path", "service_options"]
