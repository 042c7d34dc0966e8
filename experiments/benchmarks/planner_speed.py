"""Speed of hybrid.planners.grid_shortest_path against a Python heapq Dijkstra and scipy.sparse.csgraph.dijkstra.

The task: a batch of maps (default 256 of 30x30, random uniform costs in [0.1, 10)), vertex-weighted, 8-neighbour,
from the top-left to the bottom-right cell, returning the path mask and its cost (the solver of Vlastelica et al.,
ICLR 2020). All three solvers run in this one process on the same maps and must agree on every cost.

- planner: the jitted ``grid_shortest_path`` (distances + path extraction, one call for the whole batch); compile
  time is measured apart, and the time is the median of ``--repeats`` calls after a warm-up.
- heapq: a Python Dijkstra per map with a predecessor array and path extraction (what paper code runs).
- scipy: ``scipy.sparse.csgraph.dijkstra`` per map with ``return_predecessors=True`` and path extraction; timed with
  the CSR graph construction counted (the sparsity pattern is computed once; per map a float64 CSR is built from
  it with the map's weights)
  and, apart, with prebuilt graphs.

Run: python experiments/benchmarks/planner_speed.py [--batch 256] [--size 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import heapq
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from hybrid.planners import NEIGHBOUR_OFFSETS, grid_shortest_path


def heapq_dijkstra(c: np.ndarray):
    """Vertex-weighted 8-neighbour Dijkstra from (0, 0) to (H-1, W-1): (path mask, cost)."""
    h, w = c.shape
    cl = c.tolist()
    dist = [[float("inf")] * w for _ in range(h)]
    pred = [[None] * w for _ in range(h)]
    dist[0][0] = cl[0][0]
    heap = [(cl[0][0], 0, 0)]
    while heap:
        d, r, q = heapq.heappop(heap)
        if d > dist[r][q]:
            continue
        if r == h - 1 and q == w - 1:
            break
        for dr, dc in NEIGHBOUR_OFFSETS:
            nr, nc = r + dr, q + dc
            if 0 <= nr < h and 0 <= nc < w:
                nd = d + cl[nr][nc]
                if nd < dist[nr][nc]:
                    dist[nr][nc] = nd
                    pred[nr][nc] = (r, q)
                    heapq.heappush(heap, (nd, nr, nc))
    mask = np.zeros((h, w), np.float32)
    cur = (h - 1, w - 1)
    while cur is not None:
        mask[cur] = 1.0
        cur = pred[cur[0]][cur[1]]
    return mask, dist[h - 1][w - 1]


class ScipyGrid:
    """Sparsity pattern of the 8-neighbour grid graph, computed once; ``graph(c)`` fills one map's weights."""

    def __init__(self, h: int, w: int):
        idx = np.arange(h * w).reshape(h, w)
        rows, cols = [], []
        for dr, dc in NEIGHBOUR_OFFSETS:
            r0, r1, c0, c1 = max(0, -dr), min(h, h - dr), max(0, -dc), min(w, w - dc)
            rows.append(idx[r0:r1, c0:c1].ravel())
            cols.append(idx[r0 + dr:r1 + dr, c0 + dc:c1 + dc].ravel())
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        order = np.lexsort((cols, rows))  # CSR order: by row, then column
        self.indices = cols[order].astype(np.int32)
        self.indptr = np.searchsorted(rows[order], np.arange(h * w + 1)).astype(np.int32)
        self.n, self.h, self.w = h * w, h, w

    def graph(self, c: np.ndarray) -> sp.csr_matrix:
        """CSR built directly from the cached pattern; float64 so dijkstra does not convert it."""
        data = np.asarray(c, np.float64).ravel()[self.indices]
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))

    def solve(self, g: sp.csr_matrix, c: np.ndarray):
        d, pred, _ = dijkstra(g, indices=0, return_predecessors=True, min_only=True)
        mask = np.zeros(self.n, np.float32)
        cur = self.n - 1
        while cur >= 0:
            mask[cur] = 1.0
            cur = pred[cur]
        return mask.reshape(self.h, self.w), d[-1] + c[0, 0]


def timed(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    costs = np.asarray(jax.random.uniform(jax.random.key(a.seed), (a.batch, a.size, a.size), minval=0.1, maxval=10.0))
    print(f"machine: jax {jax.__version__}, backend {jax.default_backend()}, device "
          f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs (os.cpu_count; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"task: {a.batch} maps of {a.size}x{a.size}, 8-neighbour, vertex-weighted, path + cost; "
          f"median of {a.repeats} runs")

    solve = jax.jit(grid_shortest_path)
    x = jnp.asarray(costs)
    t0 = time.perf_counter()
    jax.block_until_ready(solve(x))
    compile_s = time.perf_counter() - t0
    t_ours = timed(lambda: jax.block_until_ready(solve(x)), a.repeats)
    path, cost = (np.asarray(v) for v in solve(x))

    t_heap = timed(lambda: [heapq_dijkstra(c) for c in costs], max(1, a.repeats // 2))
    grid = ScipyGrid(a.size, a.size)
    t_scipy = timed(lambda: [grid.solve(grid.graph(c), c) for c in costs], a.repeats)
    graphs = [grid.graph(c) for c in costs]
    t_scipy_pre = timed(lambda: [grid.solve(g, c) for g, c in zip(graphs, costs)], a.repeats)

    heap_cost = np.array([heapq_dijkstra(c)[1] for c in costs])
    scipy_cost = np.array([grid.solve(g, c)[1] for g, c in zip(graphs, costs)])
    assert np.allclose(cost, heap_cost, rtol=1e-5) and np.allclose(cost, scipy_cost, rtol=1e-5), "costs differ"
    assert np.allclose((path * costs).sum((1, 2)), cost, rtol=1e-5), "path cost differs"

    ms = lambda s: f"{s * 1e3:9.2f} ms"
    print(f"planner (jit, first call incl. compile) {ms(compile_s)}")
    print(f"planner grid_shortest_path              {ms(t_ours)}")
    print(f"python heapq Dijkstra loop              {ms(t_heap)}   ratio heapq/planner  {t_heap / t_ours:6.1f}x")
    print(f"scipy dijkstra, graph building counted  {ms(t_scipy)}   ratio scipy/planner  {t_scipy / t_ours:6.1f}x")
    print(f"scipy dijkstra, graphs prebuilt         {ms(t_scipy_pre)}   ratio             {t_scipy_pre / t_ours:6.1f}x")
    print("all costs agree (rtol 1e-5)")


if __name__ == "__main__":
    main()
