"""Fubini–Study metric from the JAX simulator's state Jacobian: analytic values on small circuits, parity with
PennyLane's metric_tensor (NumPy/autograd interface) at 1e-10 in x64."""

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp

from quantum_opt import circuits as C
from quantum_opt.metric import (
    block_diagonal_metric,
    block_ids,
    fubini_study_metric,
    metric_fn,
    quantum_geometric_tensor,
)


def _state_qnode(n, body, n_params=3):
    """The state function of the quantum function ``body(p)`` compiled onto the simulator (no PennyLane QNode)."""

    def ansatz(params, wires, inputs=None):
        body(params)

    ansatz.param_shape = lambda n_qubits, n_layers: (n_params,)
    return C.make_circuit(n, 1, ansatz).state


def test_rx_on_zero_is_one_quarter():
    # psi = cos(t/2)|0> - i sin(t/2)|1>;  <dpsi|dpsi> = 1/4,  <psi|dpsi> = 0  =>  g = 1/4 for every t.
    state = _state_qnode(1, lambda p: qml.RX(p[0], wires=0), 1)
    for t in (0.0, 0.7, 2.5):
        g = jax.jit(lambda p: fubini_study_metric(state, p))(jnp.array([t]))
        np.testing.assert_allclose(g, [[0.25]], atol=1e-6)


def test_ry_then_rx_one_qubit_closed_form():
    # psi = RX(b) RY(a)|0>, phi = RY(a)|0> (real amplitudes).
    # g_aa = Var_{|0>}(Y/2) = 1/4;  g_bb = Var_phi(X/2) = (1 - sin^2 a)/4 = cos^2(a)/4;
    # <d_a psi|d_b psi> = 1/4 <phi|Y X|phi> = -i/4 <phi|Z|phi> (imaginary), <d_a psi|psi> = i/2 <Y>_phi = 0 => g_ab = 0.
    def body(p):
        qml.RY(p[0], wires=0)
        qml.RX(p[1], wires=0)

    state = _state_qnode(1, body, 2)
    for a, b in [(0.3, 1.2), (1.4, -0.8)]:
        g = jax.jit(lambda p: fubini_study_metric(state, p))(jnp.array([a, b]))
        np.testing.assert_allclose(g, np.diag([0.25, np.cos(a) ** 2 / 4]), atol=1e-6)


def test_two_qubit_entangled_closed_form():
    # RX(a) on q0, RX(b) on q1, CNOT(0,1), RZ(c) on q1.  phi = RX(a)|0> ⊗ RX(b)|0>.
    # g_aa = g_bb = 1/4 (RX on |0>).  CNOT† Z1 CNOT = Z0 Z1, so g_cc = Var_phi(Z0 Z1 / 2) = (1 - cos^2 a cos^2 b)/4.
    # Cross terms: <d_a|d_c> = 1/4 <phi|X0 Z0 Z1|phi> = -i/4 <Y0><Z1> (imaginary), <d_a|psi> = i/2 <X0> = 0 => 0;
    # likewise g_bc = Re(-i/4 <Z0><Y1>) = 0 and g_ab = 0 (product state, <X> = 0).
    def body(p):
        qml.RX(p[0], wires=0)
        qml.RX(p[1], wires=1)
        qml.CNOT(wires=[0, 1])
        qml.RZ(p[2], wires=1)

    state = _state_qnode(2, body)
    a, b, c = 0.9, 0.4, 1.7
    g = jax.jit(lambda p: fubini_study_metric(state, p))(jnp.array([a, b, c]))
    np.testing.assert_allclose(g, np.diag([0.25, 0.25, (1 - np.cos(a) ** 2 * np.cos(b) ** 2) / 4]), atol=1e-6)
    # the QGT's imaginary part (Berry curvature) is antisymmetric; its real part is the metric
    q = jax.jit(lambda p: quantum_geometric_tensor(state, p))(jnp.array([a, b, c]))
    np.testing.assert_allclose(q.imag, -q.imag.T, atol=1e-6)


def test_pytree_params_flatten_in_ravel_order():
    # the same one-qubit RY/RX circuit with params as a dict: ravel_pytree orders keys alphabetically (a, b)
    def state(p):
        return _state_qnode(1, lambda q: (qml.RY(q[0], wires=0), qml.RX(q[1], wires=0)), 2)(
            jnp.stack([p["a"], p["b"][0]])
        )

    g = jax.jit(lambda p: fubini_study_metric(state, p))({"a": jnp.array(0.5), "b": jnp.array([0.1])})
    np.testing.assert_allclose(g, np.diag([0.25, np.cos(0.5) ** 2 / 4]), atol=1e-6)


