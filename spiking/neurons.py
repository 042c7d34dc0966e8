"""Spiking neurons as pure functions over time-major inputs ``[T, ...]`` (``jax.lax.scan`` over the leading axis).

Every neuron takes the input current ``I`` of shape ``[T, ...]`` (e.g. ``[T, B, N]``) and returns
``(spikes, membranes)``, both ``[T, ...]``. Parameters (``beta``, ``threshold``...) broadcast against the feature
shape ``inputs.shape[1:]``: a scalar or one value per neuron (``[N]``).

``lif`` is exactly ``snntorch.Leaky`` (snntorch 1.0, ``_neurons/leaky.py``; Eshraghian et al. 2023, "Training
Spiking Neural Networks Using Lessons From Deep Learning", Proc. IEEE 111(9)). Per step, from the previous
membrane ``U`` (zero, or ``init_membrane``, at the start):

  R = H(U - θ)                      reset signal from the previous membrane, no gradient (``.detach()``)
  subtract:  U = (clip(β,0,1)·U + I) - R·θ
  zero:      U = clip(β,0,1)·((1 - R)·U) + I
  none:      U = clip(β,0,1)·U + I
  S = H(U - θ)                      ``H(x) = x > 0`` with the surrogate derivative
  reset_delay=False (as snntorch): D = S - R ("avoid double reset"); subtract: U = U - D·θ; zero: U = U - D·U.
                                   The gradient flows through S in D, not through R. "none" ignores it.

The returned membrane is the ``U`` snntorch returns at that step (before a delayed reset is applied).

With ``reset_delay=True`` and a named surrogate, ``lif`` runs a hand-written ``custom_vjp`` over the whole
sequence: the forward scan carries only ``U`` and does four elementwise ops per step; the backward pass
computes every local term for all ``T`` at once and runs one reverse linear recurrence
``a_t = c_t + d_{t+1}·a_{t+1}`` (an FMA per step), instead of differentiating the scan body. It gives the same
gradients as autodiff of the plain scan (``impl="scan"``; tested).

Also here: ``if_neuron`` (β = 1), ``alif`` (adaptive threshold, Bellec et al. 2018, "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS), ``plif`` (learnable β = sigmoid(w), Fang et al. 2021,
"Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking Neural Networks", ICCV) and the
reset-free ``leaky_integrator`` (``U_t = β·U_{t-1} + I_t`` with ``jax.lax.associative_scan``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from spiking.surrogates import resolve

__all__ = [
    "NEURONS",
    "RESETS",
    "lif",
    "if_neuron",
    "alif",
    "plif",
    "leaky_integrator",
]

RESETS = ("subtract", "zero", "none")


def _check(inputs, reset, reset_delay=True):
    if reset not in RESETS:
        raise ValueError(f"reset={reset!r} is not allowed; allowed: {', '.join(RESETS)}")
    if not isinstance(reset_delay, bool):
        raise ValueError(f"reset_delay={reset_delay!r} must be True or False")
    if jnp.ndim(inputs) < 1:
        raise ValueError(f"inputs must be time-major [T, ...]; got shape {jnp.shape(inputs)}")


def _param(x, inputs, name):
    x = jnp.asarray(x, dtype=inputs.dtype)
    try:
        jnp.broadcast_shapes(x.shape, inputs.shape[1:])
    except ValueError:
        raise ValueError(f"{name} of shape {x.shape} does not broadcast against the feature shape "
                         f"{inputs.shape[1:]} (inputs {inputs.shape})") from None
    return x


def _init(init_membrane, inputs):
    if init_membrane is None:
        return jnp.zeros(inputs.shape[1:], inputs.dtype)
    return jnp.broadcast_to(jnp.asarray(init_membrane, inputs.dtype), inputs.shape[1:])


def _membrane(u, i, r, beta, threshold, reset):
    """snntorch's discrete membrane update with reset signal ``r`` (computed from the previous membrane)."""
    if reset == "subtract":
        return (beta * u + i) - r * threshold
    if reset == "zero":
        return beta * ((1 - r) * u) + i
    return beta * u + i


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 7))
def _lif_scan(inputs, beta, threshold, reset, reset_delay, fire, u0, unroll):
    """Reference implementation: the snntorch step inside ``lax.scan``, differentiated by autodiff."""

    def step(u, i):
        r = jax.lax.stop_gradient(fire(u - threshold))
        u = _membrane(u, i, r, beta, threshold, reset)
        s = fire(u - threshold)
        out_u = u
        if not reset_delay and reset != "none":
            d = s - r
            u = u - d * threshold if reset == "subtract" else u - d * u
            out_u = u
        return u, (s, out_u)

    _, (spikes, mems) = jax.lax.scan(step, u0, inputs, unroll=unroll)
    return spikes, mems


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _lif_fast(inputs, beta, threshold, u0, reset, fire, unroll):
    """``reset_delay=True`` LIF with a hand-written backward pass. Returns ``(spikes, membranes)``."""
    return _lif_fast_fwd(inputs, beta, threshold, u0, reset, fire, unroll)[0]


