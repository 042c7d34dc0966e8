"""A* against grid_shortest_path (scipy-checked), heuristics, budget, Neural A* metrics, map generators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from hybrid.planners import grid_distances, grid_shortest_path
from hybrid.planners.astar import astar, expansion_savings, grid_heuristic, obstacle_costs, optimal_share
from hybrid.tasks.maps import maze_maps, obstacle_maps


@pytest.fixture(scope="module")
def obstacle_batch():
    m = obstacle_maps(jax.random.key(0), 12, size=16, rects=(2, 5), rect_size=(2, 6))
    return obstacle_costs(m["obstacles"]), m["start"], m["goal"]


def random_costs(seed, b=6, h=10, w=12):
    return jnp.asarray(np.random.default_rng(seed).uniform(1.0, 4.0, (b, h, w)), jnp.float32)


@pytest.mark.parametrize("neighbourhood, heuristic", [(8, "chebyshev"), (4, "manhattan"), (8, "euclidean")])
def test_admissible_heuristic_is_optimal(neighbourhood, heuristic, obstacle_batch):
    for costs, start, goal in [(random_costs(0), (0, 0), (9, 11)), obstacle_batch]:
        res = astar(costs, start, goal, heuristic=heuristic, neighbourhood=neighbourhood)
        _, ref = grid_shortest_path(costs, start, goal, neighbourhood=neighbourhood)
        assert bool(res.found.all())
        np.testing.assert_allclose(np.asarray(res.cost), np.asarray(ref), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(jnp.sum(res.path * jnp.where(res.path > 0, costs, 0), (1, 2))),
                                   np.asarray(res.cost), rtol=1e-6)
        assert float(optimal_share(res.cost, ref)) == 1.0


def test_admissible_but_inconsistent_heuristic_is_still_optimal():
    costs = random_costs(1)
    dist_to_goal, _ = grid_distances(costs, (9, 11))
    perfect = dist_to_goal - costs  # exact cost-to-go (cells after v up to the goal)
    noisy = perfect * jax.random.uniform(jax.random.key(1), perfect.shape)  # <= perfect, not consistent
    res = astar(costs, (0, 0), (9, 11), heuristic=noisy)
    _, ref = grid_shortest_path(costs, (0, 0), (9, 11))
    np.testing.assert_allclose(np.asarray(res.cost), np.asarray(ref), rtol=1e-6)


def test_zero_heuristic_is_dijkstra_and_expands_more(obstacle_batch):
    costs, start, goal = obstacle_batch
    dij = astar(costs, start, goal, heuristic="zero")
    ast = astar(costs, start, goal, heuristic="chebyshev")
    _path, ref = grid_shortest_path(costs, start, goal)
    np.testing.assert_allclose(np.asarray(dij.cost), np.asarray(ref))
    # Dijkstra expands every cell strictly closer than the goal: count them from the exact distances.
    dist, _ = grid_distances(costs, start)
    closer = np.sum(np.asarray(dist) < np.asarray(ref)[:, None, None], axis=(1, 2))
    assert np.all(np.asarray(dij.expansions) >= closer + 1)
    assert np.all(np.asarray(ast.expansions) <= np.asarray(dij.expansions))
    assert float(expansion_savings(ast.expansions, dij.expansions)) > 0.2


def test_perfect_heuristic_expands_only_the_path():
    costs = random_costs(2)  # continuous costs: the optimal path is unique
    dist_to_goal, _ = grid_distances(costs, (9, 11))
    res = astar(costs, (0, 0), (9, 11), heuristic=dist_to_goal - costs)
    path, _ = grid_shortest_path(costs, (0, 0), (9, 11))
    np.testing.assert_array_equal(np.asarray(res.expanded), np.asarray(path))
    np.testing.assert_array_equal(np.asarray(res.expansions), np.asarray(path.sum((1, 2))).astype(int))


def test_callable_heuristic_and_g_weight():
    costs = random_costs(3)
    calls = []

    def learned(c, goal):  # stands in for a network: any (costs, goal) -> [B, H, W] function
        calls.append(goal.shape)
        return grid_heuristic(c, goal, "chebyshev")

    res = jax.jit(lambda c: astar(c, (0, 0), (9, 11), heuristic=learned))(costs)
    ref = astar(costs, (0, 0), (9, 11), heuristic="chebyshev")
    assert calls == [(6, 2)]
    np.testing.assert_array_equal(np.asarray(res.expansions), np.asarray(ref.expansions))
    greedy = astar(costs, (0, 0), (9, 11), g_weight=0.0)  # best-first on h alone: few expansions
    assert np.all(np.asarray(greedy.expansions) < np.asarray(ref.expansions))


def test_budget_is_respected():
    costs = random_costs(4)
    res = astar(costs, (0, 0), (9, 11), heuristic="zero", max_expansions=15)
    assert np.all(np.asarray(res.expansions) <= 15)
    assert not bool(res.found.any())  # Dijkstra needs far more than 15 expansions here
    assert np.all(np.isinf(np.asarray(res.cost))) and float(res.path.sum()) == 0.0
    assert np.all(np.asarray(res.expanded.sum((1, 2))) == np.asarray(res.expansions))


def test_metrics_on_known_values():
    assert float(optimal_share(jnp.array([3.0, 4.0, 5.0, 6.0]), jnp.array([3.0, 3.0, 5.0, 6.0]))) == 0.75
    # savings (100-50)/100, 0 (more expansions clip at 0), (10-9)/10 -> mean 0.2
    assert float(expansion_savings(jnp.array([50, 30, 9]), jnp.array([100, 20, 10]))) == pytest.approx(0.2)


def test_maps_are_deterministic_connected_and_varied():
    for gen in (obstacle_maps, maze_maps):
        a, b, c = gen(jax.random.key(5), 6), gen(jax.random.key(5), 6), gen(jax.random.key(6), 6)
        assert a["obstacles"].shape == (6, 32, 32)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a["obstacles"], c["obstacles"])
        idx = np.arange(6)
        assert np.all(a["obstacles"][idx, a["start"][:, 0], a["start"][:, 1]] == 0)
        assert np.all(a["obstacles"][idx, a["goal"][:, 0], a["goal"][:, 1]] == 0)
        assert np.all(np.any(a["start"] != a["goal"], axis=1))
        _, cost = grid_shortest_path(obstacle_costs(a["obstacles"]), a["start"], a["goal"])
        assert np.all(np.isfinite(np.asarray(cost)))


def test_mazes_are_perfect():
    m = maze_maps(jax.random.key(7), 3, size=21)
    for free in m["obstacles"] == 0:
        _, n = ndimage.label(free)  # 4-connected regions
        edges = np.sum(free[1:] & free[:-1]) + np.sum(free[:, 1:] & free[:, :-1])
        assert n == 1 and edges == free.sum() - 1  # connected and acyclic: a spanning tree


@pytest.mark.parametrize("kwargs, match", [
    ({"heuristic": "octagon"}, "heuristic='octagon'"),
    ({"heuristic": jnp.zeros((2, 3, 3))}, "heuristic has shape"),
    ({"max_expansions": 0}, "max_expansions=0"),
    ({"neighbourhood": 5}, "neighbourhood=5"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        astar(jnp.ones((1, 4, 4)), (0, 0), (3, 3), **kwargs)
    with pytest.raises(ValueError, match="num=0"):
        maze_maps(jax.random.key(0), 0)
