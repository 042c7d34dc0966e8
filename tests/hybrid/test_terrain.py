"""Terrain SP(k) generator and path metrics: determinism, optimal labels (scipy parity), metric semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from hybrid.metrics import connects, path_metrics
from hybrid.tasks.terrain import TERRAIN_COSTS, make_maps, make_splits


def scipy_opt_cost(costs):
    """Vertex-weighted 8-neighbour shortest path cost, top-left to bottom-right (edge u->v weighs costs[v])."""
    h, w = costs.shape
    rows, cols, vals = [], [], []
    for i in range(h):
        for j in range(w):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if (di or dj) and 0 <= a < h and 0 <= b < w:
                        rows.append(i * w + j), cols.append(a * w + b), vals.append(costs[a, b])
    g = csr_matrix((vals, (rows, cols)), shape=(h * w, h * w))
    return dijkstra(g, indices=0)[h * w - 1] + costs[0, 0]


@pytest.fixture(scope="module")
def maps():
    return make_maps(jax.random.key(3), 24, k=8, tile_px=4)


def test_shapes_types_and_determinism(maps):
    assert maps["images"].shape == (24, 32, 32, 3) and maps["images"].dtype == np.uint8
    assert maps["path"].shape == maps["costs"].shape == (24, 8, 8)
    np.testing.assert_array_equal(maps["costs"], np.asarray(TERRAIN_COSTS, np.float32)[maps["types"]])
    assert len(np.unique(maps["types"])) == len(TERRAIN_COSTS)
    again = make_maps(jax.random.key(3), 24, k=8, tile_px=4)
    for name in maps:
        np.testing.assert_array_equal(maps[name], again[name])
    other = make_maps(jax.random.key(4), 24, k=8, tile_px=4)
    assert not np.array_equal(other["images"], maps["images"])


def test_labels_are_optimal_valid_paths_scipy_parity(maps):
    for b in range(6):
        np.testing.assert_allclose(maps["opt_cost"][b], scipy_opt_cost(maps["costs"][b]), rtol=1e-5)
    np.testing.assert_allclose((maps["path"] * maps["costs"]).sum((1, 2)), maps["opt_cost"], rtol=1e-5)
    assert bool(jnp.all(connects(jnp.asarray(maps["path"]))))
    assert maps["path"][:, 0, 0].all() and maps["path"][:, -1, -1].all()


def test_texture_not_colour_separates_paired_types(maps):
    """Types 0 and 2 (cheap / dear) share a base colour: mean colours overlap, pixel patterns differ."""
    tiles = maps["images"].reshape(24, 8, 4, 8, 4, 3).transpose(0, 1, 3, 2, 4, 5).astype(np.float32)
    t = maps["types"]
    mean0, mean2 = tiles[t == 0].mean((1, 2, 3)), tiles[t == 2].mean((1, 2, 3))
    assert abs(mean0.mean() - mean2.mean()) < 10            # same colour on average (0..255 scale)
    checker = np.where((np.add.outer(np.arange(4), np.arange(4)) % 2) == 0, 1.0, -1.0)
    score = lambda x: np.mean(np.abs((x.mean(-1) * checker).sum((1, 2))))
    assert score(tiles[t == 2]) > 3 * score(tiles[t == 0])


def test_test_split_does_not_depend_on_train_size():
    a = make_splits(jax.random.key(0), k=6, train_size=5, val_size=2, test_size=7)
    b = make_splits(jax.random.key(0), k=6, train_size=9, val_size=2, test_size=7)
    np.testing.assert_array_equal(a["test"]["images"], b["test"]["images"])
    assert a["train"]["images"].shape[0] == 5 and b["train"]["images"].shape[0] == 9


def test_path_metrics(maps):
    path, costs, opt = (jnp.asarray(maps[n]) for n in ("path", "costs", "opt_cost"))
    m = path_metrics(path, path, costs, opt)
    assert float(m["exact_match"]) == 1 and float(m["cost_match"]) == 1 and abs(float(m["regret"])) < 1e-6
    # a broken mask (a cell of the path removed) is not a valid path, even though it is cheaper
    broken = path.at[:, 0, 0].set(0.0)
    m = path_metrics(broken, path, costs, opt)
    assert float(m["valid_path"]) == 0 and float(m["cost_match"]) == 0 and float(m["regret"]) == 1.0
    # a valid but dearer path: the whole first row and last column
    detour = jnp.zeros_like(path).at[:, 0, :].set(1.0).at[:, :, -1].set(1.0)
    m = path_metrics(detour, path, costs, opt)
    dcost = (detour * costs).sum((1, 2))
    assert float(m["valid_path"]) == 1
    np.testing.assert_allclose(float(m["regret"]), float(jnp.mean((dcost - opt) / opt)), rtol=1e-5)
    np.testing.assert_allclose(float(m["cost_match"]), float(jnp.mean(jnp.abs(dcost - opt) <= 1e-4 * opt)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k: got 1"):
        make_maps(jax.random.key(0), 2, k=1)
    with pytest.raises(ValueError, match="tile_px: got 1"):
        make_maps(jax.random.key(0), 2, k=4, tile_px=1)