@pytest.fixture(scope="module")
def pennylane_reference():
    """PennyLane's metric_tensor (NumPy/autograd interface, which works on every jax) on a hardware-efficient
    circuit, full (Hadamard tests on an auxiliary wire) and block-diagonal, with PennyLane's own layers."""
    n, L = 3, 2
    dev = qml.device("default.qubit", wires=n + 1)

    @qml.qnode(dev, interface="autograd")
    def cost(p):
        C.hardware_efficient(p, range(n))
        return qml.expval(qml.PauliZ(0))

    p = pnp.array(np.random.default_rng(0).uniform(-3, 3, (L, n, 2)), requires_grad=True)
    full = np.asarray(qml.metric_tensor(cost, approx=None)(p)).reshape(12, 12)
    block = np.asarray(qml.metric_tensor(cost, approx="block-diag")(p)).reshape(12, 12)
    layers = [list(layer.param_inds) for layer in qml.workflow.construct_tape(cost)(p).graph.parametrized_layers]
    return n, L, np.asarray(p), full, block, layers


def test_full_metric_matches_pennylane(pennylane_reference):
    n, L, p, full, _, _ = pennylane_reference
    c = C.make_circuit(n, L, "hardware_efficient")
    with jax.enable_x64(True):
        g = jax.jit(lambda q: fubini_study_metric(c.state, q))(jnp.asarray(p))
        g32 = jax.jit(lambda q: fubini_study_metric(c.state, q))(jnp.asarray(p, jnp.float32))
    print(f"max |metric - PennyLane metric_tensor| (x64): {np.abs(np.asarray(g) - full).max():.1e}")
    np.testing.assert_allclose(g, full, atol=1e-10)
    np.testing.assert_allclose(g32, full, atol=2e-5)  # float32 too
    np.testing.assert_allclose(g, g.T, atol=1e-12)
    assert np.linalg.eigvalsh(np.asarray(g, np.float64)).min() > -1e-10  # positive semidefinite


def test_block_diagonal_matches_pennylane_layers(pennylane_reference):
    n, L, p, full, block, layers = pennylane_reference
    c = C.make_circuit(n, L, "hardware_efficient")
    with jax.enable_x64(True):
        gb = jax.jit(lambda q: block_diagonal_metric(c.state, q, layers))(jnp.asarray(p))
    np.testing.assert_allclose(gb, block, atol=1e-10)
    assert np.abs(full - block).max() > 1e-2  # the approximation really drops something here


def test_block_ids_by_layer_leaf_and_groups():
    params = {"w": jnp.zeros((2, 3, 2)), "z": jnp.zeros(4)}
    np.testing.assert_array_equal(block_ids(params, "layer"), [0] * 6 + [1] * 6 + [2, 3, 4, 5])  # a [4] leaf: 4 layers
    np.testing.assert_array_equal(block_ids(params, "leaf"), [0] * 12 + [1] * 4)
    np.testing.assert_array_equal(block_ids(params, "none"), np.arange(16))
    ids = block_ids(jnp.zeros(4), [[0, 2]])
    assert ids[0] == ids[2] and len(set(ids.tolist())) == 3
    with pytest.raises(ValueError, match="blocks: group 1 overlaps"):
        block_ids(jnp.zeros(4), [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="blocks: got 'rows'"):
        block_ids(jnp.zeros(4), "rows")
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        block_ids(jnp.zeros(4), [[5]])


def test_metric_fn_approximations():
    # hardware-efficient, 2 qubits, 2 layers: params [2, 2, 2]; "layer" blocks = flat indices 0-3 and 4-7
    c = C.make_circuit(2, 2, "hardware_efficient")
    p = c.init(jax.random.key(0))
    full, block, diag = jax.jit(
        lambda q: [metric_fn(c.state, a)(q) for a in (None, "block-diag", "diag")]
    )(p)
    np.testing.assert_allclose(diag, np.diag(np.diag(full)), atol=1e-7)
    np.testing.assert_allclose(block[:4, :4], full[:4, :4], atol=1e-7)  # layer 0 block kept
    np.testing.assert_allclose(block[:4, 4:], 0.0)  # between layers dropped
    assert np.abs(full[:4, 4:]).max() > 1e-3
    with pytest.raises(ValueError, match="approx: got 'kfac'"):
        metric_fn(c.state, "kfac")
