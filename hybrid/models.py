"""Hybrid (neural backbone + shortest-path solver) and pure-neural models for terrain shortest-path maps.

``HybridShortestPath`` follows Vlastelica et al., "Differentiation of Blackbox Combinatorial Solvers" (ICLR 2020):
a truncated ResNet maps the image to a ``k x k`` map of positive tile costs, the exact solver
``hybrid.planners.grid_shortest_path`` returns the cheapest path on them, and training backpropagates through the
solver with an estimator from ``hybrid.gradients`` (``blackbox`` with lambda, ``identity`` with projection -- both on
the Hamming loss to the label path -- or ``perturbed`` with its Fenchel--Young loss, Berthet et al. 2020).
``NeuralShortestPath`` is the paper's pure-neural baseline: a larger network that outputs the ``k x k`` path mask
directly (sigmoid, binary cross entropy).

Each model exposes ``loss(batch, key, train) -> (loss, aux)`` on a batch ``{"images" [B, kP, kP, 3] uint8,
"path" [B, k, k], ...}``; ``aux`` holds ``pred`` (the predicted 0/1 mask ``[B, k, k]``) and ``solver_calls`` (the
number of single-map solver calls that loss evaluation made, forward and backward).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hybrid import gradients
from hybrid.backbones import MLP, CostHead, RecurrentConvHead, ResNetEncoder
from hybrid.metrics import hamming
from hybrid.planners import grid_shortest_path


def solve(costs: jax.Array) -> jax.Array:
    """``[B, k, k]`` positive costs -> ``[B, k, k]`` 0/1 optimal path, top-left to bottom-right, 8-neighbour."""
    return grid_shortest_path(costs)[0]


class HybridShortestPath(nnx.Module):
    """Image ``[B, kP, kP, 3]`` -> costs ``[B, k, k]`` (ResNet stem) -> path via the solver, end to end."""

    def __init__(self, k: int, *, estimator: str = "blackbox", lam: float = 20.0, projection: str = "normalize",
                 n_samples: int = 8, sigma: float = 1.0, noise: str = "normal", width: int = 32, blocks: int = 1,
                 norm: str = "group", in_channels: int = 3, rngs: nnx.Rngs):
        self.k = k
        self.estimator = estimator
        self.n_samples = n_samples
        self.encoder = ResNetEncoder(k, width, blocks, in_channels, norm, rngs=rngs)
        self.head = CostHead(width, rngs=rngs)
        kw = {"lam": lam, "projection": projection, "n_samples": n_samples, "sigma": sigma, "noise": noise,
              "clip_min": 1e-3}
        self._solver = gradients.make_estimator(estimator, solve, **kw)
        self._fy = (gradients.fenchel_young_loss(solve, n_samples, sigma, noise, clip_min=1e-3)
                    if estimator == "perturbed" else None)

    def __call__(self, images: jax.Array) -> jax.Array:
        """``[B, kP, kP, 3]`` -> predicted costs ``[B, k, k]`` (positive)."""
        return self.head(self.encoder(images))

    def predict(self, images: jax.Array) -> jax.Array:
        """``[B, kP, kP, 3]`` -> the solver's path on the predicted costs, ``[B, k, k]`` 0/1."""
        return solve(self(images))

    def loss(self, batch, key: jax.Array, train: bool = True):
        costs = self(batch["images"])
        b = costs.shape[0]
        if not train:
            pred = solve(jax.lax.stop_gradient(costs))
            return hamming(pred, batch["path"]), {"pred": pred, "solver_calls": b}
        if self.estimator == "perturbed":
            loss = self._fy(costs, batch["path"], key).mean() / (self.k * self.k)
            return loss, {"pred": None, "solver_calls": self.n_samples * b}
        pred = self._solver(costs, key)
        calls = 2 * b if self.estimator == "blackbox" else b
        return hamming(pred, batch["path"]), {"pred": jax.lax.stop_gradient(pred), "solver_calls": calls}


class NeuralShortestPath(nnx.Module):
    """The pure-neural baseline: image -> ``[B, k, k]`` path logits, BCE per cell (``pos_weight`` on path cells).

    ``head = "mlp"``: a ResNet stem, 1x1 reduce and an MLP over the whole pooled map (each cell's decision needs a
    global view). ``head = "recurrent"``: the stem's ``k x k`` features into ``RecurrentConvHead`` (a shared residual
    conv block iterated ``iterations`` times with the input recalled each time, ``hidden`` channels wide): learned
    iteration, no solver, the net outputs the mask itself.
    """

    def __init__(self, k: int, *, width: int = 64, blocks: int = 2, hidden: int = 512, norm: str = "group",
                 in_channels: int = 3, head: str = "mlp", iterations: int = 20, pool: bool = False,
                 pos_weight: float = 1.0, rngs: nnx.Rngs):
        if head not in ("mlp", "recurrent"):
            raise ValueError(f"head: got {head!r}; allowed: mlp, recurrent")
        self.k = k
        self.head_kind = head
        self.pos_weight = pos_weight
        self.encoder = ResNetEncoder(k, width, blocks, in_channels, norm, rngs=rngs)
        if head == "recurrent":
            self.head = RecurrentConvHead(width, hidden, iterations, pool, rngs=rngs)
        else:
            self.reduce = nnx.Conv(width, 16, (1, 1), rngs=rngs)
            self.head = MLP(16 * k * k, [hidden, hidden], k * k, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        """``[B, kP, kP, 3]`` -> path logits ``[B, k, k]``."""
        feats = self.encoder(images)
        if self.head_kind == "recurrent":
            return self.head(feats)
        x = jax.nn.relu(self.reduce(feats))
        return self.head(x.reshape(x.shape[0], -1)).reshape(-1, self.k, self.k)

    def predict(self, images: jax.Array) -> jax.Array:
        return (self(images) > 0).astype(jnp.float32)

    def loss(self, batch, key: jax.Array, train: bool = True):
        logits = self(batch["images"])
        path = batch["path"]
        weight = 1.0 + (self.pos_weight - 1.0) * path
        loss = (weight * optax.sigmoid_binary_cross_entropy(logits, path)).mean()
        pred = (jax.lax.stop_gradient(logits) > 0).astype(jnp.float32)
        return loss, {"pred": pred, "solver_calls": 0}


__all__ = [
    "HybridShortestPath",
    "NeuralShortestPath",
    "solve",
]
