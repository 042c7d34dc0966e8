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
    sites = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t, return_stats=True)[1])(state, tokens)
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
    linears = ["q", "k", "v", "o", "fc1", "fc2"]
    assert all(pre[f"block0.{n}"]["binary"] == 1 for n in linears)  # every block Linear reads spikes
    assert [n for n in linears if post[f"block0.{n}"]["binary"] == 1] == ["fc2"]  # only fc2 reads spikes
    assert pre["head"]["binary"] == 0 and post["head"]["binary"] == 0
    # Q and V are spikes in both placements: the attention products are accumulates
    assert pre["block0.qk"]["binary"] == 1 and post["block0.av"]["binary"] == 1
    # the dense-equivalent MACs of every block Linear scale with T
    assert pre["block0.q"]["macs"] == 3 * 2 * 16 * 32 * 32
    out_post = energy.account(post, tokens.size, dense_macs_per_token=1.0)
    assert out_post["energy_strict_pj"] > out_post["energy_published_pj"]  # the convention undercounts "post"
    np.testing.assert_allclose(pre["block0.q"]["acs"], pre["block0.q"]["rate_nnz"] * 32)
