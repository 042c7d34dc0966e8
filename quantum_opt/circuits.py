"""Parametrised quantum circuits as jittable, vmappable JAX functions (PennyLane QNodes, JAX interface).

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
inputs])``. The device is chosen by name: ``default.qubit`` (``diff_method="backprop"``) or ``lightning.qubit``
(``"adjoint"``). The state function is always built on ``default.qubit`` with backprop, because the adjoint method
cannot differentiate a state and the Fubini–Study metric (``quantum_opt.metric``) needs the state's Jacobian.

Finite shots: PennyLane's own shot sampling draws its randomness from a seed fixed when the device is made, so under
``jit`` a key passed per call would be ignored. ``sample_expval`` therefore samples ``shots`` bit strings from the exact
probabilities with ``jax.random.categorical`` (the same distribution a shot-based device samples from) and returns the
empirical Pauli-Z expectations: the result depends on the key you pass, and the same key gives the same result.
With a Hamiltonian (a sum of Pauli words) the terms are grouped into qubit-wise commuting groups
(``qml.pauli.group_observables``), each group is measured after its diagonalising rotations with ``shots`` shots
(as PennyLane does with grouping), and the estimate is the coefficient-weighted sum of the sampled Pauli words.

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
]

DEVICES = {"default.qubit": "backprop", "lightning.qubit": "adjoint"}


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
    if inputs is not None:
        d = inputs.shape[-1]
        tiled = jnp.stack([jnp.stack([inputs[(3 * q + k) % d] for k in range(3)]) for q in range(n)])
    for layer in range(params.shape[0]):
        angles = params[layer, :, :3]
        if inputs is not None:
            angles = angles + params[layer, :, 3:] * tiled
        for q, w in enumerate(wires):
            qml.Rot(angles[q, 0], angles[q, 1], angles[q, 2], wires=w)
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

    expval(params, inputs=None) -> ``[n_qubits]`` Pauli-Z expectations, or ``[]`` (scalar) with a Hamiltonian.
    state(params, inputs=None) -> ``[2**n_qubits]`` complex state vector (default.qubit, backprop).
    probs(params, inputs=None) -> ``[2**n_qubits]`` computational-basis probabilities (wire 0 = most significant bit).
    sample_expval(params, key, shots, inputs=None) -> ``[n_qubits]`` shot estimates of the Pauli-Z expectations.
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
    _groups: tuple = dataclasses.field(default=(), repr=False, compare=False)  # Hamiltonian measurement groups

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
        """The expectations estimated from ``shots`` samples drawn with ``key``.

        Returns ``[n_qubits]`` Pauli-Z estimates, or a scalar energy estimate for a Hamiltonian circuit (``shots``
        per qubit-wise commuting group). With ``inputs [B, d]`` use ``jax.vmap`` with one key per example.
        """
        shots = self.shots if shots is None else shots
        if shots is None or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise ValueError(f"shots: got {shots!r}; allowed: a positive integer (here or in make_circuit)")
        if self.hamiltonian is None:
            return jnp.mean(1.0 - 2.0 * self._sample_bits(self.probs(params, inputs), key, shots), axis=0)
        if not self._groups:
            raise ValueError("hamiltonian: finite shots need a sum of Pauli words; got one PennyLane cannot group")
        energy = 0.0
        for (probs_fn, terms), k in zip(self._groups, jax.random.split(key, len(self._groups))):
            bits = self._sample_bits(probs_fn(params, inputs), k, shots)  # [shots, n]
            for coeff, z_wires in terms:
                eig = jnp.prod(1.0 - 2.0 * bits[:, list(z_wires)], axis=1) if z_wires else jnp.ones(shots)
                energy = energy + coeff * jnp.mean(eig)
        return jnp.asarray(energy, jnp.float32 if not jax.config.jax_enable_x64 else jnp.float64)

    def _sample_bits(self, p, key, shots):
        """``[shots, n]`` bit strings (wire 0 = most significant bit) drawn from probabilities ``p [2**n]``."""
        idx = jax.random.categorical(key, jnp.log(jnp.clip(p, 1e-30, None)), shape=(int(shots),))
        return ((idx[:, None] >> jnp.arange(self.n_qubits - 1, -1, -1)[None, :]) & 1).astype(p.dtype)


def _measurement_groups(hamiltonian, fn, wires, sdev):
    """For a Pauli-sum Hamiltonian: per qubit-wise commuting group, a probs function after the group's
    diagonalising rotations and its terms as (coefficient, wires carrying Z after rotation)."""
    coeffs, ops = hamiltonian.terms()
    coeffs = [float(np.real(c)) for c in coeffs]
    is_identity = [all(o.name == "Identity" for o in getattr(op, "operands", [op])) for op in ops]
    ident = [(c, ()) for c, i in zip(coeffs, is_identity) if i]
    rest = [(c, op) for c, op, i in zip(coeffs, ops, is_identity) if not i]
    groups = []
    if rest:
        obs_groups, coeff_groups = qml.pauli.group_observables([op for _, op in rest], [c for c, _ in rest])
        for obs_g, co_g in zip(obs_groups, coeff_groups):
            rotations, diag = qml.pauli.diagonalize_qwc_pauli_words(obs_g)

            @qml.qnode(sdev, interface="jax", diff_method="backprop")
            def probs_fn(params, inputs, rotations=tuple(rotations)):
                fn(params, wires, inputs)
                for op in rotations:
                    qml.apply(op)
                return qml.probs(wires=wires)

            terms = []
            for c, d in zip(co_g, diag):
                z = tuple(int(o.wires[0]) for o in getattr(d, "operands", [d]) if o.name == "PauliZ")
                terms.append((float(np.real(c)), z))
            groups.append((probs_fn, tuple(terms)))
    if ident:
        if groups:
            probs_fn, terms = groups[0]
            groups[0] = (probs_fn, terms + tuple(ident))
        else:
            groups.append((lambda params, inputs: jnp.ones(2 ** len(wires)) / 2 ** len(wires), tuple(ident)))
    return tuple(groups)


def make_circuit(
    n_qubits: int,
    n_layers: int,
    ansatz="hardware_efficient",
    *,
    device: str = "default.qubit",
    diff_method: str | None = None,
    hamiltonian=None,
    shots: int | None = None,
) -> Circuit:
    """Build a ``Circuit``.

    ansatz: a name in ``ANSATZE`` or a function ``(params, wires, inputs=None)`` with a ``param_shape`` attribute.
    device: ``"default.qubit"`` (backprop) or ``"lightning.qubit"`` (adjoint); ``diff_method`` overrides the default.
    hamiltonian: an optional PennyLane observable (e.g. ``qml.Hamiltonian``); then ``expval`` returns its scalar
    expectation, otherwise one Pauli-Z expectation per wire. shots: default shot count for ``sample_expval``.
    """
    if not isinstance(n_qubits, (int, np.integer)) or n_qubits < 1:
        raise ValueError(f"n_qubits: got {n_qubits!r}; allowed: an integer >= 1")
    if not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
        raise ValueError(f"n_layers: got {n_layers!r}; allowed: an integer >= 1")
    if device not in DEVICES:
        raise ValueError(f"device: unknown {device!r}; allowed: {', '.join(DEVICES)}")
    if shots is not None and (not isinstance(shots, (int, np.integer)) or shots < 1):
        raise ValueError(f"shots: got {shots!r}; allowed: None (exact) or an integer >= 1")
    fn = _resolve_ansatz(ansatz)
    diff_method = diff_method or DEVICES[device]
    wires = list(range(n_qubits))
    shape = tuple(fn.param_shape(n_qubits, n_layers))

    def check(params):
        if tuple(params.shape) != shape:
            raise ValueError(f"params: got shape {tuple(params.shape)}; allowed: {shape} for this circuit")

    dev = qml.device(device, wires=n_qubits)

    @qml.qnode(dev, interface="jax", diff_method=diff_method)
    def _expval(params, inputs):
        fn(params, wires, inputs)
        if hamiltonian is not None:
            return qml.expval(hamiltonian)
        return [qml.expval(qml.PauliZ(w)) for w in wires]

    sdev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(sdev, interface="jax", diff_method="backprop")
    def _state(params, inputs):
        fn(params, wires, inputs)
        return qml.state()

    @qml.qnode(sdev, interface="jax", diff_method="backprop")
    def _probs(params, inputs):
        fn(params, wires, inputs)
        return qml.probs(wires=wires)

    def expval(params, inputs=None):
        check(params)
        out = _expval(params, inputs)
        return out if hamiltonian is not None else jnp.stack(out, axis=-1)

    def state(params, inputs=None):
        check(params)
        return _state(params, inputs)

    def probs(params, inputs=None):
        check(params)
        return _probs(params, inputs)

    groups = ()
    if hamiltonian is not None:
        try:
            groups = _measurement_groups(hamiltonian, fn, wires, sdev)
        except (AttributeError, TypeError, ValueError):  # not a Pauli sum: exact expectations still work
            groups = ()
    return Circuit(n_qubits, n_layers, fn, device, diff_method, hamiltonian, expval, state, probs, shots, groups)


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
