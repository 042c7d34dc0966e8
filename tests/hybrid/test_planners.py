"""grid_shortest_path against scipy.sparse.csgraph.dijkstra, path validity, tie-breaking rule, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from hybrid.planners import NEIGHBOUR_OFFSETS, grid_distances, grid_shortest_path, path_cost

solve = jax.jit(grid_shortest_path, static_argnames="neighbourhood")


def grid_graph(c: np.ndarray, neighbourhood: int) -> sp.csr_matrix:
    """Directed graph whose edge u -> v weighs costs[v] (vertex-weighted grid, source cost added apart)."""
    h, w = c.shape
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for dr, dc in NEIGHBOUR_OFFSETS[:neighbourhood]:
        r0, r1, c0, c1 = max(0, -dr), min(h, h - dr), max(0, -dc), min(w, w - dc)
        rows.append(idx[r0:r1, c0:c1].ravel())
        cols.append(idx[r0 + dr:r1 + dr, c0 + dc:c1 + dc].ravel())
        vals.append(c[r0 + dr:r1 + dr, c0 + dc:c1 + dc].ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w,) * 2)


def scipy_dist(c: np.ndarray, src, neighbourhood: int) -> np.ndarray:
    h, w = c.shape
    d = dijkstra(grid_graph(c, neighbourhood), indices=src[0] * w + src[1])
    return (d + c[src[0], src[1]]).reshape(h, w)


def connected(mask: np.ndarray, a, b, neighbourhood: int) -> bool:
    """Is ``b`` reachable from ``a`` through cells of ``mask``?"""
    if not (mask[tuple(a)] and mask[tuple(b)]):
        return False
    seen, stack = {tuple(a)}, [tuple(a)]
    while stack:
        r, c = stack.pop()
        for dr, dc in NEIGHBOUR_OFFSETS[:neighbourhood]:
            n = (r + dr, c + dc)
            if 0 <= n[0] < mask.shape[0] and 0 <= n[1] < mask.shape[1] and mask[n] and n not in seen:
                seen.add(n)
                stack.append(n)
    return tuple(b) in seen


@pytest.mark.parametrize("shape", [(12, 12), (7, 13), (16, 5), (1, 6)])
@pytest.mark.parametrize("neighbourhood", [4, 8])
def test_matches_scipy_dijkstra(shape, neighbourhood):
    rng = np.random.default_rng(hash((shape, neighbourhood)) % 2**32)
    costs = rng.uniform(0.1, 10.0, (6, *shape)).astype(np.float32)
    path, cost = solve(costs, neighbourhood=neighbourhood)
    path, cost = np.asarray(path), np.asarray(cost)
    h, w = shape
    ref = np.array([scipy_dist(c, (0, 0), neighbourhood)[-1, -1] for c in costs])
    np.testing.assert_allclose(cost, ref, rtol=1e-5)
    # Each mask is a connected source->target set whose cost sum is the optimum, hence exactly an optimal path.
    np.testing.assert_allclose(np.asarray(path_cost(path, costs)), cost, rtol=1e-5)
    assert set(np.unique(path)) <= {0.0, 1.0}
    for m in path:
        assert connected(m > 0, (0, 0), (h - 1, w - 1), neighbourhood)


@pytest.mark.parametrize("neighbourhood", [4, 8])
def test_per_map_source_target_and_all_distances(neighbourhood):
    rng = np.random.default_rng(1)
    b, h, w = 5, 9, 11
    costs = rng.integers(1, 9, (b, h, w)).astype(np.float32)
    src = np.stack([rng.integers(0, h, b), rng.integers(0, w, b)], 1).astype(np.int32)
    tgt = np.stack([rng.integers(0, h, b), rng.integers(0, w, b)], 1).astype(np.int32)
    path, cost = solve(costs, src, tgt, neighbourhood=neighbourhood)
    dist, _ = grid_distances(costs, src, neighbourhood=neighbourhood)
    for i in range(b):
        ref = scipy_dist(costs[i], src[i], neighbourhood)
        np.testing.assert_array_equal(np.asarray(dist[i]), ref)  # integer costs: exact
        assert float(cost[i]) == ref[tuple(tgt[i])]
        assert connected(np.asarray(path[i]) > 0, src[i], tgt[i], neighbourhood)
        assert float(path_cost(path[i:i + 1], costs[i:i + 1])[0]) == float(cost[i])


def rule_path(c: np.ndarray, neighbourhood: int) -> np.ndarray:
    """The documented tie rule, from scipy's distances: step to the least-distance neighbour, first in order."""
    h, w = c.shape
    d = scipy_dist(c, (0, 0), neighbourhood)
    cur, mask = (h - 1, w - 1), np.zeros((h, w))
    mask[cur] = 1
    while cur != (0, 0):
        best = None
        for dr, dc in NEIGHBOUR_OFFSETS[:neighbourhood]:
            n = (cur[0] + dr, cur[1] + dc)
            if 0 <= n[0] < h and 0 <= n[1] < w and (best is None or d[n] < d[best]):
                best = n
        cur = best
        mask[cur] = 1
    return mask


@pytest.mark.parametrize("neighbourhood", [4, 8])
def test_ties_follow_the_documented_rule_deterministically(neighbourhood):
    rng = np.random.default_rng(2)
    # Few distinct integer costs make many equal-cost paths.
    costs = np.concatenate([np.ones((1, 6, 8)), rng.integers(1, 3, (5, 6, 8))]).astype(np.float32)
    path, _ = solve(costs, neighbourhood=neighbourhood)
    for m, c in zip(np.asarray(path), costs):
        np.testing.assert_array_equal(m, rule_path(c, neighbourhood))
    # The same map anywhere in a batch, and on a second call, gives the same path.
    again, _ = solve(costs[::-1].copy(), neighbourhood=neighbourhood)
    np.testing.assert_array_equal(np.asarray(again)[::-1], np.asarray(path))


def test_walls_and_unreachable_target():
    costs = np.ones((2, 5, 5), np.float32)
    costs[:, 2, :] = np.inf  # a full wall row
    costs[0, 2, 4] = 1.0  # with a gap in map 0
    path, cost = solve(costs, neighbourhood=4)
    assert float(cost[0]) == 9.0 and connected(np.asarray(path[0]) > 0, (0, 0), (4, 4), 4)
    assert np.isinf(float(cost[1])) and float(path[1].sum()) == 0.0


def test_traced_inside_jit_and_vmap():
    costs = jnp.asarray(np.random.default_rng(3).uniform(1, 2, (2, 3, 4, 4)), jnp.float32)
    out = jax.jit(jax.vmap(lambda c: grid_shortest_path(c)[1]))(costs)
    flat = grid_shortest_path(costs.reshape(6, 4, 4))[1]
    np.testing.assert_allclose(np.asarray(out).ravel(), np.asarray(flat))


@pytest.mark.parametrize("kwargs, match", [
    ({"costs": np.ones((4, 4))}, "costs has shape"),
    ({"costs": -np.ones((1, 4, 4))}, "costs must be positive"),
    ({"costs": np.full((1, 4, 4), np.nan)}, "costs must be positive"),
    ({"costs": np.ones((1, 4, 4)), "neighbourhood": 6}, "neighbourhood=6"),
    ({"costs": np.ones((1, 4, 4)), "source": (4, 0)}, "source="),
    ({"costs": np.ones((2, 4, 4)), "target": np.zeros((3, 2), np.int32)}, "target has shape"),
])
def test_bad_input_raises_one_line_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        grid_shortest_path(**kwargs)
    assert "\n" not in str(err.value)
