"""N-digit addition: exact sum likelihood against brute force, symbolic addition, learning from the sum only."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from experiments.errors import ConfigError
from experiments.runner import build_dataclass, registry
from hybrid.tasks import digit_addition as DA


@pytest.mark.parametrize("n", [1, 2])
def test_sum_likelihood_equals_brute_force_enumeration(n):
    key = jax.random.key(n)
    logits = jax.random.normal(key, (3, 2, n, 10)) * 2
    logp = jax.nn.log_softmax(logits, -1)
    lik = jax.jit(lambda a, b, s: jnp.exp(DA.sum_log_likelihood(a, b, s)))
    pa, pb = np.exp(np.asarray(logp[:, 0])), np.exp(np.asarray(logp[:, 1]))
    for b in range(3):
        probs = {}
        for da in itertools.product(range(10), repeat=n):
            p_a = np.prod([pa[b, i, d] for i, d in enumerate(da)])
            a = int("".join(map(str, da)))
            for db in itertools.product(range(10), repeat=n):
                p_b = np.prod([pb[b, i, d] for i, d in enumerate(db)])
                s = a + int("".join(map(str, db)))
                probs[s] = probs.get(s, 0.0) + p_a * p_b
        sums = (0, 7, 10 ** n - 1, 10 ** n + 3, 2 * 10 ** n - 2)
        digits = jnp.array([[int(c) for c in str(s).zfill(n + 1)] for s in sums])
        got = lik(jnp.repeat(logp[b:b + 1, 0], len(sums), 0), jnp.repeat(logp[b:b + 1, 1], len(sums), 0), digits)
        np.testing.assert_allclose(np.asarray(got), [probs.get(s, 0.0) for s in sums], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_symbolic_addition_matches_integers(n):
    rng = np.random.default_rng(n)
    a, b = rng.integers(0, 10, (50, n)), rng.integers(0, 10, (50, n))
    s = DA.add_digits(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_array_equal(np.asarray(DA.to_number(s)), np.asarray(DA.to_number(a) + DA.to_number(b)))


def _task(n, eval_size=500):
    cfg = registry.get("task", "digit_addition").config(n_digits=n, eval_size=eval_size)
    return registry.get("task", "digit_addition").factory(cfg, key=jax.random.key(0))


def test_learns_from_sum_only_beyond_chance_and_transfers_to_four_digits():
    task = _task(1)
    entry = registry.get("model", "digit_perception")
    model = entry.factory(entry.config(hidden=[64]), task=task, rngs=nnx.Rngs(0))
    g, p, r = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(3e-3)
    train = jax.tree.map(jnp.asarray, task.train_data)

    def step(state, i):
        p, o = state
        batch = task.sample(train, jax.random.fold_in(jax.random.key(1), i), 32)
        assert set(batch) == {"images", "sum_digits"}          # the digit labels never reach training
        loss, grads = jax.value_and_grad(lambda q: task.loss(nnx.merge(g, q, r), batch, None, True)[0])(p)
        u, o = tx.update(grads, o, p)
        return (optax.apply_updates(p, u), o), loss

    (p, _), losses = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), jnp.arange(400)))(p)
    assert float(losses[-50:].mean()) < 0.5 * float(losses[:50].mean())
    _, metrics = task.loss(nnx.merge(g, p, r), task.eval_data, None, False)
    # chance for a 1-digit sum is about 1/10 at best (the commonest sum, 9, has probability 0.1)
    assert float(metrics["sum_accuracy"]) > 0.6 and float(metrics["digit_accuracy"]) > 0.75
    # the same perception, exact symbolic addition: 4-digit sums far beyond chance (~1e-4)
    task4 = _task(4)
    loss4, m4 = task4.loss(nnx.merge(g, p, r), task4.eval_data, None, False)
    assert np.isfinite(float(loss4))
    assert float(m4["sum_accuracy"]) > 0.15


def test_bad_config_raises_config_error():
    with pytest.raises(ConfigError, match="data.n_digits: 0 is not allowed; use a value >= 1"):
        build_dataclass("data", registry.get("task", "digit_addition").config, {"n_digits": 0})
