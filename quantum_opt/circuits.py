"""Parametrised circuits: PennyLane quantum functions compiled to pure JAX functions on our own simulator.

Three standard ansätze, each a PennyLane quantum function ``ansatz(params, wires, inputs=None)`` with a
``param_shape(n_qubits, n_layers)`` helper attached (``hardware_efficient.param_shape(4, 2) == (2, 4, 2)``):

* ``hardware_efficient`` — per layer RY, RZ on every wire, then a CNOT ladder (Kandala et al., Nature 549, 2017).
* ``strongly_entangling`` — ``qml.StronglyEntanglingLayers`` (Schuld et al., PRA 101, 032308, 2020).
* ``reuploading`` — data re-uploading (Pérez-Salinas et al., Quantum 4, 226, 2020): every layer applies
  ``Rot(θ + w ∘ x)`` on each wire, then a CZ ring, so the input is encoded again in every layer.

Each ansatz also names its ``gates_per_wire``, from which ``Circuit.blocks`` groups the parameters into the commuting
gate layers of the block-diagonal metric (``quantum_opt.metric``).

``make_circuit(...)`` builds a ``Circuit`` holding pure functions ``expval(params[, inputs]) -> [n_obs]`` (or a scalar
for a Hamiltonian), ``state(params[, inputs]) -> [2**n] complex``, ``probs`` and ``sample_expval(params, key, shots[,
inputs])``. PennyLane is the circuit language only: the ansatz is recorded ONCE per input shape into a tape over
symbolic parameter and input slots and lowered to the gates of ``quantum_opt.simulator`` (``quantum_opt.compiler``),
so what runs, jits, vmaps and differentiates is pure JAX on any jax, CPU, GPU or TPU, and no tracer ever enters
PennyLane. ``device="default.qubit" | "lightning.qubit" | …`` runs ``expval`` on that PennyLane device instead
(``quantum_opt.pennylane_device``: host callbacks, PennyLane's own gradients); ``state``, ``probs`` and the shots stay
on the simulator (the Fubini–Study metric needs the state's Jacobian, which the adjoint method cannot give).

Finite shots: ``sample_expval`` samples ``shots`` bit strings from the exact probabilities with
``jax.random.categorical`` (the distribution a shot-based device samples from) and returns the empirical Pauli-Z
expectations: the result depends on the key you pass, and the same key gives the same result. With a Hamiltonian (a
sum of Pauli words) the terms are grouped into qubit-wise commuting groups, each measured after its diagonalising
rotations with ``shots`` shots (as PennyLane does with grouping), and the estimate is the coefficient-weighted sum.

``time_compile_and_run(fn, *args)`` reports compile time (lower + compile) apart from the steady-state run time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from quantum_opt import pennylane_device
from quantum_opt import simulator as S
from quantum_opt.compiler import record

__all__ = [
    "ANSATZE",
    "DEVICES",
    "Circuit",
    "hardware_efficient",
    "make_circuit",
    "param_shape",
    "pauli_terms",
    "reuploading",
    "strongly_entangling",
    "time_compile_and_run",
]

# The devices offered by name, with their default diff_method ("simulator": JAX's own autodiff of the simulator).
# Any other installed PennyLane device works too (diff_method "best").
DEVICES = {"simulator": "backprop", "default.qubit": "backprop", "lightning.qubit": "adjoint"}


def _angle_embed(inputs, wires):
    """RY(x_q) on wire q (inputs ``[n_in]``, n_in <= len(wires))."""
    qml.AngleEmbedding(inputs, wires=list(wires)[: inputs.shape[-1]], rotation="Y")


def hardware_efficient(params, wires, inputs=None):
    """Hardware-efficient ansatz: per layer ``RY(p[l,q,0]) RZ(p[l,q,1])`` on each wire q, then CNOT(q, q+1).

    params: ``[L, n, 2]``; inputs: optional ``[n_in]`` angle-encoded with RY before the first layer.
    """
    wires = list(wires)
    if inputs is not None:
        _angle_embed(inputs, wires)
    for layer in range(params.shape[0]):
        for q, w in enumerate(wires):
            qml.RY(params[layer, q, 0], wires=w)
            qml.RZ(params[layer, q, 1], wires=w)
        for q in range(len(wires) - 1):
            qml.CNOT(wires=[wires[q], wires[q + 1]])


hardware_efficient.param_shape = lambda n_qubits, n_layers: (n_layers, n_qubits, 2)
hardware_efficient.gates_per_wire = 2


def strongly_entangling(params, wires, inputs=None):
    """``qml.StronglyEntanglingLayers``: params ``[L, n, 3]``; optional inputs ``[n_in]`` RY-encoded first."""
    if inputs is not None:
        _angle_embed(inputs, list(wires))
    qml.StronglyEntanglingLayers(params, wires=list(wires))


strongly_entangling.param_shape = lambda n_qubits, n_layers: (n_layers, n_qubits, 3)
strongly_entangling.gates_per_wire = 3  # Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)


def reuploading(params, wires, inputs=None):
    """Data re-uploading (Pérez-Salinas et al. 2020): per layer ``Rot(θ + w ∘ x̃)`` on each wire, then a CZ ring.

    params: ``[L, n, 6]`` = (θ ``[..., :3]``, w ``[..., 3:]``); inputs ``[d]`` tiled over the ``n * 3`` rotation
    angles (angle k of wire q gets ``x[(3q + k) % d]``). Without inputs it is a plain Rot + CZ layered ansatz.
    """
    wires = list(wires)
    n = len(wires)
    for layer in range(params.shape[0]):
        for q, w in enumerate(wires):
            angles = [params[layer, q, k] for k in range(3)]
            if inputs is not None:  # plain indexing and arithmetic: works on symbols, NumPy and autograd arrays
                angles = [a + params[layer, q, 3 + k] * inputs[(3 * q + k) % inputs.shape[-1]]
                          for k, a in enumerate(angles)]
            qml.Rot(*angles, wires=w)
        if n > 1:
            for q in range(n if n > 2 else 1):
                qml.CZ(wires=[wires[q], wires[(q + 1) % n]])


reuploading.param_shape = lambda n_qubits, n_layers: (n_layers, n_qubits, 6)
reuploading.gates_per_wire = 3  # θ[..., k] and w[..., k] set the angle of the same gate k of Rot

ANSATZE: dict[str, Callable] = {
    "hardware_efficient": hardware_efficient,
    "strongly_entangling": strongly_entangling,
    "reuploading": reuploading,
}


def _resolve_ansatz(ansatz) -> Callable:
    if callable(ansatz):
        if not hasattr(ansatz, "param_shape"):
            raise ValueError(f"ansatz: callable {ansatz!r} has no param_shape attribute; allowed: {sorted(ANSATZE)}")
        return ansatz
    if ansatz not in ANSATZE:
        raise ValueError(f"ansatz: unknown {ansatz!r}; allowed: {', '.join(sorted(ANSATZE))} or a callable")
    return ANSATZE[ansatz]


def param_shape(ansatz, n_qubits: int, n_layers: int) -> tuple[int, ...]:
    """The parameter shape of ``ansatz`` (a name in ``ANSATZE`` or an ansatz function)."""
    return tuple(_resolve_ansatz(ansatz).param_shape(n_qubits, n_layers))


@dataclasses.dataclass(frozen=True)
class Circuit:
    """A parametrised circuit as pure JAX functions (all jittable and vmappable over params or inputs).

    expval(params, inputs=None) -> ``[n_qubits]`` Pauli-Z expectations, or ``[]`` (scalar) with a Hamiltonian, on
    ``device`` (the JAX simulator unless a PennyLane device was named).
    state(params, inputs=None) -> ``[2**n_qubits]`` complex state vector (the JAX simulator, whatever the device).
    probs(params, inputs=None) -> ``[2**n_qubits]`` computational-basis probabilities (wire 0 = most significant bit).
    sample_expval(params, key, shots, inputs=None) -> ``[n_qubits]`` shot estimates of the Pauli-Z expectations.
    program(input_shape=None) -> the recorded, lowered ``compiler.Program`` (which parameter feeds which gate).
    """

    n_qubits: int
    n_layers: int
    ansatz: Callable
    device: str
    diff_method: str
    hamiltonian: Any
    expval: Callable
    state: Callable
    probs: Callable
    shots: int | None = None
    program: Callable = dataclasses.field(default=None, repr=False, compare=False)
    _terms: tuple | None = dataclasses.field(default=None, repr=False, compare=False)  # Hamiltonian as a Pauli sum

    @property
    def param_shape(self) -> tuple[int, ...]:
        return tuple(self.ansatz.param_shape(self.n_qubits, self.n_layers))

    @property
    def n_params(self) -> int:
        return int(np.prod(self.param_shape))

    @property
    def blocks(self) -> list[list[int]]:
        """The block-diagonal metric's blocks as index groups into the flattened params: per layer, one block per gate
        slot — the gates of one kind across the wires, which act on different wires and so commute (the layers of
        Stokes et al. 2020, Sec. 3) — the slots ``k`` and ``k + gates_per_wire`` sharing one (re-uploading's θ and w
        set the same gate). An ansatz without a ``gates_per_wire`` attribute gets one block per layer (the leading
        axis). PennyLane's ``metric_tensor(approx="block-diag")`` layers a circuit greedily in gate order, so on
        the ansätze here, which apply each wire's gates in turn, its blocks differ (RZ on wire 0 with RY on wire 1,
        ...); on a circuit applied slot by slot (all RYs of a layer, then all RZs) the two agree."""
        shape = self.param_shape
        slots = getattr(self.ansatz, "gates_per_wire", None)
        if slots is None or len(shape) != 3:
            ids = np.repeat(np.arange(shape[0]), int(np.prod(shape[1:])))
        else:
            layer, _, slot = np.indices(shape)
            ids = (layer * slots + slot % slots).reshape(-1)
        return [np.flatnonzero(ids == b).tolist() for b in np.unique(ids)]

    def init(self, key, scale: float = np.pi, dtype=jnp.float32):
        """Parameters drawn uniformly from ``[-scale, scale)``: ``param_shape``."""
        return jax.random.uniform(key, self.param_shape, dtype, -scale, scale)

    def sample_expval(self, params, key, shots: int | None = None, inputs=None):
        """The expectations estimated from ``shots`` samples drawn with ``key`` (on the simulator's exact state).

        Returns ``[n_qubits]`` Pauli-Z estimates, or a scalar energy estimate for a Hamiltonian circuit (``shots``
        per qubit-wise commuting group, as PennyLane measures a grouped Hamiltonian). With ``inputs [B, d]`` use
        ``jax.vmap`` with one key per example.
        """
        shots = self.shots if shots is None else shots
        if shots is None or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ValueError(f"shots: got {shots!r}; allowed: a positive integer (here or in make_circuit)")
        psi = self.state(params, inputs).reshape((2,) * self.n_qubits)
        if self.hamiltonian is None:
            return S.sample_expval_z(psi, key, int(shots))
        if self._terms is None:
            raise ValueError("hamiltonian: finite shots need a sum of Pauli words; got an observable without one")
        return S.sample_pauli_sum(psi, self._terms, key, int(shots))


def pauli_terms(observable, wires) -> tuple | None:
    """A PennyLane observable as a Pauli sum ``((coeff, ((axis, "X"|"Y"|"Z"), ...)), ...)`` over the axes of
    ``wires``, or None when it is not a real sum of Pauli words (``observable.pauli_rep``)."""
    rep = getattr(observable, "pauli_rep", None)
    if rep is None:
        return None
    index = {w: i for i, w in enumerate(wires)}
    terms = []
    for word, coeff in rep.items():
        if abs(np.imag(coeff)) > 1e-12:
            return None
        terms.append((float(np.real(coeff)), tuple(sorted((index[w], p) for w, p in word.items() if p != "I"))))
    return tuple(terms)


def _validate(n_qubits, n_layers, device, shots) -> None:
    if not isinstance(n_qubits, (int, np.integer)) or n_qubits < 1:
        raise ValueError(f"n_qubits: got {n_qubits!r}; allowed: an integer >= 1")
    if not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
        raise ValueError(f"n_layers: got {n_layers!r}; allowed: an integer >= 1")
    if not isinstance(device, str) or not device:
        raise ValueError(f"device: got {device!r}; allowed: 'simulator' or a PennyLane device name")
    if shots is not None and (not isinstance(shots, (int, np.integer)) or shots < 1):
        raise ValueError(f"shots: got {shots!r}; allowed: None (exact) or an integer >= 1")


def _simulator_measurement(hamiltonian, wires) -> tuple[Callable, tuple | None]:
    """``(measure, terms)``: ``measure(psi)`` is one Pauli-Z expectation per wire (no ``hamiltonian``), a Pauli
    sum's expectation (``terms``, from ``pauli_terms``), or any Hermitian observable's, by its dense matrix."""
    if hamiltonian is None:
        return S.expval_z, None
    terms = pauli_terms(hamiltonian, wires)
    if terms is not None:
        return (lambda psi: S.expval_pauli_sum(psi, terms)), terms
    dense = np.asarray(qml.matrix(hamiltonian, wire_order=wires))  # any Hermitian observable, exactly

    def measure(psi):
        flat = psi.reshape(-1)
        return jnp.real(jnp.vdot(flat, jnp.asarray(dense, flat.dtype) @ flat))

    return measure, None


def make_circuit(
    n_qubits: int,
    n_layers: int,
    ansatz="hardware_efficient",
    *,
    device: str = "simulator",
    diff_method: str | None = None,
    hamiltonian=None,
    shots: int | None = None,
) -> Circuit:
    """Build a ``Circuit``: ``ansatz`` recorded once per input shape and compiled onto ``quantum_opt.simulator``.

    ansatz: a name in ``ANSATZE`` or a PennyLane quantum function ``(params, wires, inputs=None)`` with a
    ``param_shape(n_qubits, n_layers)`` attribute.
    device: ``"simulator"`` (the JAX simulator, the default) or a PennyLane device name (``"default.qubit"``,
    ``"lightning.qubit"``, …) for PennyLane's own execution of ``expval`` (``quantum_opt.pennylane_device``);
    ``diff_method`` overrides its default (``DEVICES``). hamiltonian: an optional PennyLane observable (e.g.
    ``qml.Hamiltonian``); then ``expval`` returns its scalar expectation, otherwise one Pauli-Z expectation per wire.
    shots: default shot count for ``sample_expval``.
    """
    _validate(n_qubits, n_layers, device, shots)
    fn = _resolve_ansatz(ansatz)
    diff_method = diff_method or DEVICES.get(device, "best")
    wires = list(range(n_qubits))
    shape = tuple(fn.param_shape(n_qubits, n_layers))
    measure_sim, terms = _simulator_measurement(hamiltonian, wires)
    programs: dict = {}

    def program(input_shape=None):
        key = None if input_shape is None else tuple(input_shape)
        if key not in programs:
            programs[key] = record(fn, wires, shape, key)
        return programs[key]

    def check(params, inputs):
        if tuple(jnp.shape(params)) != shape:
            raise ValueError(f"params: got shape {tuple(jnp.shape(params))}; allowed: {shape} for this circuit")
        if inputs is not None and jnp.ndim(inputs) != 1:
            raise ValueError(f"inputs: got shape {tuple(jnp.shape(inputs))}; allowed: [d] (jax.vmap over a batch)")

    def _state(params, inputs=None):
        check(params, inputs)
        return program(None if inputs is None else jnp.shape(inputs)).state(params, inputs)

    def state(params, inputs=None):
        return _state(params, inputs).reshape(-1)

    def probs(params, inputs=None):
        return S.probs(_state(params, inputs))

    if device == "simulator":
        def expval(params, inputs=None):
            return measure_sim(_state(params, inputs))
    else:
        measure = (lambda: qml.expval(hamiltonian)) if hamiltonian is not None else (
            lambda: [qml.expval(qml.PauliZ(w)) for w in wires])
        run = pennylane_device.expval_fn(fn, wires, device, diff_method, measure,
                                         () if hamiltonian is not None else (n_qubits,))

        def expval(params, inputs=None):
            check(params, inputs)
            return run(params, inputs)

    return Circuit(n_qubits, n_layers, fn, device, diff_method, hamiltonian, expval, state, probs, shots,
                   program, terms)


def time_compile_and_run(fn: Callable, *args, repeats: int = 20, jit: bool = True) -> dict[str, float]:
    """Time ``fn(*args)``: compile time apart from run time.

    Returns ``{"compile_s": lower+compile seconds, "first_call_s": first call of the compiled function,
    "run_s": median of ``repeats`` later calls, "run_min_s": the fastest}``. With ``jit=False``, ``fn`` is called
    as is (compile_s = 0).
    """
    if jit:
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        compile_s = time.perf_counter() - t0
    else:
        compiled, compile_s = fn, 0.0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "first_call_s": first, "run_s": float(np.median(times)), "run_min_s": min(times)}
