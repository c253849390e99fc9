"""Compiled kernels of the label engine: CCH contraction, customization, labels, tables.

Everything works in rank space (node ``r`` is the ``r``-th of the contraction order). The
contracted graph is stored as CSR over the lower end of each edge: ``head[first[v]:first[v+1]]``
are the higher-ranked neighbours of ``v`` in increasing rank, and for each such edge ``e``
``up[e]`` weighs ``v -> head[e]`` and ``down[e]`` weighs ``head[e] -> v``. The elimination tree
parent of ``v`` is its lowest higher neighbour; the upward search space of ``v`` is exactly its
chain of ancestors, so a search is one walk up that chain, without a priority queue.

A label of ``v`` lists the distance to (forward) or from (backward) each ancestor, indexed by
the ancestor's depth in the elimination tree (root at depth 0), next to the ancestor itself.
Two chains share a prefix (their common ancestors), so ``dist(s, t)`` is the minimum of
``fwd_s[k] + bwd_t[k]`` over the depths ``k`` where both chains hold the same node.

Compiled with numba (``cache=True``: compiled once per machine and kept next to this file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from app.routing.network import NO_PATH

_F = TypeVar("_F", bound=Callable[..., Any])

#: "No path" inside the kernels (the row encoding's); a few of them still add up inside int64.
INF = NO_PATH


def _njit(fn: _F) -> _F:
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@_njit
def contract(n: int, init_first: Any, init_head: Any) -> tuple[Any, Any, Any]:
    """Chordal completion along the rank order (the elimination game).

    ``init_first``/``init_head``: CSR of the input graph's neighbours (either direction, rank
    space). Returns ``(first, head, parent)`` of the contracted graph (see module doc).
    """
    cap = max(16, 2 * len(init_head))
    head = np.empty(cap, dtype=np.int32)
    first = np.zeros(n + 1, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int32)
    child = np.full(n, -1, dtype=np.int32)  # first child in the elimination tree
    sibling = np.full(n, -1, dtype=np.int32)
    mark = np.full(n, -1, dtype=np.int32)
    pos = 0
    for v in range(n):
        need = init_first[v + 1] - init_first[v]
        c = child[v]
        while c != -1:
            need += first[c + 1] - first[c]
            c = sibling[c]
        if pos + need > cap:
            cap = max(2 * cap, pos + need)
            grown = np.empty(cap, dtype=np.int32)
            grown[:pos] = head[:pos]
            head = grown
        start = pos
        for k in range(init_first[v], init_first[v + 1]):
            w = init_head[k]
            if w > v and mark[w] != v:
                mark[w] = v
                head[pos] = w
                pos += 1
        c = child[v]
        while c != -1:
            for k in range(first[c], first[c + 1]):
                w = head[k]
                if w != v and mark[w] != v:
                    mark[w] = v
                    head[pos] = w
                    pos += 1
            c = sibling[c]
        head[start:pos].sort()
        first[v + 1] = pos
        if pos > start:
            p = head[start]
            parent[v] = p
            sibling[v] = child[p]
            child[p] = v
    return first, head[:pos].copy(), parent


@_njit
def initial_weights(first: Any, head: Any, tails: Any, heads: Any, weights: Any) -> tuple[Any, Any]:
    """``(up, down)`` of the contracted graph from the input arcs (rank space); INF elsewhere."""
    m = len(head)
    up = np.full(m, INF, dtype=np.int64)
    down = np.full(m, INF, dtype=np.int64)
    for i in range(len(tails)):
        a, b, w = tails[i], heads[i], weights[i]
        if a == b:
            continue
        lo, hi = (a, b) if a < b else (b, a)
        e = first[lo] + np.searchsorted(head[first[lo] : first[lo + 1]], hi)
        if a < b:
            up[e] = min(up[e], w)
        else:
            down[e] = min(down[e], w)
    return up, down


@_njit
def customize(first: Any, head: Any, up: Any, down: Any) -> None:
    """Basic customization in place: every lower triangle ``x <- z -> y`` shortens ``{x, y}``.

    Nodes are taken in increasing rank, so the edges of ``z`` are final when ``z`` is used.
    The higher neighbours of ``z`` form a clique, so each ``{x, y}`` edge exists.
    """
    n = len(first) - 1
    for z in range(n):
        end = first[z + 1]
        for i in range(first[z], end):
            x = head[i]
            z_to_x = up[i]
            x_to_z = down[i]
            if z_to_x >= INF and x_to_z >= INF:
                continue
            k = first[x]
            for j in range(i + 1, end):
                y = head[j]
                while head[k] < y:
                    k += 1
                via = x_to_z + up[j]
                if via < up[k]:
                    up[k] = via
                via = down[j] + z_to_x
                if via < down[k]:
                    down[k] = via


@_njit
def depths(parent: Any) -> Any:
    """Depth of each node in the elimination tree (roots 0); parents rank above children."""
    n = len(parent)
    depth = np.zeros(n, dtype=np.int32)
    for v in range(n - 1, -1, -1):
        p = parent[v]
        if p >= 0:
            depth[v] = depth[p] + 1
    return depth


@_njit
def runs(first: Any, head_depth: Any) -> tuple[Any, Any, Any, Any, Any]:
    """Each node's edges as runs of consecutive depths, for searches to relax as slices.

    A node's edges in increasing rank lead to ancestors of decreasing depth; nested dissection
    ranks each separator consecutively, so they fall into a few long runs (one per ancestor
    separator). Returns ``(run_first, run_edge, run_len, run_low, perm)``: node ``x`` owns runs
    ``run_first[x]:run_first[x + 1]``; run ``r`` covers depths ``run_low[r]`` upwards, with
    weights at ``run_edge[r]:run_edge[r] + run_len[r]`` of ``weight[perm]`` in that order.
    """
    n = len(first) - 1
    m = len(head_depth)
    run_first = np.zeros(n + 1, dtype=np.int64)
    run_edge = np.empty(m, dtype=np.int64)
    run_len = np.empty(m, dtype=np.int64)
    r = 0
    for x in range(n):
        for e in range(first[x], first[x + 1]):
            if e > first[x] and head_depth[e] == head_depth[e - 1] - 1:
                run_len[r - 1] += 1
            else:
                run_edge[r] = e
                run_len[r] = 1
                r += 1
        run_first[x + 1] = r
    run_low = np.empty(r, dtype=np.int64)
    perm = np.empty(m, dtype=np.int64)
    for k in range(r):
        e, size = run_edge[k], run_len[k]
        run_low[k] = head_depth[e + size - 1]
        for t in range(size):
            perm[e + t] = e + size - 1 - t
    return run_first, run_edge[:r].copy(), run_len[:r].copy(), run_low, perm


@_njit
def fill_labels(
    seeds: Any,
    offsets: Any,
    run_first: Any,
    run_edge: Any,
    run_len: Any,
    run_low: Any,
    weight: Any,
    parent: Any,
    depth: Any,
    values: Any,
    chain: Any,
) -> bool:
    """Write label ``i`` at ``values/chain[offsets[i]:]`` (see module doc).

    ``seeds[i] = (a, b, cost_a, cost_b)``: the search starts at ``a`` with ``cost_a`` and at
    ``b`` (an ancestor of ``a``, or ``a`` itself) with ``cost_b``; a node's own label is
    ``(v, v, 0, INF)``, a location's the two ends of its road with the costs along it.
    ``weight`` is ``up`` for forward labels and ``down`` for backward ones, in the order of the
    runs (:func:`runs`). Every edge of the chain leads to an ancestor, so the
    label itself (indexed by depth, a few KB) is the search's distance array. Returns False if
    some ``b`` is not on its ``a``'s chain (those labels are meaningless).
    """
    ok = True
    for i in range(seeds.shape[0]):
        a, b = seeds[i, 0], seeds[i, 1]
        base = offsets[i]
        for k in range(depth[a] + 1):
            values[base + k] = INF
        values[base + depth[a]] = seeds[i, 2]
        at_b = base + depth[b]
        values[at_b] = min(values[at_b], seeds[i, 3])
        x = a
        while x != -1:
            at = base + depth[x]
            chain[at] = x
            dx = values[at]
            if dx < INF:
                for r in range(run_first[x], run_first[x + 1]):
                    e, size = run_edge[r], run_len[r]
                    seg = values[base + run_low[r] : base + run_low[r] + size]
                    ws = weight[e : e + size]
                    for t in range(size):
                        cand = dx + ws[t]
                        seg[t] = cand if cand < seg[t] else seg[t]
            x = parent[x]
        if chain[at_b] != b:
            ok = False
    return ok


#: Targets combined at once: their labels (a few KB each) stay in the core's cache while every
#: source passes over them.
_TILE = 48


@_njit
def combine(
    src_off: Any,
    src_len: Any,
    fwd: Any,
    fwd_chain: Any,
    tgt_off: Any,
    tgt_len: Any,
    bwd: Any,
    bwd_chain: Any,
) -> Any:
    """Distances between labelled sources and targets (INF or more: no path).

    The common ancestors are a prefix of both chains; its end is found by binary search, then
    the minimum over the prefix is one contiguous loop.
    """
    out = np.empty((len(src_off), len(tgt_off)), dtype=np.int64)
    for j0 in range(0, len(tgt_off), _TILE):
        j1 = min(j0 + _TILE, len(tgt_off))
        for i in range(len(src_off)):
            a = src_off[i]
            la = src_len[i]
            for j in range(j0, j1):
                b = tgt_off[j]
                if fwd_chain[a] != bwd_chain[b]:
                    out[i, j] = INF
                    continue
                lo = 0  # the chains agree at depth lo
                hi = min(la, tgt_len[j])  # ... and at no depth >= hi
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if fwd_chain[a + mid] == bwd_chain[b + mid]:
                        lo = mid
                    else:
                        hi = mid
                # Slices and a plain select: the form LLVM turns into SIMD (2x the indexed min).
                xs = fwd[a : a + lo + 1]
                ys = bwd[b : b + lo + 1]
                best = INF
                for k in range(lo + 1):
                    cand = xs[k] + ys[k]
                    best = cand if cand < best else best
                out[i, j] = best
    return out
