"""Quantum natural gradient (QNG) as an optax transformation.

Stokes, Izaac, Killoran & Carleo, "Quantum Natural Gradient", Quantum 4, 269 (2020), arXiv:1909.02108: precondition
the gradient with the Fubini–Study metric g of the parametrised state,

    θ_{t+1} = θ_t − η (g(θ_t) + εI)^{-1} ∇L(θ_t),

with ε the Tikhonov regularisation (PennyLane's ``QNGOptimizer(lam=ε)``). The metric is either passed per step as
the extra argument ``metric=`` (``[P, P]``, or PennyLane's ``[*shape, *shape]`` layout) or computed from
``metric_fn(params)`` — e.g. ``lambda p: quantum_opt.fubini_study_metric(circuit.state, p)`` or its block-diagonal
approximation — or, given ``metric_data``, from ``metric_fn(params, metric_data)``: a pytree kept in the state (the
inputs of a quantum layer the metric is averaged over, say), so runs that differ only in it share one compiled step. Parameters may be any pytree (flattened with ``jax.flatten_util.ravel_pytree``; the metric is indexed
in that order). The transformation is pure and jittable, composes with ``optax.chain``, and ignores extra arguments
it does not use (``value``, ``value_fn``, ``grad_fn`` from the runner).

Counters in the state: ``metric_evals`` (calls of ``metric_fn``) and ``circuit_evals`` (``circuits_per_metric`` per
metric evaluation; default 1 = one simulator call of the state and its Jacobian — set it to the number of circuits
your metric estimate needs on hardware, e.g. ``P*(P+1)/2 + P`` Hadamard tests for the full metric). Gradient
evaluations are the caller's (the runner counts its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

__all__ = ["QNGState", "qng"]


class QNGState(NamedTuple):
    count: jax.Array  # int32 [], steps taken
    metric_evals: jax.Array  # int32 [], calls of metric_fn
    circuit_evals: jax.Array  # int32 [], circuits_per_metric per metric_fn call
    metric_data: Any = ()  # the second argument of metric_fn, or ()


def qng(
    learning_rate: float | Callable,
    *,
    metric_fn: Callable | None = None,
    metric_data: Any = None,
    regularization: float = 1e-3,
    circuits_per_metric: int = 1,
) -> optax.GradientTransformationExtraArgs:
    """Quantum natural gradient descent: updates ``−η (g + εI)^{-1} grad``.

    learning_rate: η, a float or an optax schedule ``step -> η``.
    metric_fn: ``params -> g [P, P]`` (``(params, metric_data) -> g`` when ``metric_data`` is given); used when the
    ``metric=`` extra argument is not given to ``update``.
    metric_data: an optional pytree of arrays stored in the state and passed to ``metric_fn``.
    regularization: ε >= 0 added to the metric's diagonal (the system is solved as positive definite; with ε = 0
    a singular metric gives non-finite updates).
    """
    if not callable(learning_rate) and not float(learning_rate) > 0:
        raise ValueError(f"learning_rate: got {learning_rate!r}; allowed: a positive float or an optax schedule")
    if not float(regularization) >= 0:
        raise ValueError(f"regularization: got {regularization!r}; allowed: a float >= 0")
    if metric_fn is not None and not callable(metric_fn):
        raise ValueError(f"metric_fn: got {metric_fn!r}; allowed: None or a callable params -> [P, P] metric")
    if int(circuits_per_metric) < 0:
        raise ValueError(f"circuits_per_metric: got {circuits_per_metric!r}; allowed: an integer >= 0")

    def init(params):
        del params
        zero = lambda: jnp.zeros([], jnp.int32)  # distinct buffers: a runner may donate the whole state
        data = () if metric_data is None else jax.tree.map(jnp.array, metric_data)
        return QNGState(count=zero(), metric_evals=zero(), circuit_evals=zero(), metric_data=data)

    def update(updates, state, params=None, *, metric=None, **extra_args):
        del extra_args
        flat, unravel = ravel_pytree(updates)
        n = flat.shape[0]
        metric_evals, circuit_evals = state.metric_evals, state.circuit_evals
        if metric is None:
            if metric_fn is None:
                raise ValueError("metric: got None and no metric_fn; allowed: update(..., metric=g) or qng(metric_fn=f)")
            if params is None:
                raise ValueError("params: got None; allowed: the current params (metric_fn needs them)")
            metric = metric_fn(params) if metric_data is None else metric_fn(params, state.metric_data)
            metric_evals = metric_evals + 1
            circuit_evals = circuit_evals + int(circuits_per_metric)
        metric = jnp.asarray(metric)
        if metric.size != n * n:
            raise ValueError(f"metric: got shape {tuple(metric.shape)}; allowed: [{n}, {n}] for {n} parameters")
        metric = metric.reshape(n, n).astype(flat.dtype)
        system = metric + regularization * jnp.eye(n, dtype=flat.dtype)
        natural = jax.scipy.linalg.solve(system, flat, assume_a="pos")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        new_updates = unravel((-lr * natural).astype(flat.dtype))
        count = optax.safe_int32_increment(state.count)
        return new_updates, QNGState(count=count, metric_evals=metric_evals, circuit_evals=circuit_evals,
                                     metric_data=state.metric_data)

    return optax.GradientTransformationExtraArgs(init, update)
