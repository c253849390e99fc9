"""The load generator of ``bench.load``: lean keep-alive HTTP/1.1 clients in separate processes.

Each process runs one asyncio loop (uvloop when installed) with its share of the connections.
A connection sends a GET, reads the status line, the headers and ``Content-Length`` bytes of
body, and sends the next one: no HTTP library, no per-request allocation beyond the bytes read,
so the generator takes a small share of the cores it shares with the server. Every process
reports its latencies, errors and its own CPU time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import time
from dataclasses import dataclass

#: What a worker process sends back: latencies (s), errors, CPU seconds, statuses seen.
Result = tuple[list[float], int, float, dict[int, int]]


@dataclass(frozen=True, slots=True)
class Plan:
    """One scenario for one process: where, what, how many connections and for how long."""

    host: str
    port: int
    paths: list[str]
    headers: dict[str, str]
    connections: int
    duration_s: float
    #: Offset into ``paths`` of this process' first connection (spreads carers over processes).
    first: int = 0


def _request(plan: Plan, path: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {plan.host}:{plan.port}"]
    lines += [f"{k}: {v}" for k, v in plan.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    plan: Plan, k: int, t_end: float, out: list[float], statuses: dict[int, int]
) -> int:
    requests = [_request(plan, p) for p in plan.paths]
    errors = 0
    i = plan.first + k
    reader, writer = await asyncio.open_connection(plan.host, plan.port)
    try:
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            try:
                writer.write(requests[i % len(requests)])
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                out.append(time.perf_counter() - t0)
                writer.close()
                reader, writer = await asyncio.open_connection(plan.host, plan.port)
                continue
            out.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                errors += 1
            i += plan.connections
    finally:
        writer.close()
    return errors


async def _drive(plan: Plan) -> Result:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    t_end = time.monotonic() + plan.duration_s
    cpu0 = time.process_time()
    errors = await asyncio.gather(
        *(_connection(plan, k, t_end, latencies, statuses) for k in range(plan.connections))
    )
    return latencies, sum(errors), time.process_time() - cpu0, statuses


def _process(plan: Plan, conn: multiprocessing.connection.Connection) -> None:
    try:
        import uvloop

        result = uvloop.run(_drive(plan))
    except ImportError:
        result = asyncio.run(_drive(plan))
    conn.send(result)
    conn.close()


def run(plans: list[Plan]) -> list[Result]:
    """Run one process per plan at the same time; their results, in order."""
    ctx = multiprocessing.get_context("fork")
    procs = []
    for plan in plans:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_process, args=(plan, child), daemon=True)
        proc.start()
        child.close()
        procs.append((proc, parent))
    results: list[Result] = []
    for proc, parent in procs:
        results.append(parent.recv())
        proc.join()
    return results
