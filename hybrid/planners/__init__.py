"""Pure, batched, jittable JAX planners: grid shortest path, A* / best-first search, MCTS (mctx)."""

from hybrid.planners.grid import NEIGHBOUR_OFFSETS
from hybrid.planners.grid import grid_distances
from hybrid.planners.grid import grid_shortest_path
from hybrid.planners.grid import path_cost

__all__ = [
    "NEIGHBOUR_OFFSETS",
    "grid_distances",
    "grid_shortest_path",
    "path_cost",
]
