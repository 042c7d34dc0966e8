"""Circuits: analytic values, parity with PennyLane templates and across devices, jit/vmap, finite-shot keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from quantum_opt import circuits as C


def test_hardware_efficient_one_qubit_analytic():
    # RY(a) RZ(b) |0>: <Z> = cos(a) (RZ only adds phases).
    f = jax.jit(C.make_circuit(1, 1, "hardware_efficient").expval)
    for a, b in [(0.3, 1.1), (2.0, -0.4)]:
        np.testing.assert_allclose(f(jnp.array([[[a, b]]])), [np.cos(a)], atol=1e-6)


def test_hardware_efficient_two_qubits_analytic():
    # RY(a)⊗RY(b) then CNOT(0,1): <Z0> = cos a, <Z1> = <Z0 Z1>_before = cos a cos b.
    c = C.make_circuit(2, 1, "hardware_efficient")
    a, b = 0.7, 1.9
    p = jnp.array([[[a, 0.2], [b, -0.5]]])
    np.testing.assert_allclose(jax.jit(c.expval)(p), [np.cos(a), np.cos(a) * np.cos(b)], atol=1e-6)


def test_strongly_entangling_matches_pennylane_template():
    n, L = 3, 2
    c = C.make_circuit(n, L, "strongly_entangling")
    p = c.init(jax.random.key(0))
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def ref(w):
        qml.StronglyEntanglingLayers(w, wires=range(n))
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    np.testing.assert_allclose(jax.jit(c.expval)(p), np.array(ref(np.asarray(p, np.float64))), atol=1e-5)


def test_reuploading_one_qubit_matches_numpy_unitary():
    # One qubit, L layers of Rot(θ + w x): compare against the product of Rot matrices in numpy.
    def rot(phi, theta, omega):
        rz = lambda t: np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])
        ry = np.array([[np.cos(theta / 2), -np.sin(theta / 2)], [np.sin(theta / 2), np.cos(theta / 2)]])
        return rz(omega) @ ry @ rz(phi)

    c = C.make_circuit(1, 3, "reuploading")
    p = np.asarray(c.init(jax.random.key(1)), np.float64)
    x = np.array([0.4, -1.3])
    psi = np.array([1.0, 0.0], complex)
    for layer in range(3):
        ang = p[layer, 0, :3] + p[layer, 0, 3:] * np.array([x[0], x[1], x[0]])  # tiling x[k % d]
        psi = rot(*ang) @ psi
    z = abs(psi[0]) ** 2 - abs(psi[1]) ** 2
    f = jax.jit(c.expval)
    np.testing.assert_allclose(f(jnp.asarray(p, jnp.float32), jnp.asarray(x, jnp.float32)), [z], atol=1e-5)
    assert abs(float(f(jnp.asarray(p, jnp.float32), jnp.zeros(2))[0]) - z) > 1e-3  # the inputs matter


def test_devices_agree_values_under_jit_vmap():
    n, L = 2, 2
    x = jax.random.uniform(jax.random.key(3), (3, n))
    names = sorted(C.ANSATZE)
    params = [C.make_circuit(n, L, a).init(jax.random.key(2)) for a in names]
    out = {}
    for device in ("default.qubit", "lightning.qubit"):
        cs = [C.make_circuit(n, L, a, device=device) for a in names]
        assert cs[0].diff_method == {"default.qubit": "backprop", "lightning.qubit": "adjoint"}[device]
        # one compiled function per device for all three ansätze, vmapped over the inputs
        f = jax.jit(lambda ps, x, cs=cs: [jax.vmap(c.expval, in_axes=(None, 0))(p, x) for c, p in zip(cs, ps)])
        out[device] = f(params, x)
    for name, vb, va in zip(names, out["default.qubit"], out["lightning.qubit"]):
        assert vb.shape == (3, n)
        np.testing.assert_allclose(vb, va, atol=1e-5, err_msg=name)


def test_adjoint_and_backprop_gradients_agree_and_state_is_consistent():
    n, L = 2, 2
    cb = C.make_circuit(n, L, "strongly_entangling", device="default.qubit")
    ca = C.make_circuit(n, L, "strongly_entangling", device="lightning.qubit")
    p = cb.init(jax.random.key(2))
    x = jnp.array([0.3, -0.8])
    gb = jax.jit(jax.grad(lambda q: cb.expval(q, x).sum()))(p)
    ga = jax.jit(jax.grad(lambda q: ca.expval(q, x).sum()))(p)
    np.testing.assert_allclose(gb, ga, atol=1e-5)
    # state and probs are consistent with the expectations: <Z_q> = sum_s |psi_s|^2 (1 - 2 bit_q(s))
    s, pr, z = jax.jit(lambda q, xi: (cb.state(q, xi), cb.probs(q, xi), cb.expval(q, xi)))(p, x)
    probs = jnp.abs(s) ** 2
    np.testing.assert_allclose(probs, pr, atol=1e-6)
    bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)[None, :]) & 1
    np.testing.assert_allclose(probs @ (1 - 2 * bits), z, atol=1e-5)


def test_hamiltonian_expval_is_scalar_and_matches_sum():
    H = qml.Hamiltonian([0.5, -1.0], [qml.PauliZ(0), qml.PauliZ(0) @ qml.PauliZ(1)])
    c = C.make_circuit(2, 1, "hardware_efficient", hamiltonian=H)
    cz = C.make_circuit(2, 1, "hardware_efficient")
    p = c.init(jax.random.key(4))
    e, z, probs = jax.jit(lambda q: (c.expval(q), cz.expval(q), cz.probs(q)))(p)
    assert e.shape == ()
    zz = np.array([1, -1, -1, 1])
    np.testing.assert_allclose(e, 0.5 * z[0] - probs @ zz, atol=1e-5)


def test_finite_shots_depend_on_key_and_are_unbiased():
    c = C.make_circuit(2, 2, "hardware_efficient", shots=200)
    p = c.init(jax.random.key(5))
    exact = jax.jit(c.expval)(p)
    # one compiled function: the shot estimate for a batch of keys (the default shot count of the circuit)
    f = jax.jit(jax.vmap(lambda k: c.sample_expval(p, k)))
    keys = jax.random.split(jax.random.key(9), 400)
    k0, k1 = jax.random.key(0), jax.random.key(1)
    out = f(jnp.concatenate([jnp.stack([k0, k1, k0]), keys]))
    a, b, a_again, draws = out[0], out[1], out[2], out[3:]
    assert not np.allclose(a, b)  # the key passed under jit changes the draw
    np.testing.assert_array_equal(a, a_again)  # same key, same draw
    # mean of 400 x 200 shots: standard error <= 1/sqrt(80000) ~ 0.0035
    np.testing.assert_allclose(draws.mean(0), exact, atol=0.02)
    # per-draw spread matches the binomial variance (1 - <Z>^2) / shots
    np.testing.assert_allclose(draws.var(0), (1 - exact**2) / 200, rtol=0.3, atol=1e-4)


def test_time_compile_and_run_reports_compile_apart():
    c = C.make_circuit(2, 1, "strongly_entangling")
    t = C.time_compile_and_run(c.expval, c.init(jax.random.key(0)), repeats=3)
    assert set(t) == {"compile_s", "first_call_s", "run_s", "run_min_s"}
    assert t["compile_s"] > t["run_min_s"] > 0


def test_bad_input_raises_one_line_value_errors():
    with pytest.raises(ValueError, match="ansatz: unknown 'bogus'"):
        C.make_circuit(2, 1, "bogus")
    with pytest.raises(ValueError, match="device: unknown 'qiskit'"):
        C.make_circuit(2, 1, device="qiskit")
    with pytest.raises(ValueError, match="n_qubits"):
        C.make_circuit(0, 1)
    c = C.make_circuit(2, 1)
    with pytest.raises(ValueError, match=r"params: got shape \(3,\)"):
        c.expval(jnp.zeros(3))
    with pytest.raises(ValueError, match="shots"):
        c.sample_expval(jnp.zeros(c.param_shape), jax.random.key(0))
    assert C.param_shape("reuploading", 3, 2) == (2, 3, 6)


def test_hamiltonian_finite_shots_group_measurements_and_are_unbiased():
    # X, Y⊗Z and ZZ terms need three qubit-wise commuting groups with different basis rotations; I is a constant.
    H = qml.Hamiltonian(
        [1.0, 0.4, 0.4, 0.3, -0.7],
        [qml.PauliZ(0) @ qml.PauliZ(1), qml.PauliX(0), qml.PauliX(1), qml.PauliY(0) @ qml.PauliZ(1), qml.Identity(0)],
    )
    c = C.make_circuit(2, 2, "strongly_entangling", hamiltonian=H, shots=500)
    p = c.init(jax.random.key(1))
    exact = jax.jit(c.expval)(p)
    draws = jax.jit(jax.vmap(lambda k: c.sample_expval(p, k)))(jax.random.split(jax.random.key(0), 300))
    assert draws.shape == (300,) and float(draws.std()) > 0.01  # shot noise is there ...
    np.testing.assert_allclose(draws.mean(), exact, atol=0.02)  # ... and averages to the exact energy (se ~0.003)
