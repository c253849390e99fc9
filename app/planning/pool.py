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
- No solver process outlives the service process (docs/decisions/jobs-no-orphans.md). A worker
  dies with its parent, the forkserver (``PR_SET_PDEATHSIG`` on Linux), and gives up its copy of
  the forkserver's "alive" pipe, so the forkserver itself exits as soon as the service process
  is gone, however it died (SIGKILL included); the resource tracker follows when its last
  writer is gone. On SIGTERM/SIGINT the server calls :func:`close_pools` at once: workers are
  killed, their jobs queued again for the next start, and no new worker starts.

Both are per process and keyed by the settings that shape them, because starting workers and
loading a region cost seconds: an app factory called many times (tests) reuses them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
#: Set by :func:`close_pools`: this process is stopping, no solver process starts any more.
_closed = threading.Event()

#: ``prctl`` option: the signal the kernel sends a process when its parent exits.
_PR_SET_PDEATHSIG = 1


class PoolClosed(RuntimeError):
    """The process is shutting down: no more work goes to solver processes."""


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


def _die_with(service_pid: int) -> None:
    """Make this worker process end when the service process ``service_pid`` ends.

    The worker's parent is the forkserver. The kernel kills the worker when the forkserver
    exits (``PR_SET_PDEATHSIG``, no Python needed, so it works while VROOM holds the GIL), and
    the forkserver exits when nobody holds its "alive" pipe any more. Every worker inherits a
    copy of that pipe; closing it here leaves the service process its only holder.
    """
    server: Any = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    alive_fd = getattr(server, "_forkserver_alive_fd", None)
    if alive_fd is not None and os.getppid() != service_pid:  # forked by the forkserver
        os.close(alive_fd)
        server._forkserver_alive_fd = None
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:  # the service may have died before the line above armed the signal
        os.kill(service_pid, 0)
    except ProcessLookupError:
        os._exit(1)


def _init_worker(
    region_file: Path,
    cache_dir: Path,
    modes: tuple[TravelMode, ...],
    service_pid: int | None = None,
) -> None:
    global _worker_region
    if service_pid is not None:
        _die_with(service_pid)
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


def _loaded(_region: Region) -> None:
    """Nothing: the worker's initializer has loaded the region by the time this runs."""


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The guard first: it makes the forkserver exit with the service even mid-import.
        ctx.set_forkserver_preload(["app.planning._forkserver_guard", "app.planning.compute"])
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
            initargs=(self.region_file, self.cache_dir, self.modes, os.getpid()),
        )

    def submit(self, inp: PlanInput, options: PlanOptions) -> Future[PlanResult]:
        """Start computing ``inp`` in a worker process.

        Raises
        ------
        PoolClosed
            The process is shutting down (:func:`close_pools`).
        """
        return self._submit(_compute_in_worker, inp, options)

    def run(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Call ``fn(region, *args)`` in a worker process (``fn`` must be a module-level function).

        Re-plans use it: their input is plain data, the worker holds the region.
        """
        return self._submit(_call_in_worker, fn, args)

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Submit to the executor; a broken one (a worker died: OOM, crash) is replaced first.

        A dead worker left the executor refusing everything with ``BrokenProcessPool``, so every
        later plan and re-plan of the service answered 500 until a restart.
        """
        with self._lock:
            _check_open()
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                log.warning("solver pool: a worker process died; starting a fresh pool")
                old, self._executor = self._executor, self._new()
                _stop_executor(old)
                return self._executor.submit(fn, *args)

    def warm(self) -> Future[None]:
        """Start the worker processes now (each loads the region), not on the first job.

        After a restart the first re-plan otherwise paid the worker's start and region load
        on top of its own solve (seconds, against a planner's 3-second patience).
        """
        return self.run(_loaded)

    def kill(self) -> None:
        """Terminate every worker (stopping whatever they compute) and start a fresh pool.

        Jobs running in the killed workers fail with ``BrokenProcessPool``; their runners treat
        that as a lost worker.
        """
        with self._lock:
            old = self._executor
            self._executor = self._new()
        n = _stop_executor(old)
        log.warning("solver pool: %d worker process(es) terminated", n)

    def close(self, *, quiet: bool = False) -> None:
        """Kill the workers at once, without starting new ones (the process is stopping)."""
        with self._lock:
            n = _stop_executor(self._executor)
        if n and not quiet:
            log.info("solver pool closed: %d worker process(es) stopped", n)


def _stop_executor(executor: ProcessPoolExecutor) -> int:
    """SIGKILL the executor's worker processes and shut it down without waiting; how many."""
    procs = list((getattr(executor, "_processes", None) or {}).values())
    for proc in procs:
        proc.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    return len(procs)


def _check_open() -> None:
    if _closed.is_set():
        msg = "the service is shutting down; the job stays queued for the next start"
        raise PoolClosed(msg)


def closing() -> bool:
    """True once :func:`close_pools` ran: the process is stopping."""
    return _closed.is_set()


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
        _check_open()
        pool = _pools.get(key)
        if pool is None:
            pool = SolverPool(key[0], key[1], workers, region_key[2])
            _pools[key] = pool
        return pool


def close_pools(*, quiet: bool = False) -> None:
    """Stop every solver process of this process now; no new one starts afterwards.

    Called on SIGTERM/SIGINT and at exit (``quiet``: the log's stream may be closed by then).
    Work running in the pools fails with
    ``BrokenProcessPool`` (the job runner queues those jobs again); later submissions raise
    :class:`PoolClosed`. Safe to call from any thread, and more than once.
    """
    _closed.set()
    with _lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close(quiet=quiet)
    # The forkserver (holding the preloaded core in memory) goes now, not when this process
    # exits: closing its alive pipe ends it, as no worker holds a copy (see _die_with).
    stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError):
            stop()


atexit.register(close_pools, quiet=True)
