"""Shared by the LM tests: a plain jitted optax loop that trains an LM on byte windows."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from spiking import data


def train_lm(model, tokens, steps: int, *, seq_len: int, batch_size: int = 32, lr: float = 1e-2):
    """``model`` trained ``steps`` Adam steps on windows of ``tokens`` (a scan over steps); returns the model."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(lr)
    tokens = jnp.asarray(tokens)

    def loss_fn(p, batch):
        logits = nnx.merge(graphdef, p, rest)(batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()

    def step(carry, key):
        p, o = carry
        g = jax.grad(loss_fn)(p, data.sample_windows(tokens, key, batch_size, seq_len))
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), None

    run = jax.jit(lambda p, o, keys: jax.lax.scan(step, (p, o), keys)[0])
    params, _ = run(params, tx.init(params), jax.random.split(jax.random.key(1), steps))
    return nnx.merge(graphdef, params, rest)