def _lif_forward_mems(inputs, beta, threshold, u0, reset, unroll):
    def step(u, i):
        r = (u - threshold > 0).astype(u.dtype)
        u = _membrane(u, i, r, beta, threshold, reset)
        return u, u

    _, mems = jax.lax.scan(step, u0, inputs, unroll=unroll)
    return mems


def _lif_fast_fwd(inputs, beta, threshold, u0, reset, fire, unroll):
    mems = _lif_forward_mems(inputs, beta, threshold, u0, reset, unroll)
    spikes = (mems - threshold > 0).astype(mems.dtype)
    return (spikes, mems), (mems, beta, threshold, u0)


def _sum_to(x, shape):
    """Sum ``x`` down to a broadcastable ``shape`` (the adjoint of broadcasting)."""
    x = jnp.sum(x, axis=tuple(range(x.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return jnp.sum(x, axis=axes, keepdims=True).reshape(shape)


def _lif_fast_bwd(reset, fire, unroll, res, cts):
    mems, beta, threshold, u0 = res
    g_s, g_m = cts
    g = fire.surrogate_grad
    v = mems - threshold
    c = g_m + g_s * g(v)                                         # local dL/dU_t  [T, ...]
    prev = jnp.concatenate([u0[None], mems[:-1]], axis=0)       # U_{t-1}
    r = (prev - threshold > 0).astype(mems.dtype)               # R_t
    bb = jnp.broadcast_to(beta, mems.shape[1:])
    # dU_{t+1}/dU_t: beta (subtract/none) or beta·(1 - R_{t+1}) (zero), R_{t+1} = H(U_t - θ)
    if reset == "zero":
        d_next = bb * (1 - (v > 0).astype(mems.dtype))            # [t] = dU_{t+1}/dU_t

        def step(a_next, xs):
            c_t, d_t = xs
            a = c_t + d_t * a_next
            return a, a
        _, a = jax.lax.scan(step, jnp.zeros_like(c[0]), (c, d_next), reverse=True, unroll=unroll)
    else:
        def step(a_next, c_t):
            a = c_t + bb * a_next
            return a, a
        _, a = jax.lax.scan(step, jnp.zeros_like(c[0]), c, reverse=True, unroll=unroll)
    held = (1 - r) * prev if reset == "zero" else prev
    g_beta = _sum_to(a * held, beta.shape)
    g_thr = -g_s * g(v)
    if reset == "subtract":
        g_thr = g_thr - a * r
    g_thr = _sum_to(g_thr, threshold.shape)
    r0 = (u0 - threshold > 0).astype(u0.dtype)
    g_u0 = a[0] * bb * ((1 - r0) if reset == "zero" else 1)
    return a, g_beta, g_thr, g_u0


_lif_fast.defvjp(_lif_fast_fwd, _lif_fast_bwd)
_lif_fast_jit = jax.jit(_lif_fast, static_argnums=(4, 5, 6))


def lif(inputs: jax.Array, *, beta: Any, threshold: Any = 1.0, reset: str = "subtract", reset_delay: bool = True,
        surrogate: Any = "atan", init_membrane: Any = None, impl: str = "auto",
        unroll: int = 8) -> tuple[jax.Array, jax.Array]:
    """Leaky integrate-and-fire with exactly snntorch.Leaky's discrete update (see the module docstring).

    Args:
      inputs: input current ``[T, ...]`` (time-major), float.
      beta: membrane decay, clipped to [0, 1]; scalar or broadcastable to ``inputs.shape[1:]``.
      threshold: firing threshold θ; scalar or broadcastable to ``inputs.shape[1:]``.
      reset: "subtract" | "zero" | "none".
      reset_delay: True (snntorch default): a spike's reset is applied at the next step; False: in the same step.
      surrogate: a name from ``spiking.SURROGATES``, ``{"name":..., **params}`` or a callable ``f(x)``.
      init_membrane: ``U`` before the first step, broadcastable to ``inputs.shape[1:]``; zeros if None.
      impl: "auto" (the custom-vjp fast path when possible), "fast" or "scan" (autodiff of the plain scan;
        use it for forward-mode ``jax.jvp``/``jacfwd``, which a ``custom_vjp`` does not support).
      unroll: ``lax.scan`` unroll factor.
    Returns:
      ``(spikes, membranes)``, both ``[T, ...]`` with the dtype of ``inputs``; spikes are 0./1.
    """
    _check(inputs, reset, reset_delay)
    if impl not in ("auto", "fast", "scan"):
        raise ValueError(f"impl={impl!r} is not allowed; allowed: auto, fast, scan")
    inputs = jnp.asarray(inputs)
    beta = jnp.clip(_param(beta, inputs, "beta"), 0, 1)
    threshold = _param(threshold, inputs, "threshold")
    fire = resolve(surrogate)
    u0 = _init(init_membrane, inputs)
    fast_ok = reset_delay and hasattr(fire, "surrogate_grad")
    if impl == "fast" and not fast_ok:
        raise ValueError("impl='fast' needs reset_delay=True and a named surrogate (from spiking.SURROGATES)")
    if impl == "scan" or not fast_ok:
        return _lif_scan(inputs, beta, threshold, reset, reset_delay, fire, u0, unroll)
    return _lif_fast_jit(inputs, beta, threshold, u0, reset, fire, unroll)


def if_neuron(inputs: jax.Array, *, threshold: Any = 1.0, reset: str = "subtract", reset_delay: bool = True,
              surrogate: Any = "atan", init_membrane: Any = None, **kw) -> tuple[jax.Array, jax.Array]:
    """Integrate-and-fire: ``lif`` with β = 1 (no leak). Same arguments and returns as ``lif``."""
    return lif(inputs, beta=1.0, threshold=threshold, reset=reset, reset_delay=reset_delay, surrogate=surrogate,
               init_membrane=init_membrane, **kw)


def plif(inputs: jax.Array, *, w: Any = 0.0, threshold: Any = 1.0, reset: str = "subtract",
         reset_delay: bool = True, surrogate: Any = "atan", init_membrane: Any = None, decay_input: bool = True,
         **kw) -> tuple[jax.Array, jax.Array]:
    """Parametric LIF (Fang et al. 2021): β = sigmoid(w) with ``w`` learnable (gradients flow into ``w``).

    With ``decay_input`` (Fang's charge equation ``H = V + (X - V)/τ`` with ``1/τ = 1 - β``) the input is scaled by
    ``1 - β``; otherwise this is ``lif`` with ``beta=sigmoid(w)``. ``w`` is a scalar or per-neuron ``[N]``;
    ``w = 0`` is Fang's τ₀ = 2. Returns ``(spikes, membranes)`` ``[T, ...]``.
    """
    beta = jax.nn.sigmoid(jnp.asarray(w, jnp.asarray(inputs).dtype))
    if decay_input:
        inputs = inputs * (1 - beta)
    return lif(inputs, beta=beta, threshold=threshold, reset=reset, reset_delay=reset_delay, surrogate=surrogate,
               init_membrane=init_membrane, **kw)


def alif(inputs: jax.Array, *, beta: Any, threshold: Any = 1.0, rho: Any = 0.95, adapt: Any = 1.8,
         reset: str = "subtract", surrogate: Any = "atan", init_membrane: Any = None,
         unroll: int = 8) -> tuple[jax.Array, jax.Array]:
    """Adaptive-threshold LIF (the LSNN neuron of Bellec et al. 2018).

    The threshold rises with each spike and decays back: ``A_t = θ + adapt·a_t``,
    ``a_{t+1} = ρ·a_t + (1 - ρ)·S_t``. The membrane follows ``lif`` (snntorch order, delayed reset ``R`` from the
    previous step, no gradient through ``R``); "subtract" removes the threshold that was crossed, ``A_{t-1}``.
    The adaptation variable ``a`` carries the gradient of the spikes (BPTT through the threshold, as in LSNN).
    ``adapt = 0`` gives ``lif``. Returns ``(spikes, membranes)`` ``[T, ...]``.
    """
    _check(inputs, reset)
    inputs = jnp.asarray(inputs)
    beta = jnp.clip(_param(beta, inputs, "beta"), 0, 1)
    threshold = _param(threshold, inputs, "threshold")
    rho = _param(rho, inputs, "rho")
    adapt = _param(adapt, inputs, "adapt")
    fire = resolve(surrogate)
    u0 = _init(init_membrane, inputs)
    zeros = jnp.zeros(inputs.shape[1:], inputs.dtype)

    def step(carry, i):
        u, a, thr_prev = carry
        r = jax.lax.stop_gradient(fire(u - thr_prev))
        thr = threshold + adapt * a
        u = _membrane(u, i, r, beta, thr_prev, reset)
        s = fire(u - thr)
        a = rho * a + (1 - rho) * s
        return (u, a, thr), (s, u)

    thr0 = jnp.broadcast_to(threshold, inputs.shape[1:])
    _, (spikes, mems) = jax.lax.scan(step, (u0, zeros, thr0), inputs, unroll=unroll)
    return spikes, mems


def leaky_integrator(inputs: jax.Array, *, beta: Any, init: Any = None) -> jax.Array:
    """Reset-free leaky integrator ``U_t = β·U_{t-1} + I_t`` (``U_{-1} = init`` or 0), by ``associative_scan``.

    The pairs ``(β, I_t)`` compose as affine maps, ``(a1, b1)∘(a2, b2) = (a1·a2, a2·b1 + b2)``, so the whole
    sequence takes ``O(log T)`` depth. ``beta`` is clipped to [0, 1]. Returns the membranes ``[T, ...]``.
    """
    if jnp.ndim(inputs) < 1:
        raise ValueError(f"inputs must be time-major [T, ...]; got shape {jnp.shape(inputs)}")
    inputs = jnp.asarray(inputs)
    beta = jnp.clip(_param(beta, inputs, "beta"), 0, 1)
    if init is not None:
        inputs = inputs.at[0].add(beta * jnp.asarray(init, inputs.dtype))
    return _integrate(inputs, beta)


def _combine(x, y):
    a1, b1 = x
    a2, b2 = y
    return a1 * a2, a2 * b1 + b2


@jax.jit
def _integrate(inputs, beta):
    a = jnp.broadcast_to(beta, inputs.shape)
    return jax.lax.associative_scan(_combine, (a, inputs), axis=0)[1]


# name -> neuron function ``f(inputs [T, ...], **params) -> (spikes, membranes)``
NEURONS = {
    "lif": lif,
    "if": if_neuron,
    "alif": alif,
    "plif": plif,
}
