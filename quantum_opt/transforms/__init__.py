"""Quantum optimizers as optax transformations: QNG (Stokes et al. 2020), SPSA (Spall 1998).

Each is an ``optax.GradientTransformationExtraArgs`` with a NamedTuple state whose ``*_evals`` fields count the
evaluations it makes (the runner reports every such field).
"""

from quantum_opt.transforms.qng import QNGState, qng
from quantum_opt.transforms.spsa import SPSAState, spsa, spsa_gains
from quantum_opt.transforms.tunneling import PerturbedState, SamState, TunnelingState, perturbed, sam, tunneling

__all__ = [
    "PerturbedState",
    "QNGState",
    "SPSAState",
    "SamState",
    "TunnelingState",
    "perturbed",
    "qng",
    "sam",
    "spsa",
    "spsa_gains",
    "tunneling",
]
