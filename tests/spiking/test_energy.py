"""Op and energy accounting: hand-counted toy network, the dense model's analytic count, honest AC/MAC split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spiking import energy
from spiking.lm import DenseLM, SpikingLM


def test_linear_and_attention_counts_by_hand():
    x = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # 2 rows, fan_in 3, 3 spikes
    s = energy.linear_site(x, 4, spiking=True)
    assert float(s["macs"]) == 2 * 3 * 4
    assert float(s["acs"]) == 3 * 4  # each spike feeds 4 outputs
    assert float(s["binary"]) == 1.0 and float(s["rate_nnz"]) / float(s["rate_size"]) == 0.5
    assert float(energy.linear_site(x * 0.5, 4, spiking=True)["binary"]) == 0.0  # 0.5 is not a spike

    q = jnp.array([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])  # [1, L=3, d=2]; row nonzeros 1, 2, 1
    qs = energy.causal_matmul_site(q, 0, spiking=True)
    assert float(qs["macs"]) == (1 + 2 + 3) * 2  # query i meets i+1 keys
    assert float(qs["acs"]) == 1 * 1 + 2 * 2 + 1 * 3
    vs = energy.causal_matmul_site(q, 0, spiking=True, query_side=False)
    assert float(vs["acs"]) == 1 * 3 + 2 * 2 + 1 * 1  # key j is read by L - j queries
    assert float(energy.elementwise_site(jnp.ones((5,)), 2.0)["macs"]) == 10


def test_three_accountings_on_a_toy_network():
    spikes_in = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    floats_in = jnp.array([[0.3, -1.2, 2.0], [0.7, 0.1, -0.4]])
    spikes_out = jnp.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])  # rate 0.25
    sites = {
        "pre": energy.linear_site(spikes_in, 4, spiking=True),  # binary input: 12 ACs, 24 MACs dense
        "post": energy.linear_site(floats_in, 4, spiking=True, rate_from=spikes_out),  # float input, spikes after
        "head": energy.linear_site(floats_in, 5, spiking=False),  # 30 MACs
        "norm": energy.elementwise_site(floats_in, 2.0),  # 12 MACs
        "mem": energy.elementwise_site(spikes_out, 1.0, neuron=True),  # 8 membrane updates
    }
    total = energy.add_sites(None, sites)
    total = energy.add_sites(total, sites)  # two identical evaluation batches
    out = energy.account(total, tokens=4, dense_macs_per_token=100.0)
    e_mac, e_ac, e_sop = 4.6, 0.9, 23.6
    per_batch_papers = 0.5 * 24 * e_ac + 0.25 * 24 * e_ac + 30 * e_mac + 12 * e_mac
    per_batch_published = per_batch_papers + 8 * e_mac
    per_batch_strict = 12 * e_ac + 24 * e_mac + 30 * e_mac + 12 * e_mac + 8 * e_mac
    per_batch_loihi = 12 * e_sop + (24 + 30 + 12 + 8) * e_mac
    assert out["energy_published_pj"] == pytest.approx(2 * per_batch_published / 4)
    assert out["energy_papers_pj"] == pytest.approx(2 * per_batch_papers / 4)
    assert out["neuron_macs_per_token"] == pytest.approx(2 * 8 / 4)
    assert out["energy_strict_pj"] == pytest.approx(2 * per_batch_strict / 4)
    assert out["energy_strict_loihi_pj"] == pytest.approx(2 * per_batch_loihi / 4)
    assert out["energy_dense_pj"] == pytest.approx(100 * e_mac)
    assert out["ratio_strict_vs_dense"] == pytest.approx(out["energy_strict_pj"] / (100 * e_mac))
    assert out["acs_per_token"] == pytest.approx(2 * 12 / 4)
    assert out["macs_per_token"] == pytest.approx(2 * (24 + 30 + 12 + 8) / 4)
    assert out["rate/pre"] == pytest.approx(0.5) and out["rate/post"] == pytest.approx(0.25)
    assert "rate/head" not in out


def _sites(model, tokens):
    graphdef, state = nnx.split(model)
    sites = jax.jit(lambda s, t: energy.capture_sites(nnx.merge(graphdef, s), t))(state, tokens)
    return energy.add_sites(None, jax.device_get(sites))


def test_dense_model_measured_equals_analytic():
    kw = {"width": 32, "depth": 2, "heads": 4, "seq_len": 24}
    tokens = jax.random.randint(jax.random.key(0), (3, 24), 0, 256)
    sites = _sites(DenseLM(**kw, rngs=nnx.Rngs(0)), tokens)
    out = energy.account(sites, tokens.size, dense_macs_per_token=energy.dense_lm_macs(32, 2, 24, heads=4))
    assert out["acs_per_token"] == 0.0
    assert out["macs_per_token"] == pytest.approx(energy.dense_lm_macs(32, 2, 24, heads=4))
    assert out["ratio_strict_vs_dense"] == pytest.approx(1.0)


def test_placement_decides_which_matmuls_read_spikes():
    kw = {"width": 32, "depth": 1, "heads": 2, "seq_len": 16, "timesteps": 3}
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 256)
    pre = _sites(SpikingLM(**kw, spike_placement="pre", rngs=nnx.Rngs(0)), tokens)
    post = _sites(SpikingLM(**kw, spike_placement="post", rngs=nnx.Rngs(0)), tokens)
    linears = ["wq", "wk", "wv", "wo", "w1", "w2"]
    assert all(pre[f"blocks.0.{n}"]["binary"] == 1 for n in linears)  # every block Linear reads spikes
    assert [n for n in linears if post[f"blocks.0.{n}"]["binary"] == 1] == ["w2"]  # only fc2 reads spikes
    assert pre["head"]["binary"] == 0 and post["head"]["binary"] == 0
    # Q and V are spikes in both placements: the attention products are accumulates
    assert pre["blocks.0.qk"]["binary"] == 1 and post["blocks.0.av"]["binary"] == 1
    # the dense-equivalent MACs of every block Linear scale with T
    assert pre["blocks.0.wq"]["macs"] == 3 * 2 * 16 * 32 * 32
    out_post = energy.account(post, tokens.size, dense_macs_per_token=1.0)
    assert out_post["energy_strict_pj"] > out_post["energy_published_pj"]  # the convention undercounts "post"
    np.testing.assert_allclose(pre["blocks.0.wq"]["acs"], pre["blocks.0.wq"]["rate_nnz"] * 32)


PIN_KW = {"width": 32, "depth": 2, "heads": 2, "seq_len": 16}
PINNED_MODELS = {
    "pre_T3": dict(timesteps=3, spike_placement="pre", threshold=0.5),
    "post_T3": dict(timesteps=3, spike_placement="post", threshold=0.5),
    "plif_T2": dict(timesteps=2, neuron="plif", beta=0.7, threshold=0.15),
    "twin": dict(timesteps=3, spiking=False),
    "dense": None,
}
OLD_NAMES = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "fc1": "w1", "fc2": "w2", "qk": "qk", "av": "av"}


@pytest.mark.parametrize("name", list(PINNED_MODELS))
def test_energy_figures_pinned_from_before_the_sown_accounting(name):
    """Figures computed by the in-forward counting (``return_stats=True``, before the models sowed their tensors),
    stored in energy_pinned.json: the sown accounting reproduces every one (site names moved to module paths)."""
    import json
    from pathlib import Path

    pinned = json.loads((Path(__file__).parent / "energy_pinned.json").read_text())[name]
    kw = PINNED_MODELS[name]
    model = DenseLM(**PIN_KW, rngs=nnx.Rngs(0)) if kw is None else SpikingLM(**PIN_KW, **kw, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(7), (2, 16), 0, 256)
    out = energy.account(_sites(model, tokens), tokens.size, dense_macs_per_token=energy.dense_lm_macs(32, 2, 16, heads=2))
    renamed = {}
    for key, value in pinned.items():
        if key.startswith("rate/"):
            block, site = key[5:].split(".")
            key = f"rate/blocks.{block[5:]}.{OLD_NAMES[site]}"
        renamed[key] = value
    assert sorted(out) == sorted(renamed)
    for key, value in renamed.items():
        assert out[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_forward_outside_capture_sows_nothing():
    model = SpikingLM(**PIN_KW, timesteps=2, rngs=nnx.Rngs(0))
    before = jax.tree.structure(nnx.state(model))
    model(jnp.zeros((1, 8), jnp.int32))
    assert jax.tree.structure(nnx.state(model)) == before  # no Trace variable left on the model
