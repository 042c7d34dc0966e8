"""quantum_opt: PennyLane circuits in JAX, the Fubini–Study metric, and quantum optimizers as optax transformations.

Circuits (``circuits``): ansätze as jittable QNodes (Kandala et al. 2017; Schuld et al. 2020; Pérez-Salinas et al.
2020). Metric (``metric``): the Fubini–Study metric from the state and its Jacobian (Stokes et al., Quantum 4, 269,
2020). Transformations (``transforms``): quantum natural gradient (Stokes et al. 2020), SPSA (Spall 1998).
"""

from quantum_opt.circuits import (
    ANSATZE,
    DEVICES,
    Circuit,
    hardware_efficient,
    make_circuit,
    param_shape,
    reuploading,
    strongly_entangling,
    time_compile_and_run,
)
from quantum_opt.metric import (
    block_diagonal_metric,
    block_ids,
    fubini_study_metric,
    metric_fn,
    quantum_geometric_tensor,
    state_jacobian,
)
from quantum_opt.transforms import qng, spsa
from quantum_opt.transforms import perturbed, sam, tunneling
from quantum_opt.layers import ClassicalTwinLayer, HybridMLP, QuantumLayer

__all__ = [
    "ANSATZE",
    "DEVICES",
    "Circuit",
    "block_diagonal_metric",
    "block_ids",
    "fubini_study_metric",
    "hardware_efficient",
    "make_circuit",
    "metric_fn",
    "param_shape",
    "qng",
    "quantum_geometric_tensor",
    "reuploading",
    "spsa",
    "state_jacobian",
    "strongly_entangling",
    "time_compile_and_run",
    "perturbed",
    "sam",
    "tunneling",
    "ClassicalTwinLayer",
    "HybridMLP",
    "QuantumLayer",
]
