"""spiking: spiking neurons, surrogate gradients, NNX layers and NIR export for JAX.

Pure functions over time-major arrays ``[T, B, ...]`` (``lif``, ``alif``, ``plif``, ``if_neuron``,
``leaky_integrator``; ``spike_fn`` surrogates) with snntorch.Leaky's exact discrete update, thin Flax NNX shells in
``spiking.layers``, NIR export/import in ``spiking.nir``.
"""

from spiking.layers import Neuron
from spiking.layers import SpikingDense
from spiking.layers import fold_time
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
from spiking.energy import CMOS_45NM
from spiking.energy import LOIHI

__all__ = [
    "NEURONS",
    "Neuron",
    "SpikingDense",
    "fold_time",
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
    "CMOS_45NM",
    "LOIHI",
]
