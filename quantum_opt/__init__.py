"""quantum_opt: PennyLane circuits in JAX, the Fubini–Study metric, and quantum optimizers as optax transformations.

Circuits (``circuits``): ansätze as jittable QNodes (Kandala et al. 2017; Schuld et al. 2020; Pérez-Salinas et al.
2020). Metric (``metric``): the Fubini–Study metric from the state and its Jacobian (Stokes et al., Quantum 4, 269,
2020). Transformations (``transforms``): quantum natural gradient (Stokes et al. 2020), SPSA (Spall 1998).
"""

from quantum_opt.circuits import ANSATZE
from quantum_opt.circuits import DEVICES
from quantum_opt.circuits import Circuit
from quantum_opt.circuits import hardware_efficient
from quantum_opt.circuits import make_circuit
from quantum_opt.circuits import param_shape
from quantum_opt.circuits import reuploading
from quantum_opt.circuits import strongly_entangling
from quantum_opt.circuits import time_compile_and_run
from quantum_opt.metric import block_diagonal_metric
from quantum_opt.metric import block_ids
from quantum_opt.metric import fubini_study_metric
from quantum_opt.metric import quantum_geometric_tensor
from quantum_opt.metric import state_jacobian
from quantum_opt.transforms import qng
from quantum_opt.transforms import spsa

__all__ = [
    "ANSATZE",
    "DEVICES",
    "Circuit",
    "hardware_efficient",
    "make_circuit",
    "param_shape",
    "reuploading",
    "strongly_entangling",
    "time_compile_and_run",
    "block_diagonal_metric",
    "block_ids",
    "fubini_study_metric",
    "quantum_geometric_tensor",
    "state_jacobian",
    "qng",
    "spsa",
]
