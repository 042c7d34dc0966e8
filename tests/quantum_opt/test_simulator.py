"""The JAX statevector simulator against PennyLane's matrices (x64, 1e-12): gates on any wires, Pauli expectations,
probabilities, shots within their standard error, jit / vmap / grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from quantum_opt import simulator as S

N = 3


def _random_state(seed, n=N):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=2 ** n) + 1j * rng.normal(size=2 ** n)
    return v / np.linalg.norm(v)


def _dense(op, n=N):
    return np.asarray(qml.matrix(op, wire_order=range(n)))


@pytest.mark.parametrize("name,wires", [("RX", (1,)), ("RY", (2,)), ("RZ", (0,)), ("PhaseShift", (1,)),
                                        ("Rot", (2,)), ("CRX", (2, 0)), ("CRY", (0, 2)), ("CRZ", (1, 0)),
                                        ("ControlledPhaseShift", (2, 1)), ("IsingXX", (0, 2)), ("IsingYY", (2, 1)),
                                        ("IsingZZ", (1, 2)), ("MultiRZ", (2, 0, 1))])
def test_every_gate_matches_pennylane_on_any_wires(name, wires):
    angles = [0.37, -1.21, 2.05][: S.GATES[name].n_params]
    psi = _random_state(1)
    want = _dense(getattr(qml, name)(*angles, wires=list(wires))) @ psi
    with jax.enable_x64(True):
        got = jax.jit(lambda s, a: S.apply_gate(s, name, list(a), wires))(
            jnp.asarray(psi).reshape((2,) * N), jnp.asarray(angles))
        assert got.dtype == jnp.complex128
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want, atol=1e-12)


def test_constant_matrix_and_diagonal_on_reversed_wires():
    psi = _random_state(2)
    with jax.enable_x64(True):
        s = jnp.asarray(psi).reshape((2,) * N)
        for op in (qml.CNOT(wires=[2, 0]), qml.Toffoli(wires=[1, 2, 0]), qml.Hadamard(wires=1)):
            m = np.asarray(qml.matrix(op, wire_order=op.wires))
            got = S.apply_matrix(s, m, tuple(op.wires))
            np.testing.assert_allclose(np.asarray(got).reshape(-1), _dense(op) @ psi, atol=1e-12)
        d = np.exp(1j * np.arange(4.0))
        op = qml.DiagonalQubitUnitary(d, wires=[2, 0])
        got = S.apply_diagonal(s, d, (2, 0))
        np.testing.assert_allclose(np.asarray(got).reshape(-1), _dense(op) @ psi, atol=1e-12)


def test_expectations_and_probabilities_match_dense_algebra():
    psi = _random_state(3)
    words = [((0, "X"),), ((1, "Y"), (2, "Z")), ((0, "Z"), (2, "Z")), ((0, "X"), (1, "Y"), (2, "X")), ()]
    ops = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    with jax.enable_x64(True):
        s = jnp.asarray(psi).reshape((2,) * N)
        for word in words:
            obs = qml.prod(*[ops[p](w) for w, p in word]) if word else qml.Identity(0)
            want = np.real(np.conj(psi) @ _dense(obs) @ psi)
            np.testing.assert_allclose(float(S.expval_pauli(s, word)), want, atol=1e-12)
        terms = tuple((c, w) for c, w in zip([0.5, -1.0, 2.0, 0.3, 0.7], words))
        want = sum(c * float(S.expval_pauli(s, w)) for c, w in terms)
        np.testing.assert_allclose(float(jax.jit(lambda s: S.expval_pauli_sum(s, terms))(s)), want, atol=1e-12)
        z = [np.real(np.conj(psi) @ _dense(qml.PauliZ(q)) @ psi) for q in range(N)]
        np.testing.assert_allclose(np.asarray(S.expval_z(s)), z, atol=1e-12)
        np.testing.assert_allclose(np.asarray(S.probs(s)), np.abs(psi) ** 2, atol=1e-12)


def test_shots_match_exact_values_within_standard_error():
    psi = _random_state(4)
    s = jnp.asarray(psi, jnp.complex64).reshape((2,) * N)
    shots, draws = 400, 300
    z = np.asarray(S.expval_z(s))
    est = jax.jit(jax.vmap(lambda k: S.sample_expval_z(s, k, shots)))(jax.random.split(jax.random.key(0), draws))
    se = np.sqrt((1 - z ** 2) / (shots * draws))
    assert np.all(np.abs(np.asarray(est).mean(0) - z) < 4 * se), (np.asarray(est).mean(0), z, se)
    np.testing.assert_allclose(np.asarray(est).var(0), (1 - z ** 2) / shots, rtol=0.3)
    a, b = S.sample_expval_z(s, jax.random.key(1), shots), S.sample_expval_z(s, jax.random.key(1), shots)
    np.testing.assert_array_equal(a, b)  # same key, same draw
    # a Pauli sum needing three measurement bases; the identity term is a constant
    terms = ((1.0, ((0, "Z"), (1, "Z"))), (0.4, ((0, "X"),)), (0.4, ((1, "X"),)), (0.3, ((0, "Y"), (2, "Z"))),
             (-0.7, ()))
    groups = S.qwc_groups(terms)
    assert len(groups) == 3 and sum(len(m) for _, m in groups) == len(terms)
    exact = float(S.expval_pauli_sum(s, terms))
    energy = jax.jit(jax.vmap(lambda k: S.sample_pauli_sum(s, terms, k, shots)))(jax.random.split(jax.random.key(2),
                                                                                                  draws))
    assert float(jnp.std(energy)) > 0.01
    assert abs(float(jnp.mean(energy)) - exact) < 4 * float(jnp.std(energy)) / np.sqrt(draws)


def test_jit_vmap_grad_through_a_small_circuit():
    # RY(a) on wire 0, CNOT(0, 1), RX(b) on wire 1: <Z1> = cos(a) cos(b)
    def z1(angles):
        s = S.apply_gate(S.zero_state(2, S.complex_dtype(angles)), "RY", [angles[0]], (0,))
        s = S.apply_matrix(s, np.asarray(qml.matrix(qml.CNOT([0, 1]))), (0, 1))
        return S.expval_z(S.apply_gate(s, "RX", [angles[1]], (1,)))[1]

    with jax.enable_x64(True):
        ab = jnp.asarray(np.random.default_rng(0).uniform(-3, 3, (5, 2)))
        v, g = jax.jit(jax.vmap(jax.value_and_grad(z1)))(ab)
        a, b = np.asarray(ab).T
        np.testing.assert_allclose(v, np.cos(a) * np.cos(b), atol=1e-12)
        np.testing.assert_allclose(g, np.stack([-np.sin(a) * np.cos(b), -np.cos(a) * np.sin(b)], 1), atol=1e-12)
        np.testing.assert_allclose(jax.jacfwd(z1)(ab[0]), g[0], atol=1e-12)
    assert z1(jnp.zeros(2, jnp.float32)).dtype == jnp.float32  # complex64 without x64


def test_simulator_metric_transforms_and_sampler_run_without_pennylane():
    # PennyLane is the circuit language (recording ansätze); nothing else of the quantum path needs it at run time.
    code = """
import sys
sys.modules["pennylane"] = None  # any import of PennyLane now fails
import jax, jax.numpy as jnp, optax
from quantum_opt import simulator as S, samplers, metric, transforms
state = lambda p: S.apply_gate(S.zero_state(1), "RX", [p[0]], (0,)).reshape(-1)
g = metric.fubini_study_metric(state, jnp.array([0.3]))
idx, evals = jax.jit(lambda k: samplers.quantum(jnp.arange(8.0), k, shots=64))(jax.random.key(0))
tx = transforms.tunneling(optax.adam(0.1), key=jax.random.key(0), sampler="quantum", n_qubits=2, window=1)
p = jnp.ones(2)
f = lambda q: jnp.sum(q ** 2)
u, s = tx.update(jax.grad(f)(p), tx.init(p), p, value=f(p), value_fn=f)
print(round(float(g[0, 0]), 6), int(idx), int(evals), "pennylane" in sys.modules and sys.modules["pennylane"] is None)
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0.25", "0", "1", "True"], out.stdout
