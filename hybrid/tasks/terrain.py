"""Terrain shortest-path maps SP(k): procedurally textured k x k tile images labelled with an optimal path.

A stand-in for the Warcraft shortest-path maps of Vlastelica et al., "Differentiation of Blackbox Combinatorial
Solvers" (ICLR 2020), generated offline from a ``jax.random`` key (no download). Each map is a k x k grid of tiles;
each tile shows one of ``len(TERRAIN_COSTS)`` terrain types as a ``tile_px x tile_px`` RGB texture. A type has a
hidden cost (the Warcraft-like range 0.8 ... 9.2), a base colour and a pattern (flat, stripes, checker, dots...);
every tile draws its own brightness, tint and pixel noise, and two pairs of types share a base colour and differ
only by pattern, so telling types apart takes a look at the texture. Terrain types come in spatially coherent
patches (a smooth random field cut at random thresholds), so optimal paths wind around expensive regions.

The label is an optimal 8-neighbour, vertex-weighted path from the top-left to the bottom-right tile on the true
costs (``hybrid.planners.grid_shortest_path``), with its cost. Everything is vectorised (numpy on the host, seeded from the key; the
solver in JAX): 10,000 maps of 12 x 12 take seconds.

Arrays (N maps):
  ``images [N, k*tile_px, k*tile_px, 3] uint8``, ``types [N, k, k] int32``, ``costs [N, k, k] float32``,
  ``path [N, k, k] float32`` (0/1), ``opt_cost [N] float32``.
"""

from __future__ import annotations

import jax
import numpy as np
import scipy.ndimage

from hybrid.planners import grid_shortest_path

# hidden costs of the terrain types (Warcraft-like spread: 0.8 ... 9.2)
TERRAIN_COSTS = (0.8, 1.2, 5.3, 7.7, 9.2)
# base RGB colours in [0, 1]; types 0/2 share a green, types 1/3 share a brown: only the pattern tells them apart
_COLOURS = np.array([[0.30, 0.60, 0.25],
                     [0.60, 0.45, 0.25],
                     [0.30, 0.60, 0.25],
                     [0.60, 0.45, 0.25],
                     [0.35, 0.35, 0.65]], np.float32)
# relative frequency of each type in a map (cheap types commoner, as in Warcraft maps)
_FREQS = np.array([0.35, 0.2, 0.2, 0.15, 0.1], np.float32)


def _patterns(tile_px: int) -> np.ndarray:
    """``[T, P, P]`` texture patterns in [-1, 1]: flat, horizontal stripes, checker, vertical stripes, dots."""
    i, j = np.meshgrid(np.arange(tile_px), np.arange(tile_px), indexing="ij")
    flat = np.zeros((tile_px, tile_px))
    hstripes = np.where(i % 2 == 0, 1.0, -1.0)
    checker = np.where((i + j) % 2 == 0, 1.0, -1.0)
    vstripes = np.where(j % 2 == 0, 1.0, -1.0)
    dots = np.where((i % 2 == 0) & (j % 2 == 0), 1.0, -0.3)
    return np.stack([flat, hstripes, checker, vstripes, dots]).astype(np.float32)


