"""Gradient estimators through any combinatorial solver, one interface.

A *solver* is any function ``solver(weights [B, ...]) -> solution [B, ...]`` that returns, per example, an
argmin of a linear objective ``<weights, y>`` over a discrete set (a shortest path over a cost map, a ranking,
a top-k selection...). Its Jacobian is zero almost everywhere, so each estimator below wraps it in a
``jax.custom_vjp`` that returns a useful surrogate gradient:

* ``blackbox(solver, lam)`` -- blackbox differentiation of combinatorial solvers (Vlastelica, Paulus, Musil,
  Martius, Rolinek, ICLR 2020, Algorithm 1): backward solves once more at ``w' = w + lam * dL/dy`` and returns
  ``-(y(w) - y(w')) / lam``, the gradient of a piecewise-linear interpolation of ``L(y(w))``.
* ``identity(solver, projection)`` -- straight-through "identity with projection" (Sahoo, Paulus, Vlastelica,
  Musil, Kuleshov, Martius, ICLR 2023): the solver's Jacobian is replaced by ``-I`` (``-I`` because the solver
  minimises); ``projection="normalize"`` feeds ``w / ||w||`` to the solver, which leaves an argmin unchanged but
  removes the gradient's radial (pure cost-scale) component.
* ``perturbed(solver, ...)`` / ``fenchel_young_loss(solver, ...)`` -- the perturbed optimizer and its
  Fenchel--Young loss (Berthet, Blondel, Teboul, Cuturi, Vert, Bach, NeurIPS 2020):
  ``y_s(w) = E[y(w + s Z)]`` with ``Z`` Gumbel or normal noise (``optax.perturbations`` distributions), Monte
  Carlo over ``n_samples`` draws; its Jacobian-vector product is the score-function estimate
  ``E[<g, y(w + sZ)> * (-grad log p(Z))] / s`` per example. The Fenchel--Young loss (minimisation form)
  ``<w, y_true> - E[min_y <w + sZ, y>]`` has gradient ``y_true - y_s(w)``.

``make_estimator(name, solver, ...)`` picks one by its config name and returns ``f(weights, key) -> solution``.
Every function is pure and jittable; each perturbed estimator takes its ``jax.random`` key in the call.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from optax import perturbations as optax_pert

Solver = Callable[[jax.Array], jax.Array]

ESTIMATORS = ("blackbox", "identity", "perturbed")
NOISES = ("gumbel", "normal")
PROJECTIONS = ("none", "normalize")


def _noise(name: str):
    if name == "gumbel":
        return optax_pert.Gumbel()
    if name == "normal":
        return optax_pert.Normal()
    raise ValueError(f"noise: got {name!r}; allowed: {', '.join(NOISES)}")


def blackbox(solver: Solver, lam: float = 20.0, clip_min: float | None = None) -> Solver:
    """Blackbox differentiation (Vlastelica et al. 2020) of ``solver``; ``lam`` > 0 is the interpolation step.

    Returns ``f(weights [B, ...]) -> solution [B, ...]`` equal to ``solver`` forward; backward costs one
    more solver call on ``weights + lam * dL/dy``, floored at ``clip_min`` where given: the step lowers the costs
    of cells the loss wants used, and a shortest-path solver fed a negative cost returns no path at all.
    """
    if not lam > 0:
        raise ValueError(f"lam: got {lam!r}; allowed: a number > 0")

    @jax.custom_vjp
    def f(w):
        return solver(w)

    def fwd(w):
        y = solver(w)
        return y, (w, y)

    def bwd(res, g):
        w, y = res
        w_lam = w + lam * g.astype(w.dtype)
        y_lam = solver(w_lam if clip_min is None else jnp.maximum(w_lam, clip_min))
        return (-(y - y_lam).astype(w.dtype) / lam,)

    f.defvjp(fwd, bwd)
    return f


def identity(solver: Solver, projection: str = "normalize") -> Solver:
    """Straight-through "identity with projection" (Sahoo et al. 2023) for a minimising ``solver``.

    Backward returns ``-dL/dy`` as the gradient of the solver's input. With ``projection="normalize"`` the
    solver sees ``w / ||w||_2`` (per example; argmin unchanged for a linear objective) and autodiff through
    that projection removes the gradient component that only rescales all costs.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection: got {projection!r}; allowed: {', '.join(PROJECTIONS)}")

    @jax.custom_vjp
    def st(w):
        return solver(w)

    def fwd(w):
        return solver(w), None

    def bwd(_, g):
        return (-g,)

    st.defvjp(fwd, bwd)

    def f(w):
        if projection == "normalize":
            axes = tuple(range(1, w.ndim))
            w = w / (jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True)) + 1e-12)
        return st(w)

    return f


def _perturb(w, key, n_samples, sigma, noise, clip_min):
    """Samples ``z [n, B, ...]``, perturbed weights ``[n*B, ...]`` (clipped from below if asked)."""
    z = noise.sample(key, (n_samples,) + w.shape, w.dtype)
    wp = (w[None] + sigma * z).reshape((-1,) + w.shape[1:])
    if clip_min is not None:
        wp = jnp.maximum(wp, clip_min)
    return z, wp


