"""Calibration for post-training transforms: the input statistics of chosen Linears of a model, measured without the
model's help, and the paths that name them.

On a clone, each target ``nnx.Linear`` is replaced by a recording stand-in (``Tap``: the gram matrix ``Σ xᵀx``, the
largest magnitude and the row count of its inputs), the clone is run over the calibration batches in one jitted
forward pass, and the Linears are put back (``Tapped.restore``). ``spiking.prune`` (Wanda's norms, SparseGPT's
Hessian) and ``spiking.quantize`` (activation scales) both calibrate through here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

__all__ = ["Stat", "Tap", "Tapped", "calibration_stats", "get_path", "path_name", "set_path", "with_post_info"]


class Stat(nnx.Variable):
    """A calibration statistic accumulated by a ``Tap`` (never a trainable parameter)."""


class Tap(nnx.Module):
    """Stands in for an ``nnx.Linear`` and adds up statistics of its inputs: ``gram = Σ xᵀx [in, in]``,
    ``absmax = max |x|`` and ``rows`` (the input is flattened to ``[rows, in]``, time steps included)."""

    def __init__(self, linear: nnx.Linear):
        self.linear = linear
        self.gram = Stat(jnp.zeros((linear.in_features, linear.in_features), jnp.float32))
        self.absmax = Stat(jnp.zeros((), jnp.float32))
        self.rows = Stat(jnp.zeros((), jnp.float32))

    in_features = property(lambda self: self.linear.in_features)
    out_features = property(lambda self: self.linear.out_features)
    kernel = property(lambda self: self.linear.kernel)
    bias = property(lambda self: self.linear.bias)

    def __call__(self, x):
        flat = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
        self.gram[...] = self.gram[...] + flat.T @ flat
        self.absmax[...] = jnp.maximum(self.absmax[...], jnp.max(jnp.abs(flat)))
        self.rows[...] = self.rows[...] + flat.shape[0]
        return self.linear(x)


def get_path(obj, path):
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


def set_path(obj, path, value):
    parent = get_path(obj, path[:-1])
    if isinstance(path[-1], int):
        parent[path[-1]] = value
    else:
        setattr(parent, path[-1], value)


def _forward(graphdef, state, inputs):
    module = nnx.merge(graphdef, state)
    module(inputs)
    return nnx.state(module, Stat)


_FORWARD_BY_GRAPH = jax.jit(_forward, static_argnums=0)


def _jitted_forward(graphdef):
    """The jitted tapped forward pass: shared by every model of one structure when its graph definition is
    hashable, else compiled for this one (a model may hold a dict among its static attributes)."""
    try:
        hash(graphdef)
    except TypeError:
        return jax.jit(functools.partial(_forward, graphdef))
    return functools.partial(_FORWARD_BY_GRAPH, graphdef)


class Tapped:
    """``model`` (changed in place) with a ``Tap`` at each path; ``run(batches)`` returns fresh statistics
    (the kernels may change between runs; the structure may not)."""

    def __init__(self, model, paths):
        self.model, self.paths = model, list(paths)
        self.taps = {p: Tap(get_path(model, p)) for p in self.paths}
        for p, tap in self.taps.items():
            set_path(model, p, tap)
        self.forward = _jitted_forward(nnx.graphdef(model))

    def run(self, batches) -> dict[tuple, dict[str, jax.Array]]:
        for tap in self.taps.values():
            for name in ("gram", "absmax", "rows"):
                getattr(tap, name)[...] = jnp.zeros_like(getattr(tap, name)[...])
        for inputs in batches:
            nnx.update(self.model, self.forward(nnx.state(self.model), jnp.asarray(inputs)))
        return {p: {"gram": t.gram[...], "absmax": t.absmax[...], "rows": t.rows[...]}
                for p, t in self.taps.items()}

    def restore(self):
        for p, tap in self.taps.items():
            set_path(self.model, p, tap.linear)


def calibration_stats(model, batches: Iterable, paths) -> dict[tuple, dict[str, jax.Array]]:
    """Input statistics of each Linear at ``paths``  over ``batches`` (model inputs,
    e.g. tokens ``[B, L]``): ``{path: {"gram": [in, in], "absmax": [], "rows": []}}``. ``model`` is not changed."""
    clone = nnx.clone(model)
    tapped = Tapped(clone, paths)
    return tapped.run(list(batches))


def path_name(path) -> str:
    return ".".join(str(p) for p in path)


def with_post_info(model, key: str, info: dict) -> None:
    """Set ``model.post_info[key] = info`` as nested hashable ``FrozenDict``s (other keys are kept)."""
    frozen = lambda d: FrozenDict({k: frozen(v) if isinstance(v, dict) else v for k, v in d.items()})
    old = dict(getattr(model, "post_info", None) or {})
    old[key] = frozen(info)
    model.post_info = FrozenDict(old)
