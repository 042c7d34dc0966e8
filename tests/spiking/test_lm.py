"""SpikingLM, its twin and DenseLM: they learn bytes of the embedded corpus, attention is causal, bad config raises."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spiking import data
from spiking.lm import DenseLM, SpikingLM, token_shift

from .lm_helpers import train_lm

SMALL = {"width": 32, "depth": 1, "heads": 2, "seq_len": 32}


def _make(kind, seed=0, shift=False, **kw):
    if kind == "dense":
        return DenseLM(**SMALL, token_shift=shift, rngs=nnx.Rngs(seed))
    return SpikingLM(**SMALL, timesteps=2, spiking=kind != "twin", spike_placement=kw.get("placement", "pre"),
                     token_shift=shift, rngs=nnx.Rngs(seed))


def _train(model, train, steps, batch_size=32, lr=1e-2):
    return train_lm(model, train, steps, seq_len=SMALL["seq_len"], batch_size=batch_size, lr=lr)


def _apply(model, tokens, return_stats=False):
    """``model(tokens)`` under one jit (eager NNX calls dispatch op by op and are slow); with ``return_stats`` also
    the op-count sites of ``spiking.energy`` from what the model sowed."""
    from spiking import energy

    graphdef, state = nnx.split(model)

    def fn(s, t):
        m = nnx.merge(graphdef, s)
        return (m(t), energy.capture_sites(m, t)) if return_stats else m(t)

    return jax.jit(fn)(state, jnp.asarray(tokens))


def _bits(model, windows):
    logits = _apply(model, windows[:, :-1])
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(windows[:, 1:])).mean()) / math.log(2)


@pytest.fixture(scope="module")
def corpus():
    train, val = data.split(data.load_corpus(), 0.1)
    return train, data.eval_windows(val, SMALL["seq_len"], 64), data.unigram_entropy(train)


@pytest.mark.parametrize("kind", ["spiking", "twin", "dense"])
def test_learns_well_below_unigram_entropy(kind, corpus):
    train, evals, unigram = corpus
    model = _make(kind)
    before = _bits(model, evals)
    after = _bits(_train(model, train, steps=150), evals)
    assert before > 7.0  # untrained: about log2(256) = 8 bits
    print(f"{kind}: {before:.2f} -> {after:.2f} bits per byte (unigram entropy {unigram:.2f})")
    assert after < unigram - 0.6, (kind, after, unigram)


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("kind", ["spiking", "post", "twin", "dense"])
def test_causal(kind, shift):
    model = _make("spiking" if kind == "post" else kind, placement="post" if kind == "post" else "pre", shift=shift)
    tokens = jax.random.randint(jax.random.key(0), (3, SMALL["seq_len"]), 0, 256)
    j = 20
    changed = tokens.at[:, j:].set((tokens[:, j:] + 7) % 256)
    a, b = _apply(model, tokens), _apply(model, changed)
    np.testing.assert_allclose(np.asarray(a[:, :j]), np.asarray(b[:, :j]), atol=1e-5)
    assert not np.allclose(np.asarray(a[:, j:]), np.asarray(b[:, j:]), atol=1e-3)  # later logits do depend on it
    assert a.shape == (3, SMALL["seq_len"], 256)


def test_token_shift_equals_numpy():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 6)).astype(np.float32)
    want = x.copy()
    want[..., 0, 3:] = 0.0
    want[..., 1:, 3:] = x[..., :-1, 3:]  # the second half of the channels comes from the previous position
    np.testing.assert_array_equal(np.asarray(token_shift(jnp.asarray(x))), want)


def test_token_shift_adds_no_operation_and_keeps_spikes_binary():
    tokens = jax.random.randint(jax.random.key(0), (2, 16), 0, 256)
    _, plain = _apply(_make("dense"), tokens, return_stats=True)
    _, shifted = _apply(_make("dense", shift=True), tokens, return_stats=True)
    assert plain.keys() == shifted.keys()
    for name in plain:
        for field in ("macs", "macs_nz", "binary"):
            if field in plain[name]:
                assert float(plain[name][field]) == float(shifted[name][field]), (name, field)
    _, sites = _apply(_make("spiking", shift=True), tokens, return_stats=True)
    assert float(sites["blocks.0.wq"]["binary"]) == 1.0 and float(sites["blocks.0.w1"]["binary"]) == 1.0


def test_token_shift_helps_the_spiking_lm_learn(corpus):
    """The previous byte at no cost: after the same steps the shifted spiking LM is clearly lower (at width 256,
    400 steps, lm_energy_front.toml: see its header)."""
    train, evals, _ = corpus
    plain = _bits(_train(_make("spiking"), train, steps=150), evals)
    shifted = _bits(_train(_make("spiking", shift=True), train, steps=150), evals)
    print(f"spiking LM after 150 steps: {plain:.3f} bits/char plain, {shifted:.3f} with token shift")
    assert shifted < plain - 0.1


def test_spikes_are_binary_and_twin_is_not():
    tokens = jax.random.randint(jax.random.key(0), (2, 16), 0, 256)
    _, sites = _apply(_make("spiking"), tokens, return_stats=True)
    assert float(sites["blocks.0.wq"]["binary"]) == 1.0 and 0.0 < float(sites["blocks.0.wq"]["rate_nnz"])
    _, sites = _apply(_make("twin"), tokens, return_stats=True)
    assert float(sites["blocks.0.wq"]["binary"]) == 0.0


def test_bad_config_raises():
    with pytest.raises(ValueError, match="spike_placement"):
        SpikingLM(**SMALL, spike_placement="middle", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="neuron"):
        SpikingLM(**SMALL, neuron="hodgkin", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="tokens"):
        DenseLM(**SMALL, rngs=nnx.Rngs(0))(jnp.zeros((2, 64), jnp.int32))


def test_text_task_metrics_and_bad_path(tmp_path):
    from experiments.errors import ConfigError
    from spiking.registry import TextConfig, measure_energy, text_task

    task = text_task(TextConfig(seq_len=16, eval_windows=4), key=jax.random.key(0))
    batch = jax.jit(lambda d, k: task.sample(d, k, 8))(task.train_data, jax.random.key(1))
    assert batch["tokens"].shape == (8, 17) and task.spec["vocab_size"] == 256
    model = DenseLM(**SMALL, rngs=nnx.Rngs(0))
    loss, metrics = jax.jit(lambda b: task.loss(model, b, None, False))(batch)
    assert float(metrics["bits_per_char"]) == pytest.approx(float(loss) / math.log(2), rel=1e-6)
    assert float(metrics["perplexity"]) == pytest.approx(math.exp(float(loss)), rel=1e-5)
    energy = measure_energy(model, task.eval_batches(task.eval_data, 4))
    assert energy["ratio_strict_vs_dense"] == pytest.approx(1.0)  # the dense model is its own reference
    with pytest.raises(ConfigError, match="data.path"):
        text_task(TextConfig(path=str(tmp_path / "missing.txt")), key=jax.random.key(0))
