"""spiking.quantize: round trips within each format's bound and on its grid, int8 weights keep a trained tiny LM's
bits/char within 1%, only block Linears change, spikes pass int8 inputs unchanged, the transform is registered."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spiking import data, quantize
from spiking.lm import DenseLM, SpikingLM

from .lm_helpers import train_lm

SMALL = {"width": 32, "depth": 1, "heads": 2, "seq_len": 32}


@pytest.fixture(scope="module")
def weights():
    """``W [24, 40]`` whose rows span four orders of magnitude, with some tiny entries (fp8 subnormals)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(24, 40)) * np.exp(rng.normal(scale=2.0, size=(24, 1)))
    W[:, :4] *= 1e-4
    return W.astype(np.float32)


@pytest.mark.parametrize("fmt", sorted(quantize.FORMATS))
def test_round_trip_within_the_format_bound_and_on_its_grid(weights, fmt):
    W_hat, scale = quantize.quantize_weights(weights, fmt)
    W_hat, scale = np.asarray(W_hat), np.asarray(scale)
    err = np.abs(W_hat - weights)
    bound = np.asarray(quantize.round_trip_bound(weights, fmt))
    assert (err <= bound * (1 + 1e-5) + 1e-12).all()
    assert err.max() > 0.0  # it did quantise
    np.testing.assert_allclose(scale[:, 0], np.abs(weights).max(1) / quantize.FORMATS[fmt], rtol=1e-6)
    q = W_hat / scale
    if fmt == "fp8":  # every value is an e4m3fn number
        np.testing.assert_allclose(np.asarray(jnp.asarray(q).astype(jnp.float8_e4m3fn), np.float32), q, rtol=1e-5)
    else:  # integers in [-q_max, q_max], the row's largest weight at ±q_max
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)
        assert np.abs(np.round(q)).max() <= quantize.FORMATS[fmt]
        np.testing.assert_allclose(np.abs(np.round(q)).max(1), quantize.FORMATS[fmt])


def test_int8_activation_round_trip_and_clipping():
    x = jnp.linspace(-3.0, 3.0, 1001)
    s = 2.0 / 127  # calibrated on max |x| = 2
    y = np.asarray(quantize.fake_quant(x, s, "int8"))
    inside = np.abs(np.asarray(x)) <= 2.0
    assert (np.abs(y - np.asarray(x))[inside] <= s / 2 + 1e-7).all()
    np.testing.assert_allclose(np.abs(y[~inside]), 2.0, rtol=1e-6)  # clipped to the calibrated range
    with pytest.raises(ValueError, match="weights: 'int2' is not allowed"):
        quantize.quantize_weights(np.ones((2, 2)), "int2")


def _train(model, tokens, steps=200, batch_size=16, lr=1e-2):
    return train_lm(model, tokens, steps, seq_len=SMALL["seq_len"], batch_size=batch_size, lr=lr)


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens)


def _bits(model, windows, graphdef=None):
    """Bits/char on ``windows``; ``graphdef``: run ``model``'s state in it (the same structure, one compile)."""
    logits = _logits(graphdef or nnx.graphdef(model), nnx.state(model), windows[:, :-1])
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).mean()) / math.log(2)


@pytest.fixture(scope="module")
def trained():
    """A tiny DenseLM after 200 steps on the embedded corpus, its validation windows and calibration inputs."""
    train, val = data.split(data.load_corpus(), 0.1)
    tokens = jnp.asarray(train, jnp.uint8)
    model = _train(DenseLM(**SMALL, rngs=nnx.Rngs(0)), tokens)
    windows = jnp.asarray(data.eval_windows(val, SMALL["seq_len"], 128))
    calib = [data.sample_windows(tokens, jax.random.key(i), 16, SMALL["seq_len"])[:, :-1] for i in range(4)]
    return model, windows, calib


