"""The region and the worker processes of one service process.

- :func:`get_region` loads the region once per process (from ``osm_cache``: about a second warm;
  the first build of a new extract takes 15-30 s) and keeps it.
- :class:`SolverPool` is a :class:`~concurrent.futures.ProcessPoolExecutor` whose workers start
  by ``forkserver`` (a clean process forked from a server that already imported the solver and
  the routing core; ``spawn`` where forkserver is unavailable) and load the region once in their
  initializer, so each job only pays for its own matrices and solve. Matrix building and solving
  never run on the event loop or in a request thread.
- :meth:`SolverPool.kill` is the hard wall-clock guard: it terminates the worker processes (the
  only way to stop a native solver mid-run) and starts a fresh pool.

Both are per process and keyed by the settings that shape them, because starting workers and
loading a region cost seconds: an app factory called many times (tests) reuses them.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from app.domain import TravelMode
from app.errors import RegionUnavailable
from app.planning.compute import PlanResult, compute_plan
from app.planning.inputs import PlanInput, PlanOptions
from app.routing import ALL_MODES, Region, load_region

log = logging.getLogger(__name__)

_lock = threading.Lock()
_RegionKey = tuple[Path, Path, tuple[TravelMode, ...]]
_regions: dict[_RegionKey, Region] = {}
#: Why a region could not be loaded: kept, so a failed build is not retried on every request.
_failures: dict[_RegionKey, str] = {}
_pools: dict[tuple[Path, Path, tuple[TravelMode, ...], int], SolverPool] = {}

T = TypeVar("T")

#: The region of a worker process, loaded by :func:`_init_worker`.
_worker_region: Region | None = None


def _region_key(
    region_file: Path, cache_dir: Path, modes: Iterable[TravelMode | str]
) -> _RegionKey:
    wanted = tuple(dict.fromkeys(TravelMode(m) for m in modes))
    return (Path(region_file).resolve(), Path(cache_dir).resolve(), wanted)


def get_region(
    region_file: Path, cache_dir: Path, modes: Iterable[TravelMode | str] = ALL_MODES
) -> Region:
    """The region of ``region_file`` with ``modes``, loaded once per process.

    Raises
    ------
    RegionUnavailable
        Loading failed, now or on an earlier call (the failure is kept: a region that cannot be
        built is not rebuilt per request; restart the process after fixing the cause).
    """
    key = _region_key(region_file, cache_dir, modes)
    with _lock:
        region = _regions.get(key)
        if region is not None:
            return region
        if key in _failures:
            raise RegionUnavailable(_failures[key])
        try:
            region = load_region(key[0], modes=key[2], cache_dir=key[1])
        except Exception as exc:  # any failure: kept and reported, never retried per call
            reason = f"the region could not be loaded: {type(exc).__name__}: {exc}"
            _failures[key] = reason
            log.error("region %s failed to load: %s", key[0].name, type(exc).__name__)
            raise RegionUnavailable(reason) from exc
        _regions[key] = region
        return region


def region_state(
    region_file: Path, cache_dir: Path, modes: Iterable[TravelMode | str] = ALL_MODES
) -> tuple[str, str | None]:
    """``("ok", None)``, ``("loading", None)`` or ``("failed", reason)``; never loads."""
    key = _region_key(region_file, cache_dir, modes)
    if key in _regions:
        return "ok", None
    failure = _failures.get(key)
    if failure is not None:
        return "failed", failure
    return "loading", None


def loaded_region(
    region_file: Path, cache_dir: Path, modes: Iterable[TravelMode | str] = ALL_MODES
) -> Region | None:
    """The region if this process has loaded it already, else None (never loads)."""
    key = _region_key(region_file, cache_dir, modes)
    return _regions.get(key)


def _init_worker(region_file: Path, cache_dir: Path, modes: tuple[TravelMode, ...]) -> None:
    global _worker_region
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _worker_region = get_region(region_file, cache_dir, modes)


def _compute_in_worker(inp: PlanInput, options: PlanOptions) -> PlanResult:
    if _worker_region is None:  # pragma: no cover - the initializer always runs first
        msg = "worker region not loaded"
        raise RuntimeError(msg)
    return compute_plan(inp, _worker_region, options)


def _call_in_worker(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    if _worker_region is None:  # pragma: no cover - the initializer always runs first
        msg = "worker region not loaded"
        raise RuntimeError(msg)
    return fn(_worker_region, *args)


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["app.planning.compute"])
        return ctx
    return multiprocessing.get_context("spawn")


class SolverPool:
    """Worker processes that compute plans; each holds the region in memory."""

    def __init__(
        self,
        region_file: Path,
        cache_dir: Path,
        workers: int,
        modes: tuple[TravelMode, ...] = ALL_MODES,
    ) -> None:
        self.region_file = Path(region_file)
        self.cache_dir = Path(cache_dir)
        self.workers = workers
        self.modes = modes
        self._lock = threading.Lock()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(self.region_file, self.cache_dir, self.modes),
        )

    def submit(self, inp: PlanInput, options: PlanOptions) -> Future[PlanResult]:
        """Start computing ``inp`` in a worker process."""
        with self._lock:
            return self._executor.submit(_compute_in_worker, inp, options)

    def run(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Call ``fn(region, *args)`` in a worker process (``fn`` must be a module-level function).

        Re-plans use it: their input is plain data, the worker holds the region.
        """
        with self._lock:
            return self._executor.submit(_call_in_worker, fn, args)

    def kill(self) -> None:
        """Terminate every worker (stopping whatever they compute) and start a fresh pool.

        Jobs running in the killed workers fail with ``BrokenProcessPool``; their runners treat
        that as a lost worker.
        """
        with self._lock:
            old = self._executor
            self._executor = self._new()
        processes = list(getattr(old, "_processes", {}).values())
        for proc in processes:
            proc.terminate()
        old.shutdown(wait=False, cancel_futures=True)
        log.warning("solver pool: %d worker process(es) terminated", len(processes))

    def shutdown(self) -> None:
        """Stop the workers (waiting for running jobs)."""
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)


def get_pool(
    region_file: Path,
    cache_dir: Path,
    workers: int,
    modes: Iterable[TravelMode | str] = ALL_MODES,
) -> SolverPool:
    """The process's solver pool for these settings (created on first use)."""
    region_key = _region_key(region_file, cache_dir, modes)
    key = (*region_key, workers)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = SolverPool(key[0], key[1], workers, region_key[2])
            _pools[key] = pool
        return pool


def shutdown_pools() -> None:
    """Stop every pool of this process (at exit)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()


atexit.register(shutdown_pools)
