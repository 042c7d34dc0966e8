"""Pure, batched, jittable JAX planners: grid shortest path, A* / best-first search, MCTS (mctx)."""

from hybrid.planners.astar import AStarResult
from hybrid.planners.astar import astar
from hybrid.planners.astar import expansion_savings
from hybrid.planners.astar import grid_heuristic
from hybrid.planners.astar import obstacle_costs
from hybrid.planners.astar import optimal_share
from hybrid.planners.grid import NEIGHBOUR_OFFSETS
from hybrid.planners.grid import grid_distances
from hybrid.planners.grid import grid_shortest_path
from hybrid.planners.grid import path_cost
from hybrid.planners.mcts import Episodes
from hybrid.planners.mcts import from_nnx
from hybrid.planners.mcts import mcts_policy
from hybrid.planners.mcts import play_episodes
from hybrid.planners.mcts import uniform_network

__all__ = [
    "AStarResult",
    "Episodes",
    "NEIGHBOUR_OFFSETS",
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
