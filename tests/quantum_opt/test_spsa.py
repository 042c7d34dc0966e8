"""spsa: Spall's gain sequences, unbiased gradient estimates, descent on a quadratic and a VQE circuit, counters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pennylane as qml
import pytest

from quantum_opt import make_circuit, spsa
from quantum_opt.transforms import spsa_gains


def _run(tx, f, p0, steps):
    def body(carry, _):
        p, s = carry
        v, g = jax.value_and_grad(f)(p)
        u, s = tx.update(g, s, p, value=v, value_fn=f)
        return (optax.apply_updates(p, u), s), v

    (p, s), values = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, steps))(p0)
    return p, s, np.asarray(values)


def test_gain_schedule_is_spalls_power_law():
    # f(x) = x_0: f(θ + cΔ) − f(θ − cΔ) = 2 c Δ_0, so ĝ = Δ_0 Δ and the update is −a_k Δ_0 Δ: |u_i| = a_k exactly,
    # u_0 = −a_k (Δ_0² = 1), whatever the key; a_k = a / (A + k + 1)^α.
    a, A, alpha = 0.3, 5.0, 0.602
    tx = spsa(a, key=jax.random.key(3), perturbation=0.05, stability=A, alpha=alpha)
    f = lambda p: p[0]
    p = jnp.zeros(6)
    upd = jax.jit(lambda s: tx.update(jnp.zeros(6), s, p, value_fn=f))
    s = tx.init(p)
    for k in range(4):
        u, s = upd(s)
        a_k = a / (A + k + 1) ** alpha
        np.testing.assert_allclose(np.abs(u), a_k, rtol=1e-5)
        np.testing.assert_allclose(u[0], -a_k, rtol=1e-5)
    assert int(s.count) == 4 and int(s.loss_evals) == 8
    a_fn, c_fn = spsa_gains(a, 0.05, alpha, 0.101, A)
    np.testing.assert_allclose(float(a_fn(3.0)), a / (A + 4) ** alpha, rtol=1e-6)
    np.testing.assert_allclose(float(c_fn(9.0)), 0.05 / 10**0.101, rtol=1e-6)


def test_gradient_estimate_is_unbiased_on_a_linear_function():
    # E[(w·Δ) Δ] = w for Rademacher Δ: the mean update over many keys is −a_0 w.
    w = jnp.array([1.0, -2.0, 0.5, 0.0])
    f = lambda p: jnp.dot(w, p)

    def one(key):
        tx = spsa(1.0, key=key)
        return tx.update(jnp.zeros(4), tx.init(jnp.zeros(4)), jnp.zeros(4), value_fn=f)[0]

    keys = jax.random.split(jax.random.key(0), 4000)
    mean = jax.jit(jax.vmap(one))(keys).mean(0)
    np.testing.assert_allclose(mean, -w, atol=0.1)  # std of each entry's mean ≈ 2.3/sqrt(4000) ≈ 0.04


def test_decreases_a_quadratic_and_the_key_decides_the_path():
    target = jnp.linspace(-1.0, 1.0, 10)
    f = lambda p: jnp.sum((p - target) ** 2)
    p0 = jnp.zeros(10)
    p1, s, _ = _run(spsa(0.1, key=jax.random.key(0), perturbation=0.1, stability=10), f, p0, 300)
    assert float(f(p1)) < 0.01 * float(f(p0)), (float(f(p1)), float(f(p0)))
    assert int(s.loss_evals) == 600 and int(s.count) == 300
    p_same, _, _ = _run(spsa(0.1, key=jax.random.key(0), perturbation=0.1, stability=10), f, p0, 300)
    p_other, _, _ = _run(spsa(0.1, key=jax.random.key(1), perturbation=0.1, stability=10), f, p0, 300)
    np.testing.assert_array_equal(p1, p_same)
    assert not np.allclose(p1, p_other)


def test_decreases_a_vqe_circuit_cost_with_pytree_params():
    H = qml.Hamiltonian([1.0, 0.4, 0.4], [qml.PauliZ(0) @ qml.PauliZ(1), qml.PauliX(0), qml.PauliX(1)])
    e0 = np.linalg.eigvalsh(qml.matrix(H, wire_order=[0, 1])).min()
    c = make_circuit(2, 2, "hardware_efficient", hamiltonian=H)
    f = lambda p: c.expval(p["w"])
    tx = optax.chain(optax.identity(), spsa(0.2, key=jax.random.key(0), perturbation=0.2, stability=10))
    p, s, values = _run(tx, f, {"w": jnp.full(c.param_shape, 0.1)}, 150)
    final = float(jax.jit(f)(p))
    assert values[0] > 1.0 and final < e0 + 0.1, (values[0], final, e0)  # measured here: 1.10 -> -1.250 (E0 = -1.281)
    assert int(s[1].loss_evals) == 300


def test_bad_input():
    tx = spsa(0.1, key=0)
    p = jnp.zeros(2)
    with pytest.raises(ValueError, match="value_fn: got None"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="key: got 'seed'"):
        spsa(0.1, key="seed")
    with pytest.raises(ValueError, match="perturbation: got -0.1"):
        spsa(0.1, key=0, perturbation=-0.1)
