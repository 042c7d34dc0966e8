"""A statevector simulator in pure JAX (public APIs only): gates, Pauli expectations, probabilities and shots.

The design is qujax's (Duffield, Matos, Johannsen & Simmons, "qujax: Simulating quantum circuits with JAX", JOSS 8(89),
5504, 2023): the state of n qubits is an array of shape ``(2,)*n`` whose axis q is wire q (wire 0 is the most
significant bit of the flat index, PennyLane's convention), and a k-qubit gate, a ``(2,)*2k`` tensor, is contracted
with the axes of its wires by ``jnp.tensordot`` and its output axes moved back. Diagonal gates (RZ, PhaseShift,
IsingZZ, CZ, MultiRZ, a diagonal of losses) multiply the state elementwise instead, and controlled gates (CNOT, CRX,
…) act on the control's ``|1>`` half only (measured here: an 8-qubit hardware-efficient layer's value 1.9x faster than
with CNOT as a 4x4 tensordot, the same compile time). Every function here works on one
state; ``jax.vmap`` batches it, ``jax.grad`` / ``jax.jacfwd`` differentiate it, and under x64 (float64 angles) it
computes in complex128. Gate matrices follow PennyLane's definitions (``RX(θ) = exp(-iθX/2)`` and so on), so a
circuit compiled from a PennyLane tape (``quantum_opt.circuits``) has PennyLane's state.

Shapes: ``state`` ``(2,)*n`` complex; ``probs(state)`` ``[2**n]``; ``expval_z(state)`` ``[n]``; a Pauli word is a tuple
of ``(wire, "X" | "Y" | "Z")`` pairs, a Pauli sum a tuple of ``(coefficient, word)`` terms (the empty word is the
identity). Shots: ``sample_bits(probs, key, shots, n)`` ``[shots, n]`` bits drawn with a ``jax.random`` key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GATES",
    "Gate",
    "apply_controlled",
    "apply_diagonal",
    "apply_gate",
    "apply_matrix",
    "complex_dtype",
    "expval_pauli",
    "expval_pauli_sum",
    "expval_z",
    "gate_matrix",
    "probs",
    "qwc_groups",
    "sample_bits",
    "sample_expval_z",
    "sample_pauli_sum",
    "uniform_state",
    "zero_state",
]

_X = np.array([[0, 1], [1, 0]], complex)
_Y = np.array([[0, -1j], [1j, 0]], complex)
_Z = np.diag([1.0, -1.0]).astype(complex)
_H = np.array([[1, 1], [1, -1]], complex) / np.sqrt(2)
_PAULI = {"X": _X, "Y": _Y, "Z": _Z}
# The rotation taking a Pauli's eigenbasis to the computational one (measure X: H; measure Y: H S†).
_TO_Z = {"X": _H, "Y": _H @ np.diag([1, -1j]), "Z": np.eye(2, dtype=complex)}


def complex_dtype(*args):
    """complex128 when any argument is float64 / complex128 (x64), else complex64."""
    wide = any(jnp.asarray(a).dtype in (jnp.float64, jnp.complex128) for a in args)
    return jnp.complex128 if wide else jnp.complex64


def zero_state(n_qubits: int, dtype=jnp.complex64) -> jax.Array:
    """``|0…0>``: ``(2,)*n``."""
    return jnp.zeros((2,) * n_qubits, dtype).reshape(-1).at[0].set(1).reshape((2,) * n_qubits)


def uniform_state(n_qubits: int, dtype=jnp.complex64) -> jax.Array:
    """``|+…+>`` (a Hadamard on every wire of ``|0…0>``): ``(2,)*n`` with every amplitude ``2**(-n/2)``."""
    return jnp.full((2,) * n_qubits, 2.0 ** (-n_qubits / 2), dtype)


def apply_matrix(state: jax.Array, matrix, wires: Sequence[int]) -> jax.Array:
    """Apply a k-qubit gate ``matrix [2**k, 2**k]`` (rows: the output, wires[0] most significant) to ``wires``."""
    k = len(wires)
    if k == 2 and isinstance(matrix, np.ndarray) and np.allclose(matrix[:2], np.eye(4)[:2]) and \
            np.allclose(matrix[2:, :2], 0):  # a constant controlled gate (CNOT, CY, ...): act on the control's |1> half
        return apply_controlled(state, matrix[2:, 2:], wires[0], wires[1])
    u = jnp.reshape(jnp.asarray(matrix, state.dtype), (2,) * (2 * k))
    out = jnp.tensordot(u, state, axes=(tuple(range(k, 2 * k)), tuple(wires)))
    return jnp.moveaxis(out, tuple(range(k)), tuple(wires))


def apply_controlled(state: jax.Array, matrix, control: int, target: int) -> jax.Array:
    """Apply ``diag(I, matrix [2, 2])``: ``matrix`` on ``target`` where ``control`` is 1."""
    s0, s1 = jnp.take(state, 0, axis=control), jnp.take(state, 1, axis=control)
    return jnp.stack([s0, apply_matrix(s1, matrix, (target - (target > control),))], axis=control)


def apply_diagonal(state: jax.Array, diagonal, wires: Sequence[int]) -> jax.Array:
    """Apply the diagonal gate ``diag(diagonal [2**k])`` to ``wires`` (all n wires: a phase per basis state)."""
    k, n = len(wires), state.ndim
    d = jnp.reshape(jnp.asarray(diagonal, state.dtype), (2,) * k)
    order = np.argsort(wires)
    d = jnp.transpose(d, tuple(order))
    shape = [1] * n
    for w in wires:
        shape[w] = 2
    return state * jnp.reshape(d, shape)


class Gate(NamedTuple):
    """A parametrised gate: ``fn(*angles)`` gives its matrix ``[2**k, 2**k]`` (or its diagonal ``[2**k]`` when
    ``diagonal``); ``n_wires`` None means any number (MultiRZ)."""

    n_params: int
    n_wires: int | None
    fn: Callable
    diagonal: bool


def _cs(theta):
    dt = complex_dtype(theta)
    return jnp.cos(theta / 2).astype(dt), jnp.sin(theta / 2).astype(dt), dt


def _rx(t):
    c, s, _ = _cs(t)
    return jnp.stack([jnp.stack([c, -1j * s]), jnp.stack([-1j * s, c])])


def _ry(t):
    c, s, _ = _cs(t)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def _rz(t):
    _, _, dt = _cs(t)
    return jnp.exp(jnp.stack([-0.5j * t, 0.5j * t]).astype(dt))


def _phase(t):
    dt = complex_dtype(t)
    return jnp.stack([jnp.ones((), dt), jnp.exp(1j * t).astype(dt)])


def _rot(phi, theta, omega):
    """RZ(ω) RY(θ) RZ(φ) (PennyLane's Rot)."""
    c, s, dt = _cs(theta)
    e = lambda a: jnp.exp(1j * a).astype(dt)
    return jnp.stack([jnp.stack([e(-(phi + omega) / 2) * c, -e((phi - omega) / 2) * s]),
                      jnp.stack([e(-(phi - omega) / 2) * s, e((phi + omega) / 2) * c])])


def _controlled(u):
    """``diag(I, u)``: the target gate ``u [2, 2]`` controlled by the first wire."""
    z = jnp.zeros((2, 2), u.dtype)
    return jnp.block([[jnp.eye(2, dtype=u.dtype), z], [z, u]])


def _ising_zz(t):
    a = _rz(t)  # e^{-it/2}, e^{it/2}
    return jnp.stack([a[0], a[1], a[1], a[0]])


def _ising_xx(t):
    c, s, _ = _cs(t)
    return c * jnp.eye(4, dtype=c.dtype) - 1j * s * jnp.asarray(np.kron(_X, _X), c.dtype)


def _ising_yy(t):
    c, s, _ = _cs(t)
    return c * jnp.eye(4, dtype=c.dtype) - 1j * s * jnp.asarray(np.kron(_Y, _Y), c.dtype)


def _multi_rz(t, k):
    parity = np.array([i.bit_count() % 2 for i in range(2 ** k)])  # Z...Z eigenvalue (-1)^parity
    _, _, dt = _cs(t)
    return jnp.exp((-0.5j * t * (1 - 2 * parity)).astype(dt))


GATES: dict[str, Gate] = {
    "RX": Gate(1, 1, _rx, False),
    "RY": Gate(1, 1, _ry, False),
    "RZ": Gate(1, 1, _rz, True),
    "PhaseShift": Gate(1, 1, _phase, True),
    "Rot": Gate(3, 1, _rot, False),
    "CRX": Gate(1, 2, lambda t: _controlled(_rx(t)), False),
    "CRY": Gate(1, 2, lambda t: _controlled(_ry(t)), False),
    "CRZ": Gate(1, 2, lambda t: jnp.concatenate([jnp.ones(2, complex_dtype(t)), _rz(t)]), True),
    "ControlledPhaseShift": Gate(1, 2, lambda t: jnp.concatenate([jnp.ones(3, complex_dtype(t)), _phase(t)[1:]]),
                                 True),
    "IsingXX": Gate(1, 2, _ising_xx, False),
    "IsingYY": Gate(1, 2, _ising_yy, False),
    "IsingZZ": Gate(1, 2, _ising_zz, True),
    "MultiRZ": Gate(1, None, None, True),
}


def gate_matrix(name: str, angles: Sequence, n_wires: int = 1) -> jax.Array:
    """The full matrix ``[2**k, 2**k]`` of ``GATES[name]`` at ``angles`` (a diagonal gate's too)."""
    if name == "MultiRZ":
        return jnp.diag(_multi_rz(angles[0], n_wires))
    m = GATES[name].fn(*angles)
    return jnp.diag(m) if GATES[name].diagonal else m


def apply_gate(state: jax.Array, name: str, angles: Sequence, wires: Sequence[int]) -> jax.Array:
    """Apply the parametrised gate ``GATES[name]`` with ``angles`` (scalars) to ``wires``."""
    gate = GATES[name]
    if name in ("CRX", "CRY"):
        return apply_controlled(state, (_rx if name == "CRX" else _ry)(angles[0]), wires[0], wires[1])
    if name == "MultiRZ":
        return apply_diagonal(state, _multi_rz(angles[0], len(wires)), wires)
    m = gate.fn(*angles)
    return apply_diagonal(state, m, wires) if gate.diagonal else apply_matrix(state, m, wires)


def probs(state: jax.Array) -> jax.Array:
    """``[2**n]`` computational-basis probabilities (wire 0 the most significant bit)."""
    return jnp.reshape(jnp.real(state * jnp.conj(state)), (-1,))


def expval_z(state: jax.Array) -> jax.Array:
    """``[n]``: ``<Z_q>`` of every wire q, from the wire's marginal probabilities."""
    p = jnp.real(state * jnp.conj(state))
    n = state.ndim
    marg = jnp.stack([jnp.sum(p, axis=tuple(a for a in range(n) if a != q)) for q in range(n)])  # [n, 2]
    return marg[:, 0] - marg[:, 1]


def _z_signs(wires, n, dtype):
    """``(2,)*n``-broadcastable ±1 of the Z word on ``wires``."""
    sign = jnp.ones((1,) * n, dtype)
    for w in wires:
        shape = [1] * n
        shape[w] = 2
        sign = sign * jnp.reshape(jnp.array([1.0, -1.0], dtype), shape)
    return sign


def expval_pauli(state: jax.Array, word: Sequence[tuple[int, str]]) -> jax.Array:
    """``<ψ|P|ψ>`` (real scalar) of the Pauli word ``P = ⊗ (wire, "X"|"Y"|"Z")`` (empty: the identity, 1)."""
    word = [(w, p) for w, p in word if p != "I"]
    real = jnp.real(state).dtype
    if all(p == "Z" for _, p in word):  # diagonal: probabilities times the word's signs
        return jnp.sum(jnp.real(state * jnp.conj(state)) * _z_signs([w for w, _ in word], state.ndim, real))
    phi = state
    for w, p in word:
        phi = apply_matrix(phi, _PAULI[p], (w,))
    return jnp.real(jnp.vdot(state, phi))


def expval_pauli_sum(state: jax.Array, terms: Sequence[tuple[float, Sequence[tuple[int, str]]]]) -> jax.Array:
    """``Σ_k c_k <P_k>`` (real scalar) of a Pauli sum ``((c_k, word_k), ...)``."""
    total = jnp.zeros((), jnp.real(state).dtype)
    for coeff, word in terms:
        total = total + coeff * expval_pauli(state, word)
    return total


def sample_bits(p: jax.Array, key: jax.Array, shots: int, n_qubits: int) -> jax.Array:
    """``[shots, n]`` bit strings (wire 0 first) drawn from ``p [2**n]`` with ``key`` (float, the dtype of p)."""
    idx = jax.random.categorical(key, jnp.log(jnp.clip(p, 1e-30, None)), shape=(int(shots),))
    return ((idx[:, None] >> jnp.arange(n_qubits - 1, -1, -1)[None, :]) & 1).astype(p.dtype)


def sample_expval_z(state: jax.Array, key: jax.Array, shots: int) -> jax.Array:
    """``[n]``: the mean over ``shots`` measured bit strings of every wire's Z eigenvalue (1 - 2 bit)."""
    return jnp.mean(1.0 - 2.0 * sample_bits(probs(state), key, shots, state.ndim), axis=0)


def qwc_groups(terms) -> tuple[tuple[dict, tuple], ...]:
    """Greedy qubit-wise commuting groups of a Pauli sum: ``((basis {wire: P}, terms), ...)``; identity terms go to
    the first group (they need no measurement)."""
    groups: list[tuple[dict, list]] = []
    ident = []
    for coeff, word in terms:
        word = tuple((w, p) for w, p in word if p != "I")
        if not word:
            ident.append((coeff, word))
            continue
        for basis, members in groups:
            if all(basis.get(w, p) == p for w, p in word):
                basis.update(dict(word))
                members.append((coeff, word))
                break
        else:
            groups.append((dict(word), [(coeff, word)]))
    if not groups:
        groups.append(({}, []))
    groups[0][1].extend(ident)
    return tuple((basis, tuple(members)) for basis, members in groups)


def sample_pauli_sum(state: jax.Array, terms, key: jax.Array, shots: int) -> jax.Array:
    """A shot estimate of ``Σ c_k <P_k>``: per qubit-wise commuting group, rotate to its basis, draw ``shots`` bit
    strings and average each word's eigenvalue ``Π (1 - 2 bit)`` (PennyLane's grouped measurement)."""
    groups = qwc_groups(terms)
    n = state.ndim
    real = jnp.real(state).dtype
    total = jnp.zeros((), real)
    for (basis, members), k in zip(groups, jax.random.split(key, len(groups))):
        rotated = state
        for w, p in basis.items():
            rotated = apply_matrix(rotated, _TO_Z[p], (w,))
        bits = sample_bits(probs(rotated), k, shots, n)
        for coeff, word in members:
            eig = jnp.prod(1.0 - 2.0 * bits[:, [w for w, _ in word]], axis=1) if word else jnp.ones(shots, real)
            total = total + coeff * jnp.mean(eig)
    return total
