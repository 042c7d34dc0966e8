"""Simultaneous perturbation stochastic approximation (SPSA) as an optax transformation.

Spall, "Implementation of the simultaneous perturbation algorithm for stochastic optimization", IEEE Trans. Aerospace
and Electronic Systems 34(3), 817–823 (1998). Per step k, with a Rademacher direction Δ_k (entries ±1):

    ĝ_k = (L(θ_k + c_k Δ_k) − L(θ_k − c_k Δ_k)) / (2 c_k) · Δ_k,      θ_{k+1} = θ_k − a_k ĝ_k,
    a_k = a / (A + k + 1)^α,      c_k = c / (k + 1)^γ,      α = 0.602, γ = 0.101 (Spall's practical values).

Two loss evaluations per step, whatever the number of parameters; no gradient. The loss comes from the extra
argument ``value_fn(params) -> scalar`` (the runner passes it on the current batch); the incoming ``updates`` (the
runner's gradients) are ignored except for their structure. The key lives in the state (as raw key data, so the state
checkpoints as plain arrays); the same key gives the same trajectory. ``learning_rate`` / ``perturbation`` may also
be optax schedules ``k -> a_k`` / ``k -> c_k``, which replace the power laws. Counter: ``loss_evals``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from quantum_opt.transforms.keys import key_data

__all__ = ["SPSAState", "spsa", "spsa_gains"]


class SPSAState(NamedTuple):
    count: jax.Array  # int32 [], steps taken (k)
    key: jax.Array  # uint32 [2], raw key data (jax.random.key_data)
    loss_evals: jax.Array  # int32 [], 2 per step


def spsa_gains(a: float | Callable, c: float | Callable, alpha: float, gamma: float, stability: float):
    """``(a_fn, c_fn)``: the gain sequences ``k -> a_k``, ``k -> c_k`` (Spall 1998, Eq. 1 and Sec. III)."""
    a_fn = a if callable(a) else (lambda k: a / (stability + k + 1.0) ** alpha)
    c_fn = c if callable(c) else (lambda k: c / (k + 1.0) ** gamma)
    return a_fn, c_fn


def spsa(
    learning_rate: float | Callable = 0.1,
    *,
    key,
    perturbation: float | Callable = 0.1,
    alpha: float = 0.602,
    gamma: float = 0.101,
    stability: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """SPSA descent: ``update(grads, state, params, value_fn=f)`` returns ``−a_k ĝ_k`` (two calls of ``f``).

    learning_rate: a (or a schedule k -> a_k); perturbation: c (or a schedule k -> c_k); alpha, gamma: the gain
    exponents; stability: A, the stability constant of a_k (Spall suggests ~10% of the expected number of steps).
    key: a ``jax.random`` key (or an int seed) for the Rademacher directions.
    """
    for name, v in (("learning_rate", learning_rate), ("perturbation", perturbation)):
        if not callable(v) and not float(v) > 0:
            raise ValueError(f"{name}: got {v!r}; allowed: a positive float or an optax schedule")
    for name, v in (("alpha", alpha), ("gamma", gamma), ("stability", stability)):
        if not float(v) >= 0:
            raise ValueError(f"{name}: got {v!r}; allowed: a float >= 0")
    raw_key = key_data(key)
    a_fn, c_fn = spsa_gains(learning_rate, perturbation, alpha, gamma, stability)

    def init(params):
        del params
        zero = lambda: jnp.zeros([], jnp.int32)  # distinct buffers: a runner may donate the whole state
        return SPSAState(count=zero(), key=jnp.array(raw_key), loss_evals=zero())

    def update(updates, state, params=None, *, value_fn=None, **extra_args):
        del extra_args
        if value_fn is None:
            raise ValueError("value_fn: got None; allowed: update(grads, state, params, value_fn=params -> loss)")
        if params is None:
            raise ValueError("params: got None; allowed: the current params (SPSA evaluates the loss around them)")
        flat, unravel = ravel_pytree(params)
        _, unravel_updates = ravel_pytree(updates)
        key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
        delta = jax.random.rademacher(sub, flat.shape, dtype=flat.dtype)
        k = state.count.astype(flat.dtype)
        a_k, c_k = a_fn(k), c_fn(k)
        plus = value_fn(unravel(flat + c_k * delta))
        minus = value_fn(unravel(flat - c_k * delta))
        ghat = (plus - minus) / (2.0 * c_k) * delta
        new_updates = unravel_updates((-a_k * ghat).astype(flat.dtype))
        new_state = SPSAState(
            count=optax.safe_int32_increment(state.count),
            key=jax.random.key_data(key),
            loss_evals=state.loss_evals + 2,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)
