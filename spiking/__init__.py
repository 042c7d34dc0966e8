"""spiking: spiking neurons, surrogate gradients, NNX layers and NIR export for JAX.

Pure functions over time-major arrays ``[T, B, ...]`` (``lif``, ``alif``, ``plif``, ``if_neuron``,
``leaky_integrator``; ``spike_fn`` surrogates) with snntorch.Leaky's exact discrete update, thin Flax NNX shells in
``spiking.layers``, language models (``spiking.lm``: spiking, twin, dense; mixture-of-experts feed-forward from
``spiking.moe``; distillation in ``spiking.distill``), op/energy accounting from sown tensors (``spiking.energy``),
NIR export/import in ``spiking.nir``.
"""

from spiking.layers import Neuron
from spiking.layers import SpikingDense
from spiking.layers import Trace
from spiking.layers import fold_time
from spiking.layers import trace
from spiking.neurons import NEURONS
from spiking.neurons import RESETS
from spiking.neurons import alif
from spiking.neurons import if_neuron
from spiking.neurons import leaky_integrator
from spiking.neurons import lif
from spiking.neurons import plif
from spiking.surrogates import SURROGATES
from spiking.surrogates import resolve as resolve_surrogate
from spiking.surrogates import spike_fn
from spiking.surrogates import surrogate_grad
from spiking.lm import DenseLM
from spiking.lm import SpikingLM
from spiking.moe import MoEFeedForward
from spiking.moe import load_balance_loss
from spiking.moe import route
from spiking.moe import router_z_loss
from spiking.distill import Distill
from spiking.distill import kd_loss
from spiking.energy import CMOS_45NM
from spiking.energy import LOIHI
from spiking.energy import capture_sites

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
