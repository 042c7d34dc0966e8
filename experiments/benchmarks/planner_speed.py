"""Speed of hybrid.planners.grid_shortest_path against a Python heapq Dijkstra and scipy.sparse.csgraph.dijkstra.

The task: a batch of maps (default 256 of 30x30, random uniform costs in [0.1, 10)), vertex-weighted, 8-neighbour,
from the top-left to the bottom-right cell, returning the path mask and its cost (the solver of Vlastelica et al.,
ICLR 2020). All three solvers run in this one process on the same maps and must agree on every cost.

- planner: the jitted ``grid_shortest_path`` (distances + path extraction, one call for the whole batch); compile
  time is measured apart (first call).
- heapq: a Python Dijkstra per map with a predecessor array and path extraction (what paper code runs).
- scipy: ``scipy.sparse.csgraph.dijkstra`` per map with ``return_predecessors=True`` and path extraction; timed with
  the CSR graph construction counted (the sparsity pattern is computed once; per map a float64 CSR is built from
  it with the map's weights) and, apart, with prebuilt graphs.

The methods are timed in ``--repeats`` interleaved rounds (each method once per round) so that load from other
processes on a shared machine hits them alike; printed: median and min per method, and the ratios as the median
of per-round ratios and as the ratio of mins.

With ``--astar N``, also runs batched A* on N 32x32 obstacle maps and N mazes (hybrid.tasks.maps) and prints
Neural A*'s metrics for the Chebyshev heuristic against Dijkstra (A* with a zero heuristic): expansions, share of
expansions saved, share of optimal paths (against grid_shortest_path), and the batched search time.

Run: python experiments/benchmarks/planner_speed.py [--batch 256] [--size 30] [--repeats 9] [--astar 256]
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

from hybrid.planners import (
    NEIGHBOUR_OFFSETS,
    astar,
    expansion_savings,
    grid_shortest_path,
    obstacle_costs,
    optimal_share,
)
from hybrid.tasks.maps import maze_maps, obstacle_maps


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
    """Median seconds over ``repeats`` calls."""
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def astar_report(n: int, seed: int, repeats: int):
    """Neural A* metrics of Chebyshev A* against Dijkstra on obstacle maps and mazes."""
    for name, gen in (("obstacle maps", obstacle_maps), ("mazes", maze_maps)):
        m = gen(jax.random.key(seed), n)
        costs, start, goal = obstacle_costs(m["obstacles"]), jnp.asarray(m["start"]), jnp.asarray(m["goal"])
        search = {h: jax.jit(lambda c, s, g, h=h: astar(c, s, g, heuristic=h)) for h in ("zero", "chebyshev")}
        res = {h: jax.block_until_ready(f(costs, start, goal)) for h, f in search.items()}
        args = (costs, start, goal)
        t = {h: timed(lambda f=f, args=args: jax.block_until_ready(f(*args)), repeats) for h, f in search.items()}
        _, opt = grid_shortest_path(costs, start, goal)
        d, a = res["zero"], res["chebyshev"]
        print(f"A* on {n} {name} 32x32: expansions Dijkstra {float(d.expansions.mean()):.1f}, "
              f"Chebyshev A* {float(a.expansions.mean()):.1f}; expansions saved "
              f"{100 * float(expansion_savings(a.expansions, d.expansions)):.1f}%; optimal paths "
              f"{100 * float(optimal_share(a.cost, opt)):.1f}% (Dijkstra {100 * float(optimal_share(d.cost, opt)):.1f}%); "
              f"batched search {t['chebyshev'] * 1e3:.1f} ms (Dijkstra {t['zero'] * 1e3:.1f} ms)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=30)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--astar", type=int, default=0, help="also run A* on this many obstacle maps and mazes")
    a = p.parse_args(argv)
    costs = np.asarray(jax.random.uniform(jax.random.key(a.seed), (a.batch, a.size, a.size), minval=0.1, maxval=10.0))
    print(f"machine: jax {jax.__version__}, backend {jax.default_backend()}, device "
          f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs (os.cpu_count; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"task: {a.batch} maps of {a.size}x{a.size}, 8-neighbour, vertex-weighted, path + cost; "
          f"{a.repeats} interleaved rounds")

    solve = jax.jit(grid_shortest_path)
    x = jnp.asarray(costs)
    t0 = time.perf_counter()
    jax.block_until_ready(solve(x))
    compile_s = time.perf_counter() - t0
    path, cost = (np.asarray(v) for v in solve(x))
    grid = ScipyGrid(a.size, a.size)
    graphs = [grid.graph(c) for c in costs]
    methods = {
        "planner grid_shortest_path (jit)": lambda: jax.block_until_ready(solve(x)),
        "python heapq Dijkstra loop": lambda: [heapq_dijkstra(c) for c in costs],
        "scipy dijkstra, graph building counted": lambda: [grid.solve(grid.graph(c), c) for c in costs],
        "scipy dijkstra, graphs prebuilt": lambda: [grid.solve(g, c) for g, c in zip(graphs, costs)],
    }
    # Interleaved rounds: every method is timed once per round, so load changes on a shared machine hit all alike.
    times = {k: [] for k in methods}
    for _ in range(a.repeats):
        for k, fn in methods.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)

    heap_cost = np.array([heapq_dijkstra(c)[1] for c in costs])
    scipy_cost = np.array([grid.solve(g, c)[1] for g, c in zip(graphs, costs)])
    assert np.allclose(cost, heap_cost, rtol=1e-5) and np.allclose(cost, scipy_cost, rtol=1e-5), "costs differ"
    assert np.allclose((path * costs).sum((1, 2)), cost, rtol=1e-5), "path cost differs"

    print(f"{'planner (jit, first call incl. compile)':40s} {compile_s * 1e3:9.2f} ms")
    ours = np.array(times["planner grid_shortest_path (jit)"])
    for k, ts in times.items():
        ts = np.array(ts)
        line = f"{k:40s} median {np.median(ts) * 1e3:9.2f} ms  min {ts.min() * 1e3:9.2f} ms"
        if ts is not ours and k != "planner grid_shortest_path (jit)":
            line += f"   ratio to planner: median of rounds {np.median(ts / ours):6.1f}x, of mins {ts.min() / ours.min():6.1f}x"
        print(line)
    print("all costs agree (rtol 1e-5)")
    if a.astar:
        astar_report(a.astar, a.seed, a.repeats)


if __name__ == "__main__":
    main()
