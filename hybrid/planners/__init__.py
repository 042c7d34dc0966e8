"""Pure, batched, jittable JAX planners: grid shortest path, A* / best-first search, MCTS (mctx)."""

from hybrid.planners.astar import AStarResult, astar, expansion_savings, grid_heuristic, obstacle_costs, optimal_share
from hybrid.planners.grid import NEIGHBOUR_OFFSETS, grid_distances, grid_shortest_path, path_cost
from hybrid.planners.mcts import Episodes, from_nnx, mcts_policy, play_episodes, uniform_network

__all__ = [
    "NEIGHBOUR_OFFSETS",
    "AStarResult",
    "Episodes",
    "astar",
    "expansion_savings",
    "from_nnx",
    "grid_distances",
    "grid_heuristic",
    "grid_shortest_path",
    "mcts_policy",
    "obstacle_costs",
    "optimal_share",
    "path_cost",
    "play_episodes",
    "uniform_network",
]
