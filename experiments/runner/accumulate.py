"""Gradient accumulation: one optimizer update from ``train.grad_accum`` microbatches of a step's batch.

The batch ``[B, ...]`` is cut into ``accum`` microbatches of ``B / accum`` rows and ``lax.scan`` runs forward and
backward over one at a time, so activation memory is that of a microbatch; the gradients are summed in a carry
and averaged, then the optimizer updates once. For a loss that is a mean over equal-sized microbatches this is the
large batch's gradient (up to float rounding); a mixture of experts' capacity and balance losses are per
microbatch, so its figures differ slightly. (MaxText's ``gradient_accumulation_steps``; levanter's
``microbatch_size``.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def microbatches(batch, accum: int, sharding):
    """``batch`` leaves ``[B, ...]`` as ``[accum, B / accum, ...]``: microbatch ``j`` is rows ``j, j + accum, ...``,
    so each device's rows stay its own (no data moves) and every microbatch is split over the batch axes."""
    spec = P(None, *sharding.spec)

    def one(x):
        x = x.reshape(x.shape[0] // accum, accum, *x.shape[1:]).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(x, NamedSharding(sharding.mesh, spec))

    return jax.tree.map(one, batch)


def accumulated(value_and_grad, params, rest, batch, accum: int, sharding, counts=()):
    """``(loss, metrics, rest, grads)`` of ``value_and_grad(params, rest, microbatch) -> ((loss, (metrics,
    rest)), grads)`` over ``accum`` microbatches (``lax.scan``: one microbatch's activations live at a time), the
    gradients and metrics averaged (``counts`` summed), ``rest`` (BatchNorm statistics, routing biases) carried
    from one microbatch to the next. Equal-sized microbatches of a mean loss give the large batch's gradient."""
    def body(carry, micro):
        rest, total = carry
        (loss, (metrics, rest)), grads = value_and_grad(params, rest, micro)
        return (rest, jax.tree.map(jnp.add, total, grads)), (loss, metrics)

    zeros = jax.tree.map(jnp.zeros_like, params)
    (rest, total), (losses, metrics) = jax.lax.scan(body, (rest, zeros), microbatches(batch, accum, sharding))
    metrics = {k: v.sum(0) if k in counts else v.mean(0) for k, v in metrics.items()}
    return losses.mean(), metrics, rest, jax.tree.map(lambda g: g / accum, total)
