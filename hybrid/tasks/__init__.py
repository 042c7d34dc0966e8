"""Offline procedural tasks for the hybrid path: terrain SP(k), obstacle maps and mazes, Countdown, digit addition."""

from hybrid.tasks.countdown import Countdown, countdown_instances
from hybrid.tasks.digit_addition import add_digits, load_pool, sample_examples, sum_log_likelihood
from hybrid.tasks.maps import maze_maps, obstacle_maps
from hybrid.tasks.terrain import TERRAIN_COSTS, make_maps, make_splits

__all__ = [
    "TERRAIN_COSTS",
    "Countdown",
    "add_digits",
    "countdown_instances",
    "load_pool",
    "make_maps",
    "make_splits",
    "maze_maps",
    "obstacle_maps",
    "sample_examples",
    "sum_log_likelihood",
]
