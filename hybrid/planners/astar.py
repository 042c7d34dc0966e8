"""Batched, jittable A* / best-first search on vertex-weighted grids under a node-expansion budget.

A* (Hart, Nilsson & Raphael, 1968) with open and closed sets held as fixed-size ``[H * W]`` boolean arrays inside a
``lax.while_loop`` (one expansion per iteration), vmapped over a batch of maps; no host callback. The heuristic is
an array ``[B, H, W]`` (for instance the output of a network, as in Neural A*: Yonetani et al., "Path Planning
using Neural A* Search", ICML 2021), a callable ``(costs, goal) -> [B, H, W]``, or a named standard heuristic.
``g_weight`` scales the cost-so-far in the priority ``f = g_weight * g + h`` (Neural A*'s weighted A*).

Costs are vertex weights as in ``grid_shortest_path``: ``g(v)`` is the summed cost of the cells from the start to
``v``, both included; ``h(v)`` estimates the cost of the cells after ``v`` up to the goal. ``+inf`` marks walls
(``obstacle_costs`` turns a 0/1 obstacle map into such costs).

Rules (deterministic): the open node of least ``f`` is expanded; ties go to the smaller ``h``, then to the lower
flat index (row-major). A node whose ``g`` improves is (re)opened, so with an admissible heuristic (never above the
true cost-to-go) the returned path is optimal even when the heuristic is inconsistent. ``expansions`` counts the
nodes taken from the open set, the goal included; the search stops when the goal is taken, when the open set is
empty, or when ``max_expansions`` nodes were expanded (then ``found`` is False, ``cost`` is ``+inf`` and ``path``
is empty).

Neural A*'s metrics: ``optimal_share`` (path cost equal to the Dijkstra cost) and ``expansion_savings`` (the
share of expansions saved against a baseline A*, clipped at 0, as Neural A*'s "Exp" ratio).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hybrid.planners.grid import NEIGHBOUR_OFFSETS, _cells, _check_costs, _check_neighbourhood

__all__ = [
    "AStarResult",
    "astar",
    "expansion_savings",
    "grid_heuristic",
    "obstacle_costs",
    "optimal_share",
]

HEURISTICS = ("chebyshev", "manhattan", "euclidean", "octile", "zero")


class AStarResult(NamedTuple):
    """What ``astar`` returns.

    Attributes:
      path: ``[B, H, W]`` 0/1 float mask of the path found (empty if none).
      cost: ``[B]`` summed cell cost of the path (``+inf`` if none).
      expansions: ``[B]`` int32 number of nodes expanded (goal included).
      found: ``[B]`` bool, the goal was reached within the budget.
      expanded: ``[B, H, W]`` 0/1 float mask of the expanded (closed) nodes, Neural A*'s search history.
    """

    path: jax.Array
    cost: jax.Array
    expansions: jax.Array
    found: jax.Array
    expanded: jax.Array


def obstacle_costs(obstacles: jax.Array, free_cost: float = 1.0) -> jax.Array:
    """``[B, H, W]`` 0/1 obstacle map (1 = obstacle) -> costs: ``free_cost`` on free cells, ``+inf`` on obstacles."""
    obstacles = jnp.asarray(obstacles)
    return jnp.where(obstacles > 0, jnp.inf, jnp.asarray(free_cost, jnp.float32))


def grid_heuristic(costs: jax.Array, goal, kind: str = "chebyshev") -> jax.Array:
    """A standard distance-to-goal heuristic in cost units: ``min finite cost of the map x distance``.

    ``chebyshev`` (max(|dr|, |dc|): admissible and consistent with the 8-neighbourhood), ``manhattan`` (admissible
    with the 4-neighbourhood), ``euclidean`` (admissible with both), ``octile`` (max + (sqrt 2 - 1) min: the usual
    choice when diagonal moves cost sqrt 2; NOT admissible here, where a diagonal move costs one cell), ``zero``
    (Dijkstra). Shapes: ``costs [B, H, W]``, ``goal (2,) or [B, 2]`` -> ``[B, H, W]``.
    """
    if kind not in HEURISTICS:
        raise ValueError(f"heuristic={kind!r} is not allowed; use an array [B, H, W], a callable or one of {HEURISTICS}")
    costs = jnp.asarray(costs)
    b, h, w = costs.shape
    goal = _cells(goal, b, h, w, "goal")
    dr = jnp.abs(jnp.arange(h)[None, :, None] - goal[:, 0, None, None]).astype(jnp.float32)
    dc = jnp.abs(jnp.arange(w)[None, None, :] - goal[:, 1, None, None]).astype(jnp.float32)
    dist = {
        "chebyshev": lambda: jnp.maximum(dr, dc),
        "manhattan": lambda: dr + dc,
        "euclidean": lambda: jnp.sqrt(dr ** 2 + dc ** 2),
        "octile": lambda: jnp.maximum(dr, dc) + (np.sqrt(2.0) - 1.0) * jnp.minimum(dr, dc),
        "zero": lambda: jnp.zeros((b, h, w), jnp.float32),
    }[kind]()
    cmin = jnp.min(jnp.where(jnp.isfinite(costs), costs, jnp.inf), axis=(1, 2))
    return dist * jnp.where(jnp.isfinite(cmin), cmin, 0.0)[:, None, None]


def _search_one(c, h, start, goal, max_expansions, neighbourhood, g_weight):
    """A* on one flattened map. ``c, h: [H, W]``; ``start, goal: [2]`` int32."""
    hh, ww = c.shape
    n = hh * ww
    cf, hf = c.reshape(n), h.reshape(n).astype(c.dtype)
    offs = jnp.asarray(NEIGHBOUR_OFFSETS[:neighbourhood], jnp.int32)
    s = start[0] * ww + start[1]
    gl = goal[0] * ww + goal[1]
    inf = jnp.asarray(jnp.inf, c.dtype)
    g0 = jnp.full((n,), inf).at[s].set(jnp.where(jnp.isfinite(cf[s]), cf[s], inf))
    opn0 = jnp.zeros((n,), bool).at[s].set(jnp.isfinite(cf[s]))
    state = (g0, opn0, jnp.zeros((n,), bool), jnp.full((n,), -1, jnp.int32), jnp.array(0, jnp.int32),
             jnp.array(False))

    def cond(st):
        _, opn, _, _, exp, found = st
        return (~found) & jnp.any(opn) & (exp < max_expansions)

    def body(st):
        g, opn, closed, parent, exp, _ = st
        f = jnp.where(opn, g_weight * g + hf, inf)
        best = jnp.min(f)
        sel = jnp.argmin(jnp.where(opn & (f == best), hf, inf))
        opn = opn.at[sel].set(False)
        closed = closed.at[sel].set(True)
        found = sel == gl
        r, q = sel // ww, sel % ww
        nr, nq = r + offs[:, 0], q + offs[:, 1]
        inside = (nr >= 0) & (nr < hh) & (nq >= 0) & (nq < ww)
        nb = jnp.where(inside, nr * ww + nq, 0)
        cand = g[sel] + cf[nb]
        better = inside & jnp.isfinite(cand) & (cand < g[nb]) & ~found
        nb = jnp.where(better, nb, n)  # out-of-range index: dropped by the scatters below
        g = g.at[nb].min(cand, mode="drop")
        parent = parent.at[nb].set(sel.astype(jnp.int32), mode="drop")
        opn = opn.at[nb].set(True, mode="drop")
        closed = closed.at[nb].set(False, mode="drop")
        return g, opn, closed, parent, exp + 1, found

    g, _, closed, parent, exp, found = jax.lax.while_loop(cond, body, state)

    def walk(st):
        path, cur, it = st
        return path.at[cur].set(1.0), parent[cur], it + 1

    path, _, _ = jax.lax.while_loop(lambda st: (st[1] >= 0) & (st[2] < n), walk,
                                    (jnp.zeros((n,), c.dtype), jnp.where(found, gl, -1), jnp.array(0)))
    cost = jnp.where(found, g[gl], inf)
    return path.reshape(hh, ww), cost, exp, found, closed.astype(c.dtype).reshape(hh, ww)


def astar(costs: jax.Array, start, goal, heuristic: jax.Array | Callable | str | None = None,
          max_expansions: int | None = None, neighbourhood: int = 8, g_weight: float = 1.0) -> AStarResult:
    """Batched A* search.

    Args:
      costs: ``[B, H, W]`` positive cell costs, ``+inf`` for walls (see ``obstacle_costs``).
      start, goal: ``(row, col)`` for every map or int ``[B, 2]``.
      heuristic: ``[B, H, W]`` array, a callable ``(costs, goal [B, 2]) -> [B, H, W]`` (a learned function), or
        a name from ``grid_heuristic`` (default ``"chebyshev"`` with 8 neighbours, ``"manhattan"`` with 4).
      max_expansions: node-expansion budget per map (default ``16 * H * W``: with a consistent heuristic each node
        is expanded at most once, so ``H * W`` is never reached; an inconsistent one may reopen nodes).
      neighbourhood: 4 or 8 (static under jit).
      g_weight: weight of the cost-so-far in ``f = g_weight * g + h`` (1 = A*, 0 = greedy best-first).

    Returns:
      ``AStarResult(path [B, H, W], cost [B], expansions [B], found [B], expanded [B, H, W])``.
    """
    neighbourhood = _check_neighbourhood(neighbourhood)
    costs = _check_costs(costs)
    b, h, w = costs.shape
    start = _cells(start, b, h, w, "start")
    goal = _cells(goal, b, h, w, "goal")
    if max_expansions is None:
        max_expansions = 16 * h * w
    elif not isinstance(max_expansions, (int, np.integer)) or max_expansions < 1:
        raise ValueError(f"max_expansions={max_expansions!r} must be a positive int")
    if heuristic is None:
        heuristic = "chebyshev" if neighbourhood == 8 else "manhattan"
    if isinstance(heuristic, str):
        hv = grid_heuristic(costs, goal, heuristic)
    elif callable(heuristic):
        hv = heuristic(costs, goal)
    else:
        hv = heuristic
    hv = jnp.asarray(hv)
    if hv.shape != (b, h, w):
        raise ValueError(f"heuristic has shape {hv.shape}; expected [B, H, W] = {(b, h, w)}")
    out = jax.vmap(_search_one, in_axes=(0, 0, 0, 0, None, None, None))(
        costs, hv, start, goal, int(max_expansions), neighbourhood, jnp.asarray(g_weight, costs.dtype))
    return AStarResult(*out)


def optimal_share(cost: jax.Array, optimal_cost: jax.Array, rtol: float = 1e-5) -> jax.Array:
    """Share of maps whose path cost equals the optimal (Dijkstra) cost, within ``rtol``. ``[B], [B] -> scalar``."""
    cost, optimal_cost = jnp.asarray(cost), jnp.asarray(optimal_cost)
    return jnp.mean(jnp.abs(cost - optimal_cost) <= rtol * jnp.abs(optimal_cost))


def expansion_savings(expansions: jax.Array, baseline_expansions: jax.Array) -> jax.Array:
    """Neural A*'s "Exp": mean over maps of ``max(0, (E_base - E) / E_base)``. ``[B], [B] -> scalar``."""
    e = jnp.asarray(expansions, jnp.float32)
    base = jnp.maximum(jnp.asarray(baseline_expansions, jnp.float32), 1.0)
    return jnp.mean(jnp.maximum(0.0, (base - e) / base))
