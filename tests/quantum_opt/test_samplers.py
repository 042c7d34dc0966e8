"""The annealing circuit against a scipy state-vector reference, and the samplers' behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from quantum_opt import samplers


def _reference_probs(energies, gammas, betas):
    n = int(np.log2(len(energies)))
    x = np.array([[0, 1], [1, 0]], complex)
    mixer = sum(np.kron(np.kron(np.eye(2 ** w), x), np.eye(2 ** (n - w - 1))) for w in range(n))
    psi = np.full(2 ** n, 2 ** (-n / 2), complex)
    for g, b in zip(gammas, betas):
        psi = np.exp(-1j * g * np.asarray(energies)) * psi
        psi = scipy.linalg.expm(1j * b * mixer) @ psi  # mixer Hamiltonian -sum X
    return np.abs(psi) ** 2


def test_circuit_matches_scipy_statevector():
    losses = jnp.array([3.0, -1.0, 0.5, 2.0, 0.0, 1.5, -0.5, 4.0])
    probs = samplers.anneal_probs(losses, layers=3, total_time=2.5)
    gammas, betas = samplers.schedule(3, 2.5)
    ref = _reference_probs(np.asarray(samplers.normalise(losses)), np.asarray(gammas), np.asarray(betas))
    np.testing.assert_allclose(np.asarray(probs), ref, atol=2e-5)


def test_equal_losses_stay_uniform():
    probs = samplers.anneal_probs(jnp.full((16,), 0.7), layers=4, total_time=3.0)
    np.testing.assert_allclose(np.asarray(probs), np.full(16, 1 / 16), atol=1e-5)


def test_slow_anneal_concentrates_on_the_minimum():
    losses = (0.5 + 0.5 * jax.random.uniform(jax.random.key(3), (16,))).at[5].set(0.0)  # a gapped minimum
    short = samplers.anneal_probs(losses, layers=2, total_time=1.0)
    probs = samplers.anneal_probs(losses, layers=16, total_time=24.0)
    assert int(jnp.argmax(probs)) == 5
    assert float(probs[5]) > 0.3 > float(short[5])  # uniform: 1/16; a slower anneal concentrates more


def test_quantum_sampler_beats_uniform_guess_and_is_jittable():
    losses = jax.random.uniform(jax.random.key(0), (16,))
    best = int(jnp.argmin(losses))
    f = jax.jit(jax.vmap(lambda k: samplers.quantum(losses, k, shots=1)))
    picks, evals = f(jax.random.split(jax.random.key(1), 400))
    assert np.all(np.asarray(evals) == 1)
    assert np.mean(np.asarray(picks) == best) > 0.12  # uniform guessing: 1/16
    assert float(jnp.mean(samplers.normalise(losses)[picks])) < 0.35  # uniform guessing: ~0.5
    many = samplers.quantum(losses, jax.random.key(2), shots=256)[0]
    assert int(many) == best  # best of many shots is the argmin


def test_classical_twins():
    losses = jnp.array([0.3, 0.2, jnp.nan, 0.9, 0.05, 0.4, 0.6, 0.1])
    assert int(samplers.argmin(losses, jax.random.key(0))[0]) == 4
    keys = jax.random.split(jax.random.key(0), 400)
    hits = jax.jit(jax.vmap(lambda k: samplers.anneal(losses, k, shots=4, layers=8)[0]))(keys)
    assert np.mean(np.asarray(hits) == 4) > 0.8
    rand = jax.jit(jax.vmap(lambda k: samplers.uniform(losses, k)[0]))(keys)
    counts = np.bincount(np.asarray(rand), minlength=8)
    assert counts.min() > 25 and counts.max() < 75  # ~50 each


def test_bad_input():
    with pytest.raises(ValueError, match="losses"):
        samplers.anneal_probs(jnp.zeros(6))
    with pytest.raises(ValueError, match="sampler"):
        samplers.get("grover")
