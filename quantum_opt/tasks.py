"""Optimisation landscapes with known global minima, as pure functions and as runner tasks' pieces.

- ``double_well(x, tilt)`` = sum_i (x_i^2 - 1)^2 + tilt * x_i: for 0 < tilt < ~1.5 each coordinate has a shallow
  well near +1 and the global one near -1 (the escape problem of Jin et al. 2017, "How to escape saddle points
  efficiently", arXiv:1703.00887, in its simplest form); the minimum is found from the roots of 4x^3 - 4x + tilt.
- ``rastrigin(x)`` = 10 d + sum_i x_i^2 - 10 cos(2 pi x_i) (Rastrigin 1974; Mühlenbein et al. 1991): a lattice of
  local minima around the global minimum 0 at x = 0.

``landscape_loss(kind, ...)`` makes the task loss ``(model, batch, key, train) -> (loss, metrics)`` for a model
whose ``position`` is an ``nnx.Param [d]`` (``PointModel``). Metrics: ``loss``, ``gap`` (loss minus the global
minimum) and ``solved`` (1.0 when the gap is below ``tol``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LANDSCAPES = ("double_well", "rastrigin")


def double_well(x: jax.Array, tilt: float = 0.3) -> jax.Array:
    """``[..., d] -> [...]``: sum_i (x_i^2 - 1)^2 + tilt * x_i."""
    return jnp.sum((x ** 2 - 1.0) ** 2 + tilt * x, axis=-1)


def rastrigin(x: jax.Array) -> jax.Array:
    """``[..., d] -> [...]``: 10 d + sum_i x_i^2 - 10 cos(2 pi x_i); global minimum 0 at x = 0."""
    return 10.0 * x.shape[-1] + jnp.sum(x ** 2 - 10.0 * jnp.cos(2 * jnp.pi * x), axis=-1)


def global_minimum(kind: str, dim: int, tilt: float = 0.3) -> tuple[np.ndarray, float]:
    """(argmin ``[dim]``, minimum value) of the landscape, exact up to float64 root finding."""
    if kind == "rastrigin":
        return np.zeros(dim), 0.0
    if kind == "double_well":
        roots = np.roots([4.0, 0.0, -4.0, tilt])
        real = roots[np.abs(roots.imag) < 1e-9].real
        vals = (real ** 2 - 1) ** 2 + tilt * real
        x = float(real[np.argmin(vals)])
        return np.full(dim, x), float(dim * vals.min())
    raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(LANDSCAPES)}")


def landscape_fn(kind: str, tilt: float = 0.3):
    """The landscape ``[..., d] -> [...]`` called ``kind``."""
    if kind == "double_well":
        return lambda x: double_well(x, tilt)
    if kind == "rastrigin":
        return rastrigin
    raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(LANDSCAPES)}")


class PointModel(nnx.Module):
    """The "model" of a landscape task: a position ``[d]`` (an nnx.Param) started at ``start`` plus Gaussian noise
    of scale ``noise``; calling it returns the position."""

    def __init__(self, dim: int, start: float = 1.0, noise: float = 0.1, *, rngs: nnx.Rngs):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: got {dim!r}; allowed: an int >= 1")
        x0 = start + noise * jax.random.normal(rngs.params(), (dim,))
        self.position = nnx.Param(x0.astype(jnp.float32))

    def __call__(self) -> jax.Array:
        return self.position[...]


def landscape_loss(kind: str, dim: int, tilt: float = 0.3, tol: float = 0.1):
    """Task loss for a ``PointModel``: the landscape at its position; metrics loss, gap, solved (gap < tol)."""
    f = landscape_fn(kind, tilt)
    _, f_star = global_minimum(kind, dim, tilt)

    def loss(model, batch, key, train):
        del batch, key, train
        value = f(model())
        gap = value - f_star
        return value, {"loss": value, "gap": gap, "solved": (gap < tol).astype(jnp.float32)}

    return loss