def _score(noise, z):
    """``-grad log p(z)`` elementwise (from the distribution's ``log_prob``), the score-function weight."""
    if isinstance(noise, optax_pert.Normal):
        return z
    if isinstance(noise, optax_pert.Gumbel):
        return 1.0 - jnp.exp(-z)
    return -jax.grad(lambda u: jnp.sum(noise.log_prob(u)))(z)


def perturbed(solver: Solver, n_samples: int = 10, sigma: float = 1.0, noise: str = "normal",
              clip_min: float | None = None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The perturbed optimizer (Berthet et al. 2020): ``f(weights [B, ...], key) -> E[y(w + sigma Z)] [B, ...]``.

    One solver call on ``n_samples * B`` perturbed problems per forward; the backward pass reuses them (no
    extra call). ``clip_min`` (e.g. 1e-3) keeps perturbed costs positive for solvers that need it, at the price
    of a small bias.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples: got {n_samples!r}; allowed: an integer >= 1")
    if not sigma > 0:
        raise ValueError(f"sigma: got {sigma!r}; allowed: a number > 0")
    dist = _noise(noise)

    @jax.custom_vjp
    def f(w, key):
        _, wp = _perturb(w, key, n_samples, sigma, dist, clip_min)
        ys = solver(wp).reshape((n_samples,) + w.shape).astype(w.dtype)
        return ys.mean(0)

    def fwd(w, key):
        z, wp = _perturb(w, key, n_samples, sigma, dist, clip_min)
        ys = solver(wp).reshape((n_samples,) + w.shape).astype(w.dtype)
        return ys.mean(0), (ys, z)

    def bwd(res, g):
        ys, z = res
        axes = tuple(range(2, ys.ndim))
        inner = jnp.sum(ys * g[None], axis=axes, keepdims=True)            # [n, B, 1...] per example
        # leave-one-out baseline (unbiased since E[score] = 0; lower variance), written in its equivalent form
        # n/(n-1) * mean_i (inner_i - mean inner) * score_i
        if n_samples > 1:
            centred = inner - jnp.mean(inner, axis=0)
            grad = jnp.mean(centred * _score(dist, z), axis=0) * (n_samples / (n_samples - 1) / sigma)
        else:
            grad = jnp.mean(inner * _score(dist, z), axis=0) / sigma
        return grad, None

    f.defvjp(fwd, bwd)
    return f


def fenchel_young_loss(solver: Solver, n_samples: int = 10, sigma: float = 1.0, noise: str = "normal",
                       clip_min: float | None = None) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """Perturbed Fenchel--Young loss (Berthet et al. 2020), minimisation form.

    Returns ``loss(weights [B, ...], y_true [B, ...], key) -> [B]`` with value
    ``<w, y_true> - mean_i <w + sigma z_i, y(w + sigma z_i)>`` (>= 0 in expectation up to the noise term) and
    gradient ``y_true - mean_i y(w + sigma z_i)`` with respect to ``w`` (none for ``y_true``).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples: got {n_samples!r}; allowed: an integer >= 1")
    if not sigma > 0:
        raise ValueError(f"sigma: got {sigma!r}; allowed: a number > 0")
    dist = _noise(noise)

    def parts(w, y_true, key):
        _, wp = _perturb(w, key, n_samples, sigma, dist, clip_min)
        ys = solver(wp).astype(w.dtype)
        axes = tuple(range(1, w.ndim))
        val_min = jnp.sum(wp * ys, axis=axes).reshape(n_samples, w.shape[0]).mean(0)
        y_mean = ys.reshape((n_samples,) + w.shape).mean(0)
        loss = jnp.sum(w * y_true, axis=axes) - val_min
        return loss, y_mean

    @jax.custom_vjp
    def loss_fn(w, y_true, key):
        return parts(w, y_true, key)[0]

    def fwd(w, y_true, key):
        loss, y_mean = parts(w, y_true, key)
        return loss, (y_true.astype(w.dtype) - y_mean, jnp.zeros_like(y_true))

    def bwd(res, g):
        diff, zeros = res
        return g.reshape(g.shape + (1,) * (diff.ndim - 1)) * diff, zeros, None

    loss_fn.defvjp(fwd, bwd)
    return loss_fn


def make_estimator(name: str, solver: Solver, *, lam: float = 20.0, projection: str = "normalize",
                   n_samples: int = 10, sigma: float = 1.0, noise: str = "normal",
                   clip_min: float | None = None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The estimator ``name`` (one of ``ESTIMATORS``) as ``f(weights [B, ...], key) -> solution [B, ...]``.

    ``blackbox`` and ``identity`` ignore the key; ``perturbed`` returns the Monte Carlo mean solution. ``clip_min``
    floors the costs that ``blackbox`` and ``perturbed`` solve on beyond the forward pass.
    """
    if name == "blackbox":
        f = blackbox(solver, lam, clip_min)
        return lambda w, key=None: f(w)
    if name == "identity":
        f = identity(solver, projection)
        return lambda w, key=None: f(w)
    if name == "perturbed":
        return perturbed(solver, n_samples, sigma, noise, clip_min)
    raise ValueError(f"estimator: got {name!r}; allowed: {', '.join(ESTIMATORS)}")


__all__ = [
    "ESTIMATORS",
    "NOISES",
    "PROJECTIONS",
    "blackbox",
    "fenchel_young_loss",
    "identity",
    "make_estimator",
    "perturbed",
]