def test_int8_weights_keep_bits_per_char_within_one_percent(trained):
    model, windows, calib = trained
    base = _bits(model, windows)
    assert base < 4.0  # it learned something (unigram entropy of the corpus is about 4.7 bits)
    same = nnx.graphdef(model)  # weight-only quantisation keeps the structure: no new compile
    bits = {fmt: _bits(quantize.quantize_lm(model, weights=fmt)[0], windows, same) for fmt in ("int8", "int4")}
    bits["int8+int8"] = _bits(quantize.quantize_lm(model, calib, weights="int8", activations="int8")[0], windows)
    assert abs(bits["int8"] - base) <= 0.01 * base, (base, bits)
    assert abs(bits["int8+int8"] - base) <= 0.03 * base, (base, bits)
    assert bits["int4"] - base > abs(bits["int8"] - base), (base, bits)  # coarser grid, visibly more loss


def _flat(model):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(nnx.state(model))}


def test_quantize_lm_changes_only_block_kernels_and_records_precision():
    model = DenseLM(**SMALL, rngs=nnx.Rngs(0))
    before = _flat(model)
    q, errors = quantize.quantize_lm(model, weights="fp8")
    assert all(np.array_equal(v, before[k]) for k, v in _flat(model).items())  # the input is untouched
    after = _flat(q)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {k for k in before if k.startswith("['blocks']") and "['kernel']" in k}
    assert sorted(errors) == sorted(f"blocks.0.{n}" for n in ("wq", "wk", "wv", "wo", "w1", "w2"))
    assert all(0 < e < 2 ** -4 for e in errors.values())
    assert dict(q.precision) == {"weights": "fp8", "activations": "none"}
    assert q.post_info["quantize"]["weights"] == "fp8" and hash(q.precision)


def test_int8_inputs_pass_spikes_unchanged():
    """With spikes before every block Linear ("pre"), int8 inputs change nothing beyond the weights' rounding."""
    model = SpikingLM(**SMALL, timesteps=2, spike_placement="pre", rngs=nnx.Rngs(0))
    calib = [jax.random.randint(jax.random.key(i), (4, SMALL["seq_len"]), 0, 256) for i in range(2)]
    w_only, _ = quantize.quantize_lm(model, weights="int8")
    both, _ = quantize.quantize_lm(model, calib, weights="int8", activations="int8")
    assert isinstance(both.blocks[0].wq, quantize.QuantInput) and not isinstance(w_only.blocks[0].wq,
                                                                                 quantize.QuantInput)
    assert float(both.blocks[0].wq.scale[...]) == pytest.approx(1 / 127)  # binary inputs: max |x| = 1
    tokens = calib[0]
    run = lambda m: np.asarray(nnx.jit(lambda m, t: m(t))(m, tokens))
    np.testing.assert_allclose(run(both), run(w_only), atol=1e-4)
    assert both.blocks[0].wq.kernel is both.blocks[0].wq.linear.kernel  # read like a Linear (energy's fan-out)
    with pytest.raises(ValueError, match="calib_batches: none given"):
        quantize.quantize_lm(model, weights="int8", activations="int8")


def test_quantize_transform_is_registered_and_checks_its_config():
    from experiments.runner import get
    from spiking.post import QuantizeConfig

    entry = get("transform", "quantize")
    assert entry.config is QuantizeConfig
    for bad, msg in (({"weights": "int2"}, "weights: 'int2' is not allowed"),
                     ({"activations": "fp8"}, "activations: 'fp8' is not allowed"),
                     ({"calib_batch_size": 0}, "calib_batch_size: 0 is not allowed")):
        with pytest.raises(ValueError, match=msg):
            QuantizeConfig(**bad)
    task = get("task", "text").factory(get("task", "text").config(seq_len=16, eval_windows=4), key=jax.random.key(0))
    model = DenseLM(**{**SMALL, "seq_len": 16}, rngs=nnx.Rngs(0))
    cfg = QuantizeConfig(weights="int4", activations="int8", calib_batches=2, calib_batch_size=4)
    q = entry.factory(cfg, model, task, key=jax.random.key(0))
    assert q is not model and dict(q.precision) == {"weights": "int4", "activations": "int8"}
