"""Surrogate gradients: exactly Heaviside in the forward pass, a smooth pseudo-derivative in the backward pass.

A spiking neuron emits ``S = H(U - θ)``, whose derivative is zero almost everywhere. Surrogate-gradient learning
(Neftci, Mostafa & Zenke 2019, "Surrogate Gradient Learning in Spiking Neural Networks", IEEE SPM 36(6)) keeps the
step in the forward pass and replaces ``dS/dU`` by a smooth function ``g(U - θ)`` in the backward pass.

``spike_fn(name, **params)`` returns ``f`` with ``f(x) = 1.0 where x > 0 else 0.0`` (strictly greater, as
``snntorch.surrogate``: ``(input_ > 0).float()``) and ``df/dx = g(x)`` through ``jax.custom_jvp`` (so forward- and
reverse-mode both work and ``jit``/``vmap``/``scan`` see one small primitive). The pseudo-derivatives ``g``:

  ``atan(alpha=2.0)``         ``alpha / 2 / (1 + (π/2 · alpha · x)²)`` — snntorch's default (Fang et al. 2021)
  ``fast_sigmoid(slope=25.)`` ``1 / (slope·|x| + 1)²`` — snntorch.surrogate.fast_sigmoid
  ``superspike(beta=10.)``    ``1 / (beta·|x| + 1)²`` — SuperSpike (Zenke & Ganguli 2018, Neural Comput. 30(6))
  ``sigmoid(slope=25.)``      ``slope·e^{-slope·x} / (e^{-slope·x} + 1)²`` — snntorch.surrogate.sigmoid
  ``triangle(width=1.)``      ``max(0, 1 - |x|/width) / width`` — the piecewise-linear pseudo-derivative of
                              Esser et al. 2016 (PNAS 113(41)) and Bellec et al. 2018 (NeurIPS)
  ``snntorch_triangular(threshold=1.)``  ``+threshold if x < 0 else -threshold`` — exactly what
                              ``snntorch.surrogate.triangular`` 1.0 computes (not a triangle; kept for parity)
  ``straight_through()``      ``1`` — straight-through estimator

Anywhere a surrogate is expected (``resolve``), a name, a ``{"name": ..., **params}`` dict, a ``(name, params)``
pair or a ready callable ``f(x)`` is accepted.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = [
    "SURROGATES",
    "spike_fn",
    "resolve",
    "surrogate_grad",
]


def _atan(alpha: float = 2.0):
    c = math.pi / 2 * alpha
    return lambda x: alpha / 2 / (1 + jnp.square(c * x))


def _fast_sigmoid(slope: float = 25.0):
    return lambda x: 1.0 / jnp.square(slope * jnp.abs(x) + 1.0)


def _superspike(beta: float = 10.0):
    return lambda x: 1.0 / jnp.square(beta * jnp.abs(x) + 1.0)


def _sigmoid(slope: float = 25.0):
    def g(x):
        e = jnp.exp(-slope * x)
        return slope * e / jnp.square(e + 1)
    return g


def _triangle(width: float = 1.0):
    return lambda x: jnp.maximum(0.0, 1.0 - jnp.abs(x) / width) / width


def _snntorch_triangular(threshold: float = 1.0):
    return lambda x: jnp.where(x >= 0, -threshold, threshold).astype(x.dtype)


def _straight_through():
    return lambda x: jnp.ones_like(x)


# name -> factory(**params) -> pseudo-derivative g(x)
SURROGATES: dict[str, Callable[..., Callable[[jax.Array], jax.Array]]] = {
    "atan": _atan,
    "fast_sigmoid": _fast_sigmoid,
    "superspike": _superspike,
    "sigmoid": _sigmoid,
    "triangle": _triangle,
    "snntorch_triangular": _snntorch_triangular,
    "straight_through": _straight_through,
}


def surrogate_grad(name: str = "atan", **params) -> Callable[[jax.Array], jax.Array]:
    """The pseudo-derivative ``g(x)`` of surrogate ``name`` (elementwise, no custom rule)."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate={name!r} is unknown; allowed: {', '.join(sorted(SURROGATES))}")
    try:
        return SURROGATES[name](**params)
    except TypeError:
        import inspect
        allowed = list(inspect.signature(SURROGATES[name]).parameters)
        raise ValueError(f"surrogate {name!r} got params={sorted(params)}; allowed params: {allowed}") from None


@functools.lru_cache(maxsize=None)
def _cached_spike_fn(name: str, items: tuple) -> Callable[[jax.Array], jax.Array]:
    g = surrogate_grad(name, **dict(items))

    @jax.custom_jvp
    def f(x):
        return (x > 0).astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else (x > 0).astype(jnp.float32)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), (g(x) * t).astype(t.dtype)

    f.__name__ = f"spike_{name}"
    f.surrogate_name = name
    f.surrogate_params = dict(items)
    f.surrogate_grad = g
    return f


def spike_fn(name: str = "atan", **params) -> Callable[[jax.Array], jax.Array]:
    """``f(x) = (x > 0)`` in the forward pass with the ``name`` surrogate as its derivative.

    Args:
      name: one of ``SURROGATES``.
      **params: the surrogate's parameters (``alpha`` for atan, ``slope`` for fast_sigmoid/sigmoid...).
    Returns:
      ``f`` mapping ``[...]`` floats to ``[...]`` 0./1. of the same dtype. The same ``(name, params)`` gives the
      same function object, so it can be a static argument of ``jax.jit``.
    Raises:
      ValueError: unknown name or parameter.
    """
    if not isinstance(name, str) or name not in SURROGATES:
        raise ValueError(f"surrogate={name!r} is unknown; allowed: {', '.join(sorted(SURROGATES))}")
    surrogate_grad(name, **params)  # validates the parameter names
    return _cached_spike_fn(name, tuple(sorted((k, float(v)) for k, v in params.items())))


def resolve(surrogate: Any = "atan") -> Callable[[jax.Array], jax.Array]:
    """A spike function from a name, ``{"name": ..., **params}``, ``(name, params)``, ``None`` (atan) or a callable."""
    if surrogate is None:
        return spike_fn("atan")
    if isinstance(surrogate, str):
        return spike_fn(surrogate)
    if isinstance(surrogate, dict):
        params = dict(surrogate)
        return spike_fn(params.pop("name", "atan"), **params)
    if isinstance(surrogate, tuple) and len(surrogate) == 2 and isinstance(surrogate[0], str):
        return spike_fn(surrogate[0], **dict(surrogate[1]))
    if callable(surrogate):
        return surrogate
    raise ValueError(f"surrogate={surrogate!r} is not a name, a dict, a (name, params) pair or a callable; "
                     f"names: {', '.join(sorted(SURROGATES))}")
