"""Path metrics for shortest-path tasks: exact match, optimal-cost match, normalised regret, path validity.

The metrics of Vlastelica et al., "Differentiation of Blackbox Combinatorial Solvers" (ICLR 2020): a predicted path
counts as correct under ``cost_match`` when it is a valid source-to-target path whose true cost equals the optimal
cost (several paths can be optimal), and under ``exact_match`` when it equals the label path cell for cell.
A pure-neural prediction is a 0/1 mask that may not be a path at all; it is valid only if the mask's cells
connect the source to the target (8-neighbour). Pure, jittable functions on ``[B, H, W]`` arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _dilate(x: jax.Array) -> jax.Array:
    """``[B, H, W]``: 3x3 (8-neighbour) max filter."""
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
    r = jnp.maximum(jnp.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return jnp.maximum(jnp.maximum(r[:, :-2], r[:, 1:-1]), r[:, 2:])


def connects(mask: jax.Array) -> jax.Array:
    """``[B]`` bool: the 0/1 ``mask [B, H, W]`` holds an 8-connected chain from the top-left to the bottom-right."""
    m = (mask > 0.5).astype(jnp.float32)
    reach0 = jnp.zeros_like(m).at[:, 0, 0].set(m[:, 0, 0])

    def cond(state):
        reach, prev_sum, it = state
        return (jnp.sum(reach) > prev_sum) & (it < m.shape[1] * m.shape[2])

    def body(state):
        reach, _, it = state
        return _dilate(reach) * m, jnp.sum(reach), it + 1

    reach, _, _ = jax.lax.while_loop(cond, body, (reach0, jnp.float32(-1.0), jnp.int32(0)))
    return reach[:, -1, -1] > 0.5


def hamming(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Hamming loss between 0/1 masks ``[B, ...]``: summed over cells, averaged over the batch.

    This is the normalisation of Vlastelica et al.'s code (``errors.mean(dim=0).sum()``); it matters because the
    blackbox step ``lam * dL/dy`` then perturbs each cost by ``lam / B``, so their lambda = 20 carries over.
    """
    errors = pred * (1.0 - target) + (1.0 - pred) * target
    return jnp.sum(jnp.mean(errors, axis=0))


def path_metrics(pred: jax.Array, path: jax.Array, costs: jax.Array, opt_cost: jax.Array,
                 rtol: float = 1e-4) -> dict[str, jax.Array]:
    """Batch means of the path metrics.

    Args:
      pred: ``[B, H, W]`` predicted 0/1 mask. path: ``[B, H, W]`` label path. costs: ``[B, H, W]`` true costs.
      opt_cost: ``[B]`` optimal cost.

    Returns (scalars): ``exact_match``; ``cost_match`` (valid and cost within ``rtol`` of optimal);
    ``valid_path``; ``regret`` = ``(cost - opt) / opt`` for valid paths, 1.0 (a 100% regret) for an invalid mask;
    ``hamming``: the training loss's ``hamming`` (cells that disagree with the label, summed over the map,
    averaged over the batch).
    """
    pred = (pred > 0.5).astype(jnp.float32)
    cost = jnp.sum(pred * costs, axis=(1, 2))
    valid = connects(pred)
    exact = jnp.all(pred == (path > 0.5), axis=(1, 2))
    cost_ok = valid & (jnp.abs(cost - opt_cost) <= rtol * opt_cost)
    regret = jnp.where(valid, (cost - opt_cost) / opt_cost, 1.0)
    return {
        "exact_match": exact.mean(),
        "cost_match": cost_ok.mean(),
        "valid_path": valid.mean(),
        "regret": regret.mean(),
        "hamming": hamming(pred, path),
    }


__all__ = [
    "connects",
    "hamming",
    "path_metrics",
]
