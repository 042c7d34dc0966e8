"""Precision and attention options: bfloat16 training follows float32's loss; cuDNN attention where it cannot
run is a one-line config error; parameters and logits stay float32 whatever the compute type."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spiking import data
from spiking.lm import DenseLM, SpikingLM

KW = {"width": 32, "depth": 1, "heads": 2, "seq_len": 32}
STEPS = 100
TOLERANCE = 0.05  # nats: |mean loss over the last 20 steps, bfloat16 - float32|


def _losses(model, tokens, steps=STEPS, batch_size=16, lr=3e-3):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(lr)

    def loss_fn(p, batch):
        logits = nnx.merge(graphdef, p, rest)(batch[:, :-1]).astype(jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()

    def step(carry, key):
        p, o = carry
        loss, g = jax.value_and_grad(loss_fn)(p, data.sample_windows(tokens, key, batch_size, KW["seq_len"]))
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), loss

    run = jax.jit(lambda p, o, keys: jax.lax.scan(step, (p, o), keys))
    (params, opt_state), losses = run(params, tx.init(params), jax.random.split(jax.random.key(1), steps))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))  # parameters stay float32
    assert all(x.dtype in (jnp.float32, jnp.int32) for x in jax.tree.leaves(opt_state))  # so does Adam's state
    return np.asarray(losses)


def test_bfloat16_training_follows_float32():
    tokens = jnp.asarray(data.split(data.load_corpus(), 0.1)[0][:50_000])
    f32 = _losses(DenseLM(**KW, rngs=nnx.Rngs(0)), tokens)
    bf16 = _losses(DenseLM(**KW, dtype="bfloat16", rngs=nnx.Rngs(0)), tokens)
    print(f"last-20 mean loss: float32 {f32[-20:].mean():.4f}, bfloat16 {bf16[-20:].mean():.4f}")
    assert f32[-20:].mean() < f32[:5].mean() - 1.0  # it learned
    assert abs(bf16[-20:].mean() - f32[-20:].mean()) < TOLERANCE


def test_compute_dtype_reaches_the_matmuls_not_the_logits():
    tokens = jnp.zeros((2, 16), jnp.int32)
    for model in (DenseLM(**KW, dtype="bfloat16", rngs=nnx.Rngs(0)),
                  SpikingLM(**KW, timesteps=2, dtype="float16", ffn="moe", experts=2, rngs=nnx.Rngs(0))):
        g, s = nnx.split(model)
        jaxpr = str(jax.make_jaxpr(lambda s: nnx.merge(g, s)(tokens))(s))
        assert ("bf16" if model.dtype == "bfloat16" else "f16") in jaxpr  # the Linears compute in 16 bits
        logits = jax.jit(lambda s: nnx.merge(g, s)(tokens))(s)
        assert bool(jnp.isfinite(logits.astype(jnp.float32)).all())


def test_cudnn_attention_where_it_cannot_run_is_a_config_error():
    from spiking.registry import DenseLMConfig

    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match=r"^attention: 'cudnn' is not allowed"):
            DenseLMConfig(attention="cudnn", dtype="bfloat16")
    with pytest.raises(ValueError, match=r"^attention: 'cudnn' is not allowed"):
        DenseLMConfig(attention="cudnn")  # float32: not on any backend
    assert DenseLMConfig(attention="xla", dtype="bfloat16").attention == "xla"
