"""tunneling(inner): exactly the inner optimizer off plateaus, escapes a double well on one, counts evaluations;
sam and perturbed gradient descent against their formulas; errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from quantum_opt.transforms.tunneling import curvature_directions, perturbed, sam, tunneling


def double_well(p):
    """Two wells per coordinate: local minima near +0.96 (loss ~ +0.29 each), global near -1.04 (~ -0.31 each)."""
    x = p["x"]
    return jnp.sum((x ** 2 - 1) ** 2 + 0.3 * x)


def run(tx, steps, params, loss=double_well):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        upd, state = tx.update(grads, state, params, value=value, value_fn=loss, grad_fn=jax.grad(loss))
        return optax.apply_updates(params, upd), state, upd

    ups = []
    for _ in range(steps):
        params, state, upd = step(params, state)
        ups.append(upd)
    return params, state, ups


def test_off_plateau_equals_inner_bit_for_bit():
    params = {"x": jnp.array([1.3, -0.2, 0.7]), "b": jnp.array(0.5)}
    loss = lambda p: double_well(p) + p["b"] ** 2
    tx = tunneling(optax.adam(0.05), threshold=-1e9, window=2, key=jax.random.key(0))
    with jax.disable_jit():  # op by op: the same arithmetic must give the same bits
        _, state, ups = run(tx, 12, params, loss)
        _, _, ref = run(optax.adam(0.05), 12, params, loss)
    for a, b in zip(ups, ref):
        jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)
    assert int(state.loss_evals) == int(state.circuit_evals) == int(state.jumps) == 0
    tx = tunneling(optax.adam(0.05), sampler="argmin", threshold=-1e9, window=2, key=jax.random.key(0))
    _, _, ups = run(tx, 12, params, loss)  # jitted with the jump in the untaken branch: XLA may fuse the
    _, _, ref = run(optax.adam(0.05), 12, params, loss)  # inner update differently, to within float32 rounding
    for a, b in zip(ups, ref):
        jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6), a, b)


@pytest.mark.parametrize("sampler", ["quantum", "argmin", "random"])
def test_escapes_the_shallow_well_and_counts(sampler):
    start = {"x": jnp.array([0.96, 0.96])}
    local = float(double_well(start))
    (adam_params, _, _) = run(optax.adam(0.02), 150, start)
    assert float(double_well(adam_params)) > local - 1e-3  # plain Adam stays in the shallow well
    tx = tunneling(optax.adam(0.02), sampler=sampler, window=10, threshold=1e-4,
                   step_sizes=(0.5, 1.0, 1.5, 2.0), key=jax.random.key(1))
    params, state, _ = run(tx, 150, start)
    final = float(double_well(params))
    assert int(state.jumps) >= (0 if sampler == "random" else 1)  # one random candidate rarely improves
    attempts = int(state.loss_evals) // (1 if sampler == "random" else 16)
    assert 1 <= attempts <= 150 // 11 and int(state.jumps) <= attempts  # at most one attempt per window + 1 steps
    if sampler == "random":  # one evaluation per attempt, no circuit
        assert int(state.circuit_evals) == 0
        assert final <= local + 1e-6  # accepted jumps only ever lower the loss
    else:  # 16 evaluations per attempt, one circuit execution per attempt for the quantum sampler
        assert int(state.loss_evals) == 16 * attempts
        assert int(state.circuit_evals) == (attempts if sampler == "quantum" else 0)
        assert final < 0.0  # at least one coordinate moved to the deep well (start ~ +0.58, global min ~ -0.62)
    assert int(state.grad_evals) == 0


def test_curvature_directions_find_the_top_eigenspace():
    a = jnp.array([5.0, -3.0, 1.0, 0.5, 0.1, 0.05])
    flat_grad = lambda x: a * x  # Hessian diag(a)
    d = curvature_directions(flat_grad, jnp.ones(6), jax.random.normal(jax.random.key(0), (2, 6)), power_iters=20)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(d)[:, :2], axis=1), 1.0, atol=1e-3)
    tx = tunneling(optax.sgd(0.01), directions="curvature", window=3, threshold=1e9, n_qubits=2,
                   step_sizes=(0.5, 1.0), power_iters=2, sampler="argmin", key=jax.random.key(0))
    _, state, _ = run(tx, 4, {"x": jnp.array([0.9, 0.9])})
    assert int(state.grad_evals) == 2 * 2 * 2 and int(state.loss_evals) == 4


def test_sam_matches_its_formula_and_counts():
    loss = lambda p: double_well(p) + 0.5 * jnp.sum(p["x"] ** 4)
    params = {"x": jnp.array([0.3, -1.2, 2.0])}
    rho, lr = 0.1, 0.05
    _, state, ups = run(sam(optax.sgd(lr), rho=rho), 3, params, loss)
    g = jax.grad(loss)(params)["x"]
    adv = params["x"] + rho * g / jnp.linalg.norm(g)
    expected = -lr * jax.grad(loss)({"x": adv})["x"]
    np.testing.assert_allclose(np.asarray(ups[0]["x"]), np.asarray(expected), rtol=1e-5)
    assert int(state.grad_evals) == 3


def test_perturbed_gd():
    params = {"x": jnp.array([0.5, 0.1, -0.3])}
    inner = optax.sgd(0.1)
    _, state, ups = run(perturbed(inner, radius=0.2, threshold=1e9, cooldown=0, key=jax.random.key(0)), 3, params)
    _, _, ref = run(inner, 1, params)
    diff = np.asarray(ups[0]["x"] - ref[0]["x"])
    assert 0 < np.linalg.norm(diff) <= 0.2 and int(state.perturbations) == 3
    _, state, ups = run(perturbed(inner, threshold=0.0, key=jax.random.key(0)), 1, params)
    np.testing.assert_array_equal(np.asarray(ups[0]["x"]), np.asarray(ref[0]["x"]))
    assert int(state.perturbations) == 0


def test_bad_input():
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="sampler"):
        tunneling(optax.adam(1e-3), sampler="grover", key=k)
    with pytest.raises(ValueError, match="step_sizes"):
        tunneling(optax.adam(1e-3), step_sizes=(1.0, 2.0, 3.0), key=k)
    with pytest.raises(TypeError, match="key"):  # a required keyword argument
        tunneling(optax.adam(1e-3))
    with pytest.raises(TypeError, match="key"):
        perturbed(optax.sgd(0.1))
    tx = tunneling(optax.adam(1e-3), key=k)
    p = {"x": jnp.ones(2)}
    with pytest.raises(ValueError, match="value_fn"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="rho"):
        sam(optax.sgd(0.1), rho=0.0)
