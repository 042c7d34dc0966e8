"""spiking: spiking neurons, surrogate gradients, NNX layers and NIR export for JAX.

Pure functions over time-major arrays ``[T, B, ...]`` (``lif``, ``alif``, ``plif``, ``if_neuron``,
``leaky_integrator``; ``spike_fn`` surrogates) with snntorch.Leaky's exact discrete update, thin Flax NNX shells in
``spiking.layers``, language models (``spiking.lm``: spiking, twin, dense; mixture-of-experts feed-forward from
``spiking.moe``; distillation in ``spiking.distill``), op/energy accounting from sown tensors (``spiking.energy``),
NIR export/import in ``spiking.nir``.
"""

from spiking.distill import Distill, kd_loss
from spiking.energy import CMOS_45NM, LOIHI, capture_sites
from spiking.layers import Neuron, SpikingDense, Trace, fold_time, trace
from spiking.lm import DenseLM, SpikingLM
from spiking.moe import MoEFeedForward, load_balance_loss, route, router_z_loss
from spiking.neurons import NEURONS, RESETS, alif, if_neuron, leaky_integrator, lif, plif
from spiking.surrogates import SURROGATES, spike_fn, surrogate_grad
from spiking.surrogates import resolve as resolve_surrogate

__all__ = [
    "NEURONS",
    "Neuron",
    "SpikingDense",
    "Trace",
    "fold_time",
    "trace",
    "RESETS",
    "SURROGATES",
    "alif",
    "if_neuron",
    "leaky_integrator",
    "lif",
    "plif",
    "resolve_surrogate",
    "spike_fn",
    "surrogate_grad",
    "DenseLM",
    "SpikingLM",
    "MoEFeedForward",
    "load_balance_loss",
    "route",
    "router_z_loss",
    "Distill",
    "kd_loss",
    "CMOS_45NM",
    "LOIHI",
    "capture_sites",
]
