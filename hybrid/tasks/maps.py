"""Procedural 2-D planning maps for A*: random-rectangle obstacle maps and mazes, with connected start and goal.

Stand-ins (no downloads) for the map families of Neural A* (Yonetani et al., "Path Planning using Neural A*
Search", ICML 2021: MP dataset of 32x32 obstacle maps; mazes). Generated offline in numpy from a ``jax.random``
key: the same key gives the same maps. Mazes are perfect mazes from a randomized depth-first search (recursive
backtracker) on a cell lattice; obstacle maps are unions of random axis-aligned rectangles, with the start in the
largest 8-connected free region and the goal in the same region, far from the start.

Each generator returns a dict of numpy arrays: ``obstacles [N, S, S]`` float32 (1 = obstacle),
``start [N, 2]`` and ``goal [N, 2]`` int32 ``(row, col)`` on free, mutually reachable cells (8-neighbourhood for
obstacle maps; mazes are connected through 4-neighbour corridors, hence through 8 as well).
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import ndimage

__all__ = [
    "maze_maps",
    "obstacle_maps",
]


def _rng(key) -> np.random.Generator:
    """A numpy generator seeded from a ``jax.random`` key (typed or raw)."""
    seed = np.asarray(jax.random.randint(key, (4,), 0, np.iinfo(np.int32).max)).astype(np.int64)
    return np.random.default_rng(seed.tolist())


def _check(num, size, min_size, name="size"):
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num={num!r} must be a positive int")
    if not isinstance(size, (int, np.integer)) or size < min_size:
        raise ValueError(f"{name}={size!r} must be an int >= {min_size}")


def _far_pair(free: np.ndarray, rng: np.random.Generator):
    """A start and a goal in the largest 8-connected free region, the goal among the farther half of its cells."""
    labels, _n = ndimage.label(free, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    region = np.argwhere(labels == 1 + int(np.argmax(sizes)))
    start = region[rng.integers(len(region))]
    dist = np.max(np.abs(region - start), axis=1)  # Chebyshev distance
    far = region[dist >= np.median(dist)]
    far = far[np.any(far != start, axis=1)] if len(region) > 1 else far
    goal = far[rng.integers(len(far))]
    return start, goal


def obstacle_maps(key, num: int, size: int = 32, rects: tuple[int, int] = (4, 10),
                  rect_size: tuple[int, int] = (2, 10)):
    """Random-rectangle obstacle maps.

    Args:
      key: ``jax.random`` key.
      num: number of maps ``N``.
      size: side ``S`` of each square map.
      rects: inclusive range of the number of rectangles per map.
      rect_size: inclusive range of a rectangle's side lengths.

    Returns:
      ``{"obstacles": [N, S, S] float32, "start": [N, 2] int32, "goal": [N, 2] int32}``.
    """
    _check(num, size, 4)
    if not (1 <= rects[0] <= rects[1]) or not (1 <= rect_size[0] <= rect_size[1] <= size):
        raise ValueError(f"rects={rects!r} / rect_size={rect_size!r} must be increasing positive ranges "
                         f"(rect_size at most size={size})")
    rng = _rng(key)
    obstacles = np.zeros((num, size, size), np.float32)
    start = np.zeros((num, 2), np.int32)
    goal = np.zeros((num, 2), np.int32)
    for i in range(num):
        m = obstacles[i]
        for _ in range(rng.integers(rects[0], rects[1] + 1)):
            hh, ww = rng.integers(rect_size[0], rect_size[1] + 1, size=2)
            r, c = rng.integers(0, size - hh + 1), rng.integers(0, size - ww + 1)
            m[r:r + hh, c:c + ww] = 1.0
        if m.sum() > 0.75 * size * size:  # keep enough free space: clear a random half of the rectangles' cells
            m[rng.random(m.shape) < 0.5] = 0.0
        start[i], goal[i] = _far_pair(m == 0, rng)
    return {"obstacles": obstacles, "start": start, "goal": goal}


def _dfs_maze(cells_h: int, cells_w: int, rng: np.random.Generator) -> np.ndarray:
    """Perfect maze on a ``cells_h x cells_w`` lattice -> ``[2 cells_h + 1, 2 cells_w + 1]`` 0/1 walls."""
    grid = np.ones((2 * cells_h + 1, 2 * cells_w + 1), np.float32)
    seen = np.zeros((cells_h, cells_w), bool)
    stack = [(int(rng.integers(cells_h)), int(rng.integers(cells_w)))]
    seen[stack[0]] = True
    grid[2 * stack[0][0] + 1, 2 * stack[0][1] + 1] = 0.0
    while stack:
        r, c = stack[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < cells_h and 0 <= c + dc < cells_w and not seen[r + dr, c + dc]]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = nbrs[rng.integers(len(nbrs))]
        seen[nr, nc] = True
        grid[2 * nr + 1, 2 * nc + 1] = 0.0
        grid[r + nr + 1, c + nc + 1] = 0.0  # the wall between the two cells
        stack.append((nr, nc))
    return grid


def maze_maps(key, num: int, size: int = 32):
    """Perfect mazes (randomized depth-first search) padded with wall to ``size x size``.

    The lattice has ``(size - 1) // 2`` cells a side; start and goal are two distinct lattice cells, the goal in
    the farther half (Chebyshev) from the start.

    Returns:
      ``{"obstacles": [N, S, S] float32, "start": [N, 2] int32, "goal": [N, 2] int32}``.
    """
    _check(num, size, 5)
    rng = _rng(key)
    k = (size - 1) // 2
    obstacles = np.ones((num, size, size), np.float32)
    start = np.zeros((num, 2), np.int32)
    goal = np.zeros((num, 2), np.int32)
    lattice = np.stack(np.meshgrid(np.arange(k), np.arange(k), indexing="ij"), -1).reshape(-1, 2) * 2 + 1
    for i in range(num):
        obstacles[i, :2 * k + 1, :2 * k + 1] = _dfs_maze(k, k, rng)
        s = lattice[rng.integers(len(lattice))]
        dist = np.max(np.abs(lattice - s), axis=1)
        far = lattice[(dist >= np.median(dist)) & (dist > 0)]
        start[i], goal[i] = s, far[rng.integers(len(far))]
    return {"obstacles": obstacles, "start": start, "goal": goal}
