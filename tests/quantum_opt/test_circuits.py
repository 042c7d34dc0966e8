"""Circuits: analytic values; every ansatz's state, expectations, probabilities and gradients against PennyLane's
NumPy/autograd interface (parameter-shift) at 1e-10 in x64, with and without inputs; PennyLane devices as a choice;
recording once; jit/vmap; finite-shot keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp

from quantum_opt import circuits as C


@pytest.fixture(scope="module")
def pennylane_oracle():
    """For every ansatz (3 qubits, 2 layers), without and with inputs: PennyLane's state, probabilities, Pauli-Z
    expectations and their parameter-shift Jacobians in params and inputs (autograd interface, float64)."""
    n, L = 3, 2
    dev = qml.device("default.qubit", wires=n)
    x = np.array([0.3, -1.2, 0.7])
    out = {}
    for name, fn in C.ANSATZE.items():
        p = np.random.default_rng(len(name)).uniform(-np.pi, np.pi, fn.param_shape(n, L))

        def z(w, xx, fn=fn):
            fn(w, range(n), xx)
            return qml.math.stack([qml.expval(qml.PauliZ(i)) for i in range(n)])

        def state(w, xx, fn=fn):
            fn(w, range(n), xx)
            return qml.state()

        z = qml.QNode(z, dev, diff_method="parameter-shift")
        state = qml.QNode(state, dev)
        for inputs in (None, x):
            pw = pnp.array(p, requires_grad=True)
            psi = np.asarray(state(p, inputs))
            ref = {"state": psi, "probs": np.abs(psi) ** 2, "z": np.asarray(z(pw, inputs))}
            if inputs is None:
                ref["dz_dp"] = np.asarray(qml.jacobian(lambda w, z=z: z(w, None))(pw))
            else:
                jp, jx = qml.jacobian(z, argnums=[0, 1])(pw, pnp.array(inputs, requires_grad=True))
                ref["dz_dp"], ref["dz_dx"] = np.asarray(jp), np.asarray(jx)
            out[name, inputs is not None] = (p, inputs, ref)
    return n, L, out


def test_every_ansatz_matches_pennylane_to_1e_10_in_x64(pennylane_oracle):
    n, L, out = pennylane_oracle
    worst = {}
    with jax.enable_x64(True):
        for (name, has_x), (p, x, ref) in out.items():
            c = C.make_circuit(n, L, name)
            xj = None if x is None else jnp.asarray(x)

            @jax.jit
            def everything(q, xi, c=c):
                jac = jax.jacrev(c.expval, argnums=(0, 1) if xi is not None else 0)(q, xi)
                return c.state(q, xi), c.probs(q, xi), c.expval(q, xi), jac

            state, probs, z, jac = everything(jnp.asarray(p), xj)
            assert state.dtype == jnp.complex128
            got = {"state": state, "probs": probs, "z": z}
            if x is None:
                got["dz_dp"] = jac
            else:
                got["dz_dp"], got["dz_dx"] = jac
            for key, want in ref.items():
                err = float(np.abs(np.asarray(got[key]) - want).max())
                worst[key] = max(worst.get(key, 0.0), err)
                assert err < 1e-10, (name, has_x, key, err)
    print("max |simulator - PennyLane| (x64):", {k: f"{v:.1e}" for k, v in worst.items()})


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
    for device in ("simulator", "lightning.qubit"):
        cs = [C.make_circuit(n, L, a, device=device) for a in names]
        assert cs[0].diff_method == {"simulator": "backprop", "lightning.qubit": "adjoint"}[device]
        # one compiled function per device for all three ansätze, vmapped over the inputs
        f = jax.jit(lambda ps, x, cs=cs: [jax.vmap(c.expval, in_axes=(None, 0))(p, x) for c, p in zip(cs, ps)])
        out[device] = f(params, x)
    for name, vb, va in zip(names, out["simulator"], out["lightning.qubit"]):
        assert vb.shape == (3, n)
        np.testing.assert_allclose(vb, va, atol=1e-5, err_msg=name)


def test_pennylane_devices_gradients_agree_and_state_is_consistent():
    n, L = 2, 2
    cb = C.make_circuit(n, L, "reuploading")
    p = cb.init(jax.random.key(2))
    x = jnp.array([0.3, -0.8])
    gb = jax.jit(jax.grad(lambda q, xi: cb.expval(q, xi).sum(), argnums=(0, 1)))(p, x)
    for device in ("default.qubit", "lightning.qubit"):  # PennyLane's own gradients (backprop, adjoint), via callbacks
        ca = C.make_circuit(n, L, "reuploading", device=device)
        ga = jax.jit(jax.grad(lambda q, xi, ca=ca: ca.expval(q, xi).sum(), argnums=(0, 1)))(p, x)
        np.testing.assert_allclose(gb[0], ga[0], atol=1e-5, err_msg=device)
        np.testing.assert_allclose(gb[1], ga[1], atol=1e-5, err_msg=device)
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
    with pytest.raises(ValueError, match=r"device: 'qiskit.aer' cannot run here \(.*\); use device='simulator'"):
        C.make_circuit(2, 1, device="qiskit.aer")
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


def test_recorded_once_per_input_shape_and_slots_name_their_gates():
    calls = []

    def ansatz(params, wires, inputs=None):
        calls.append(type(params).__name__)
        qml.RY(np.sin(params[0]) * 2.0 + (0.0 if inputs is None else inputs[0]), wires=wires[0])  # an expression
        qml.CRX(params[1], wires=[wires[0], wires[1]])
        qml.RX(0.25, wires=wires[1])  # a constant gate

    ansatz.param_shape = lambda n_qubits, n_layers: (2,)
    c = C.make_circuit(2, 1, ansatz)
    f = jax.jit(jax.vmap(c.expval, in_axes=(0, None)))
    p = jax.random.uniform(jax.random.key(0), (5, 2))
    f(p, jnp.array([0.5]))
    f(p * 2, jnp.array([0.1]))
    jax.grad(lambda q: c.expval(q).sum())(p[0])
    assert calls == ["ndarray", "ndarray"]  # once with inputs [1], once without; NumPy placeholders, never a tracer
    slots = c.program((1,)).slots()
    assert slots == [("RY", (0,), {("param", 0), ("input", 0)}), ("CRX", (0, 1), {("param", 1)})]
    # <Z0> = cos(2 sin p0 + x)
    np.testing.assert_allclose(f(p, jnp.array([0.5]))[:, 0], np.cos(2 * np.sin(p[:, 0]) + 0.5), atol=1e-5)


def test_an_operation_the_simulator_cannot_lower_is_one_line():
    def ansatz(params, wires, inputs=None):
        qml.QubitUnitary(np.array([[1, 0], [0, 1]]) * params[0], wires=wires[0])

    ansatz.param_shape = lambda n_qubits, n_layers: (1,)
    with pytest.raises(ValueError, match=r"ansatz: QubitUnitary cannot be compiled to the JAX simulator .*allowed"):
        C.make_circuit(1, 1, ansatz).expval(jnp.ones(1))

    def traced_math(params, wires, inputs=None):
        qml.RX(qml.math.cos(params[0]), wires=wires[0])  # autoray cannot dispatch on a symbol

    traced_math.param_shape = ansatz.param_shape
    with pytest.raises(ValueError, match=r"ansatz: 'traced_math' could not be recorded .*NumPy functions"):
        C.make_circuit(1, 1, traced_math).expval(jnp.ones(1))
