"""quantum_opt: circuits on a JAX simulator, the Fubini–Study metric, and quantum optimizers as optax transformations.

Simulator (``simulator``): a statevector simulator in pure JAX (qujax's design; Duffield et al. 2023). Circuits
(``circuits``): PennyLane ansätze recorded once and compiled onto it (Kandala et al. 2017; Schuld et al. 2020;
Pérez-Salinas et al. 2020). Metric (``metric``): the Fubini–Study metric from the simulator's state and its Jacobian
(Stokes et al., Quantum 4, 269, 2020). Transformations (``transforms``): quantum natural gradient (Stokes et al.
2020), SPSA (Spall 1998).
"""

import importlib

# Names are imported on first use (PEP 562), so importing the package, or its runner glue, does not import PennyLane
# (about 3 s) until a circuit is actually needed.
_HOME = {
    "quantum_opt.circuits": ("ANSATZE", "DEVICES", "Circuit", "hardware_efficient", "make_circuit", "param_shape",
                             "pauli_terms", "reuploading", "strongly_entangling", "time_compile_and_run"),
    "quantum_opt.metric": ("block_diagonal_metric", "block_ids", "fubini_study_metric", "metric_fn",
                           "quantum_geometric_tensor", "state_jacobian"),
    "quantum_opt.transforms": ("qng", "spsa", "perturbed", "sam", "tunneling"),
    "quantum_opt.layers": ("ClassicalTwinLayer", "HybridMLP", "QuantumLayer", "model_metric_fn", "param_labels",
                           "probe_inputs", "quantum_layers"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'quantum_opt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_MODULE_OF))


__all__ = [
    "ANSATZE",
    "DEVICES",
    "Circuit",
    "ClassicalTwinLayer",
    "HybridMLP",
    "QuantumLayer",
    "block_diagonal_metric",
    "block_ids",
    "fubini_study_metric",
    "hardware_efficient",
    "make_circuit",
    "metric_fn",
    "model_metric_fn",
    "param_labels",
    "param_shape",
    "pauli_terms",
    "perturbed",
    "probe_inputs",
    "qng",
    "quantum_geometric_tensor",
    "quantum_layers",
    "reuploading",
    "sam",
    "spsa",
    "state_jacobian",
    "strongly_entangling",
    "time_compile_and_run",
    "tunneling",
]
