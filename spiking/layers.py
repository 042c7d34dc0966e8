"""Flax NNX spiking layers: thin shells around ``spiking.neurons`` with time folded into the batch for matmuls.

Inputs are time-major ``[T, B, ..., N_in]``. ``SpikingDense`` reshapes them to ``[T·B·…, N_in]`` for ONE
matmul with the ``[N_in, N_out]`` kernel (the weights are read once for all steps, and the GEMM is T times taller
than a per-step one), then scans only the elementwise neuron dynamics over ``T``. This is the layout used by
fast SNN simulators (e.g. Fang et al. 2023, "SpikingJelly", Science Advances 9(40), multi-step mode); the neuron
semantics are snntorch.Leaky's (see ``spiking.neurons``).

Reading the spike tensors: ``layer(x, return_state=True)`` returns ``(spikes, state)`` with
``state = {"inputs": x, "currents": I, "membranes": U, "spikes": S}`` — the actual arrays, so firing rates and
synaptic ops are measured, not assumed. For whole models, what the op accounting needs is *sown* as ``Trace``
variables (``trace``): only while ``nnx.capture(model, Trace)`` runs, so the training path computes and stores
nothing (``spiking.energy.capture_sites`` runs the capture and builds the sites from what was sown).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from spiking.neurons import NEURONS, RESETS
from spiking.surrogates import resolve

__all__ = [
    "REMATS",
    "TWIN_ACTIVATIONS",
    "Fixed",
    "Neuron",
    "SpikingDense",
    "Trace",
    "fold_time",
    "remat_policy",
    "sharded",
    "trace",
]

# model.remat: "none", "block" (jax.checkpoint of each block: only its input is saved) or a policy of
# jax.checkpoint_policies by name (what the backward pass may keep instead of recomputing)
REMATS = ("none", "block", "dots_saveable", "dots_with_no_batch_dims_saveable", "nothing_saveable",
          "everything_saveable", "checkpoint_dots", "checkpoint_dots_with_no_batch_dims")


def sharded(init, *names):
    """``init`` (a ``jax.nn.initializers`` function) whose Variable carries the logical axis names ``names`` (one
    per dimension; None for none) as flax NNX's sharding metadata (``nnx.with_partitioning``).

    The names (``embed``, ``mlp``, ``heads``, ``vocab``, ``expert``, ``norm``) mean nothing here: a runner maps them
    to mesh axes (``experiments.runner.mesh``, MaxText's logical axis rules) and creates the state sharded.
    ``eager_sharding=False``, so a model is built without any mesh, as plain arrays, in anyone's research code."""
    return nnx.with_partitioning(init, names, eager_sharding=False)


def remat_policy(remat: str):
    """``(wrap, policy)`` for ``model.remat``: whether to wrap each block in ``nnx.remat``, and the
    ``jax.checkpoint_policies`` policy (None for "block": save nothing but the block's input)."""
    if remat not in REMATS:
        raise ValueError(f"remat: {remat!r} is not allowed; use one of {', '.join(REMATS)}")
    if remat in ("none", "block"):
        return remat == "block", None
    return True, getattr(jax.checkpoint_policies, remat)

# the twin's memoryless replacements for a spiking neuron, f(current, threshold)
TWIN_ACTIVATIONS = {
    "sigmoid": lambda x, th: jax.nn.sigmoid(x - th),  # the smooth version of the step H(I - θ)
    "relu": lambda x, th: jax.nn.relu(x),
    "gelu": lambda x, th: jax.nn.gelu(x),
}


class Fixed(nnx.Variable):
    """A non-trainable per-neuron constant (β or θ given as an array and not learned)."""


class Trace(nnx.Intermediate):
    """A tensor the op accounting reads (``spiking.energy``), sown by ``trace`` under ``nnx.capture``."""


def trace(module: nnx.Module, **values) -> None:
    """Sow each ``name=value`` on ``module`` as a ``Trace`` — only inside ``nnx.capture(model, Trace)``.

    Outside a capture nothing happens (flax's ``Module.sow`` would otherwise store the value on the module, which
    is deprecated and would change the model's state). A value may be an array or a tuple of arrays; a name sown
    twice keeps both (a tuple). The names ``spiking.sites.sites`` understands are listed there.
    """
    if not hasattr(module, "__captures__"):  # set on every module by nnx.capture for the duration of the call
        return
    for name, value in values.items():
        module.sow(Trace, name, value)


def fold_time(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """``[T, B, ..., N_in] @ [N_in, N_out] (+ [N_out]) -> [T, B, ..., N_out]`` as ONE ``[T·B·…, N_in]`` matmul."""
    lead = x.shape[:-1]
    y = jnp.reshape(x, (-1, x.shape[-1])) @ kernel
    if bias is not None:
        y = y + bias
    return jnp.reshape(y, (*lead, kernel.shape[-1]))


def _value(v):
    return v[...] if isinstance(v, nnx.Variable) else v


class Neuron(nnx.Module):
    """Any neuron of ``spiking.NEURONS`` by name, applied to time-major ``[T, B, ..., N]`` inputs.

    Args:
      neuron: "lif" | "if" | "alif" | "plif".
      features: N, needed for per-neuron learned parameters (``learn_beta``, ``learn_threshold``; "plif": one ``w``
        per neuron, else one shared ``w``).
      beta: decay (lif, alif); scalar or ``[N]``. Ignored by "if" and "plif" (which learns ``w``, β = sigmoid(w)).
      threshold, reset, reset_delay, surrogate: as ``spiking.lif``.
      learn_beta / learn_threshold: make β / θ an ``nnx.Param`` of shape ``[features]``.
      w_init: "plif"'s initial ``w`` (β = sigmoid(w); 0 is Fang's τ₀ = 2), one per neuron, or a single shared
        ``w`` when ``features`` is None.
      spiking: False gives the twin: the memoryless continuous activation ``TWIN_ACTIVATIONS[twin_activation]``
        of the input current instead of spikes (no state; the neuron's own parameters are unused).
      **neuron_kw: extra arguments of the neuron function (``rho``, ``adapt`` for alif; ``decay_input`` for plif).
    """

    def __init__(self, neuron: str = "lif", *, features: int | None = None, beta: Any = 0.9, threshold: Any = 1.0,
                 reset: str = "subtract", reset_delay: bool = True, surrogate: Any = "atan",
                 learn_beta: bool = False, learn_threshold: bool = False, w_init: float = 0.0,
                 spiking: bool = True, twin_activation: str = "sigmoid", **neuron_kw):
        if neuron not in NEURONS:
            raise ValueError(f"neuron={neuron!r} is unknown; allowed: {', '.join(NEURONS)}")
        if reset not in RESETS:
            raise ValueError(f"reset={reset!r} is not allowed; allowed: {', '.join(RESETS)}")
        if twin_activation not in TWIN_ACTIVATIONS:
            raise ValueError(f"twin_activation={twin_activation!r} is unknown; allowed: {', '.join(TWIN_ACTIVATIONS)}")
        resolve(surrogate)  # validates early
        needs_features = learn_beta or learn_threshold
        if needs_features and not (isinstance(features, int) and features > 0):
            raise ValueError(f"features={features!r}: a positive int is needed for learned per-neuron parameters")
        self.neuron = neuron
        self.reset = reset
        self.reset_delay = reset_delay
        self.surrogate = surrogate
        self.neuron_kw = dict(neuron_kw)
        self.spiking, self.twin_activation = spiking, twin_activation

        def store(value, learn):
            if learn:
                return nnx.Param(jnp.broadcast_to(jnp.asarray(value, jnp.float32), (features,)))
            if jnp.ndim(value) == 0 and not isinstance(value, jax.Array):
                return float(value)
            return Fixed(jnp.asarray(value, jnp.float32))

        self.beta = store(beta, learn_beta) if neuron in ("lif", "alif") else None
        self.threshold = store(threshold, learn_threshold)
        w_shape = () if features is None else (features,)
        self.w = nnx.Param(jnp.full(w_shape, w_init, jnp.float32)) if neuron == "plif" and spiking else None

    def __call__(self, x: jax.Array, *, return_state: bool = False, init_membrane: Any = None, slots=None):
        """``x [T, B, ..., N]`` currents -> spikes ``[T, B, ..., N]`` (and ``{"membranes", "spikes"}``).

        Sows ``neuron=x`` (one membrane update per neuron-step, also in the twin) for the accounting; ``slots``
        (a mixture of experts' ``[E, C]`` capacity slots that hold a token) limits the count to those."""
        if self.spiking and x.dtype in (jnp.bfloat16, jnp.float16):  # membranes integrate in float32
            out = self(x.astype(jnp.float32), return_state=return_state, init_membrane=init_membrane, slots=slots)
            return jax.tree.map(lambda a: a.astype(x.dtype), out)  # spikes are exact in 16 bits
        trace(self, neuron=x if slots is None else {"inputs": x, "slots": slots})
        if not self.spiking:
            y = TWIN_ACTIVATIONS[self.twin_activation](x, _value(self.threshold))
            return (y, {"membranes": x, "spikes": y}) if return_state else y
        kw = dict(threshold=_value(self.threshold), reset=self.reset, surrogate=self.surrogate,
                  init_membrane=init_membrane, **self.neuron_kw)
        if self.neuron != "alif":
            kw["reset_delay"] = self.reset_delay
        if self.beta is not None:
            kw["beta"] = _value(self.beta)
        if self.w is not None:
            kw["w"] = self.w[...]
        spikes, mems = NEURONS[self.neuron](x, **kw)
        if return_state:
            return spikes, {"membranes": mems, "spikes": spikes}
        return spikes


class SpikingDense(nnx.Module):
    """Linear ``N_in -> N_out`` followed by a spiking neuron; time folded into the batch for the matmul.

    ``x [T, B, ..., N_in] -> spikes [T, B, ..., N_out]``. The kernel is ``[N_in, N_out]`` (``self.kernel``), the
    bias ``[N_out]`` (``self.bias``, or None). Initialisation matches ``torch.nn.Linear`` (uniform
    ±1/sqrt(N_in) for kernel and bias), so snntorch networks and this layer start from the same distribution.
    Neuron arguments as ``Neuron``; ``learn_beta`` gives a per-neuron ``[N_out]`` β.
    """

    def __init__(self, in_features: int, out_features: int, *, neuron: str = "lif", beta: Any = 0.9,
                 threshold: Any = 1.0, reset: str = "subtract", reset_delay: bool = True, surrogate: Any = "atan",
                 learn_beta: bool = False, learn_threshold: bool = False, use_bias: bool = True,
                 rngs: nnx.Rngs, **neuron_kw):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name}={v!r} must be a positive int")
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / in_features ** 0.5
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (in_features, out_features), jnp.float32,
                                                   -bound, bound))
        self.bias = (nnx.Param(jax.random.uniform(rngs.params(), (out_features,), jnp.float32, -bound, bound))
                     if use_bias else None)
        self.neuron = Neuron(neuron, features=out_features, beta=beta, threshold=threshold, reset=reset,
                             reset_delay=reset_delay, surrogate=surrogate, learn_beta=learn_beta,
                             learn_threshold=learn_threshold, **neuron_kw)

    def __call__(self, x: jax.Array, *, return_state: bool = False, init_membrane: Any = None):
        """``x [T, B, ..., N_in]`` -> spikes ``[T, B, ..., N_out]`` (and the state dict if ``return_state``)."""
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"x of shape {x.shape} must be [T, B, ..., {self.in_features}] (time-major)")
        currents = fold_time(x, self.kernel[...], None if self.bias is None else self.bias[...])
        spikes, state = self.neuron(currents, return_state=True, init_membrane=init_membrane)
        if return_state:
            return spikes, {"inputs": x, "currents": currents, **state}
        return spikes