def _rng(key: jax.Array) -> np.random.Generator:
    """A numpy generator seeded from a ``jax.random`` key (host-side generation is much faster on CPU)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def terrain_types(key: jax.Array, n: int, k: int) -> np.ndarray:
    """``[n, k, k] int32`` terrain types in spatially coherent patches (a smooth random field, quantised)."""
    rng = _rng(key)
    if n == 0:
        return np.zeros((0, k, k), np.int32)
    coarse = max(2, k // 3)
    low = rng.standard_normal((n, coarse, coarse)).astype(np.float32)
    field = scipy.ndimage.zoom(low, (1, k / coarse, k / coarse), order=3, mode="nearest")[:, :k, :k]
    field = field + 0.35 * rng.standard_normal((n, k, k)).astype(np.float32)
    # per-map quantile thresholds so every map holds every type in roughly the set proportions
    flat = field.reshape(n, -1)
    qs = np.quantile(flat, np.cumsum(_FREQS)[:-1], axis=1).T                        # [n, T-1]
    types = np.sum(flat[:, :, None] > qs[:, None, :], axis=-1)
    return types.reshape(n, k, k).astype(np.int32)


def render(key: jax.Array, types: np.ndarray, tile_px: int = 4, noise: float = 0.08) -> np.ndarray:
    """Textured RGB images ``[n, k*P, k*P, 3] uint8`` of terrain ``types [n, k, k]`` (P = ``tile_px``)."""
    types = np.asarray(types)
    n, k, _ = types.shape
    rng = _rng(key)
    pats = _patterns(tile_px)[types]                                                # [n, k, k, P, P]
    base = _COLOURS[types]                                                          # [n, k, k, 3]
    bright = 1.0 + 0.15 * rng.uniform(-1, 1, (n, k, k, 1)).astype(np.float32)
    tint = 0.05 * rng.standard_normal((n, k, k, 3)).astype(np.float32)
    contrast = 0.12 * (1.0 + 0.3 * rng.uniform(-1, 1, (n, k, k, 1, 1)).astype(np.float32))
    tile = (base * bright + tint)[:, :, :, None, None, :] + (contrast * pats)[..., None]  # [n, k, k, P, P, 3]
    tile += noise * rng.standard_normal(tile.shape, dtype=np.float32)
    img = np.transpose(tile, (0, 1, 3, 2, 4, 5)).reshape(n, k * tile_px, k * tile_px, 3)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def make_maps(key: jax.Array, n: int, k: int = 12, tile_px: int = 4, noise: float = 0.08,
              chunk: int = 2048) -> dict[str, np.ndarray]:
    """``n`` terrain SP(k) maps with images, true costs and optimal paths, deterministic in ``key``.

    Returns numpy arrays: ``images [n, kP, kP, 3] uint8``, ``types``/``costs``/``path [n, k, k]``, ``opt_cost [n]``.
    """
    if k < 2:
        raise ValueError(f"k: got {k!r}; allowed: an integer >= 2")
    if tile_px < 2:
        raise ValueError(f"tile_px: got {tile_px!r}; allowed: an integer >= 2")
    if n < 0:
        raise ValueError(f"n: got {n!r}; allowed: an integer >= 0")
    kt, kr = jax.random.split(key)
    types = terrain_types(kt, n, k)
    images = render(kr, types, tile_px, noise)
    costs = np.asarray(TERRAIN_COSTS, np.float32)[types]
    paths, opts = [], []
    for s in range(0, n, chunk):
        p, c = _solve(costs[s:s + chunk])
        paths.append(np.asarray(p))
        opts.append(np.asarray(c))
    path = np.concatenate(paths) if paths else np.zeros((0, k, k), np.float32)
    opt = np.concatenate(opts) if opts else np.zeros((0,), np.float32)
    return {"images": images, "types": types, "costs": costs,
            "path": path.astype(np.float32), "opt_cost": opt.astype(np.float32)}


@jax.jit
def _solve(costs):
    return grid_shortest_path(costs)


def make_splits(key: jax.Array, k: int = 12, train_size: int = 1000, val_size: int = 200, test_size: int = 1000,
                tile_px: int = 4, noise: float = 0.08) -> dict[str, dict[str, np.ndarray]]:
    """Train / val / test splits drawn from independent sub-keys of ``key``.

    Each split depends only on ``key`` and its own size, so the test maps are the same whatever ``train_size``
    (a data-scaling sweep evaluates every size on one test set) and a smaller train split is a prefix of a larger
    one only if drawn in the same chunks -- do not rely on that.
    """
    return {name: make_maps(jax.random.fold_in(key, i), size, k, tile_px, noise)
            for i, (name, size) in enumerate((("train", train_size), ("val", val_size), ("test", test_size)))}


__all__ = [
    "TERRAIN_COSTS",
    "make_maps",
    "make_splits",
    "render",
    "terrain_types",
]
