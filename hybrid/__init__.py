"""hybrid: a small neural backbone paired with an exact symbolic planner, trained end to end.

Planners (``hybrid.planners``: grid shortest path, A*, MCTS) are pure, batched, jittable JAX; ``hybrid.gradients``
differentiates through any solver (blackbox, identity with projection, perturbed + Fenchel--Young);
``hybrid.backbones`` / ``hybrid.models`` hold the Flax NNX encoders, the hybrid shortest-path model and the
pure-neural baseline (Vlastelica et al., ICLR 2020); ``hybrid.tasks`` generates terrain SP(k), planning maps,
Countdown and N-digit addition offline; ``hybrid.registry`` registers all of it with the experiment runner.
"""

from hybrid.backbones import MLP, CostHead, ResNetEncoder
from hybrid.gradients import blackbox, fenchel_young_loss, identity, make_estimator, perturbed
from hybrid.metrics import path_metrics
from hybrid.models import HybridShortestPath, NeuralShortestPath
from hybrid.planners import grid_shortest_path

__all__ = [
    "MLP",
    "CostHead",
    "HybridShortestPath",
    "NeuralShortestPath",
    "ResNetEncoder",
    "blackbox",
    "fenchel_young_loss",
    "grid_shortest_path",
    "identity",
    "make_estimator",
    "path_metrics",
    "perturbed",
]
