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
MEMORY_KEYS = ("weight_bytes_per_token", "activation_bytes_per_token", "energy_with_memory_sram_pj",
               "energy_with_memory_dram_pj", "memory_share_sram", "memory_share_dram", "energy_with_memory_sram_b32_pj",
               "energy_with_memory_dram_b32_pj")
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
    assert set(renamed) <= set(out) and set(out) - set(renamed) == set(MEMORY_KEYS)  # memory: added beside
    for key, value in renamed.items():
        assert out[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_forward_outside_capture_sows_nothing():
    model = SpikingLM(**PIN_KW, timesteps=2, rngs=nnx.Rngs(0))
    before = jax.tree.structure(nnx.state(model))
    model(jnp.zeros((1, 8), jnp.int32))
    assert jax.tree.structure(nnx.state(model)) == before  # no Trace variable left on the model


# --- energy at the model's precision and memory traffic (issue 14, items 3 and 4) ---------------------------------

F32_MAC, F32_ADD, F32_MUL, F16_MUL, I8_MUL, I32_ADD = 3.7 + 0.9, 0.9, 3.7, 1.1, 0.2, 0.1  # Horowitz 2014, Fig. 1.1.9


def test_each_number_format_priced_as_stated_on_a_toy_network():
    spikes = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # column spikes 1, 0, 2
    floats = jnp.array([[0.3, -1.2, 2.0], [0.7, 0.1, -0.4]])
    kernel = jnp.array([[1.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 0.0]])  # row nonzeros 3, 4, 1
    sites = {"blocks.0.wq": energy.linear_site(spikes, 4, spiking=True, kernel=kernel),  # ACs on nonzeros: 1*3 + 2*1
             "blocks.0.w1": energy.linear_site(floats, 4, spiking=False, kernel=kernel),  # MACs: 2 rows * 8 nonzeros
             "norm": energy.elementwise_site(floats, 2.0)}  # 12 float32 MACs
    assert float(sites["blocks.0.wq"]["acs_nz"]) == 5 and float(sites["blocks.0.w1"]["macs_nz"]) == 16
    norm = 12 * F32_MAC
    q = frozenset({"blocks.0.wq", "blocks.0.w1"})
    cases = {  # formats -> strict pJ for the batch, by hand
        energy.Formats(): 5 * F32_ADD + 16 * F32_MAC + norm,
        energy.Formats("bfloat16"): 5 * F32_ADD + 16 * (F16_MUL + F32_ADD) + norm,  # bf16 as fp16, fp32 accumulate
        # int8 weights, float inputs: dequantised fp32 MACs + one scale per output; spikes are integers: int32 adds
        energy.Formats(weights="int8", quantised=q): 5 * I32_ADD + 8 * F32_MUL + 16 * F32_MAC + 8 * F32_MUL + norm,
        # int8 x int8: int8 multiply + int32 add, rescale per output, quantise per float input
        energy.Formats(weights="int8", activations="int8", quantised=q):
            5 * I32_ADD + 8 * F32_MUL + 16 * (I8_MUL + I32_ADD) + 8 * F32_MUL + 6 * F32_MUL + norm,
        energy.Formats(weights="fp8", activations="int8", quantised=q):  # fp8 x int8: dequantised, fp32
            5 * F32_ADD + 8 * F32_MUL + 16 * F32_MAC + 8 * F32_MUL + 6 * F32_MUL + norm,
    }
    for formats, pj in cases.items():
        out = energy.account(sites, tokens=2, formats=formats)
        assert out["energy_strict_pj"] == pytest.approx(pj / 2), formats
        assert out["energy_published_pj"] == energy.account(sites, tokens=2)["energy_published_pj"]  # always fp32
    # memory by hand (fp32): weights 8 nonzeros + 12-bit mask (< 12 dense) per token, biases 4; inputs and outputs
    out = energy.account(sites, tokens=2)
    weight_bits = 2 * 2 * (8 * 32 + 12 + 4 * 32)
    act_bits = 6 * 1 + 8 * 32 + (6 + 8) * 32 + (6 + 6) * 32  # spikes at 1 bit; the norm reads and writes 6
    assert out["weight_bytes_per_token"] == pytest.approx(weight_bits / 8 / 2)
    assert out["activation_bytes_per_token"] == pytest.approx(act_bits / 8 / 2)
    words = (weight_bits + act_bits) / 64 / 2
    assert out["energy_with_memory_sram_pj"] == pytest.approx(out["energy_strict_pj"] + 10.0 * words)
    assert out["energy_with_memory_dram_pj"] == pytest.approx(out["energy_strict_pj"] + 1300.0 * words)
    assert out["memory_share_sram"] == pytest.approx(10.0 * words / out["energy_with_memory_sram_pj"])
    served = (weight_bits / 32 + act_bits) / 64 / 2  # the server reading: a weight read serves 32 tokens
    assert out["energy_with_memory_sram_b32_pj"] == pytest.approx(out["energy_strict_pj"] + 10.0 * served)
    assert out["energy_with_memory_dram_b32_pj"] == pytest.approx(out["energy_strict_pj"] + 1300.0 * served)
    int4 = energy.account(sites, tokens=2, formats=energy.Formats(weights="int4", quantised=q))
    assert int4["weight_bytes_per_token"] == pytest.approx(2 * (8 * 4 + 12 + 4 * 32 + 4 * 32) / 8)  # sparse < 48 bits


TINY = {"width": 16, "depth": 1, "heads": 2, "seq_len": 8}


@pytest.fixture(scope="module")
def tiny_dense():
    from spiking.prune import prune_lm
    from spiking.quantize import quantize_lm

    tokens = jax.random.randint(jax.random.key(3), (2, 9), 0, 256)
    dense = DenseLM(**TINY, rngs=nnx.Rngs(0))
    calib = [tokens[:, :-1]]
    return {"tokens": tokens, "dense": dense,
            "int8": quantize_lm(dense, calib, weights="int8", activations="int8")[0],
            "pruned": prune_lm(dense, calib, method="magnitude", sparsity=0.5)[0]}


def test_dense_lm_its_int8_copy_and_pruned_copy_by_hand(tiny_dense):
    from spiking.registry import measure_energy

    d, v, length = 16, 256, 8
    batches = [{"tokens": tiny_dense["tokens"]}]
    f32, i8, pruned = (measure_energy(tiny_dense[k], batches) for k in ("dense", "int8", "pruned"))
    macs = energy.dense_lm_macs(d, 1, length, heads=2)
    block = 12 * d * d  # block-Linear MACs per token; 9 d inputs and 9 d outputs
    int8_zeros = sum(int(jnp.sum(lin.kernel[...] == 0)) for _, lin in nnx.iter_modules(tiny_dense["int8"].blocks)
                     if isinstance(lin, nnx.Linear))  # weights below half a step round to 0 and cost nothing
    assert f32["energy_strict_pj"] == pytest.approx(macs * F32_MAC)
    assert i8["energy_strict_pj"] == pytest.approx((macs - block) * F32_MAC + (block - int8_zeros) * (I8_MUL + I32_ADD)
                                                   + 9 * d * F32_MUL + 9 * d * F32_MUL)
    assert f32["weight_bytes_per_token"] == 4 * (block + 9 * d + d * v + v + 2 * d)  # + head, embedding rows
    assert i8["weight_bytes_per_token"] == block + 4 * 9 * d + 4 * 9 * d + 4 * (d * v + v + 2 * d)  # + scales
    acts = 32 * d + d * (length + 1) + 2 * d + d + v + d  # elements per token (module text), float32
    assert f32["activation_bytes_per_token"] == pytest.approx(4 * acts)
    assert i8["activation_bytes_per_token"] == pytest.approx(4 * acts - 3 * 9 * d)  # int8 Linear inputs
    info = tiny_dense["pruned"].post_info["prune"]
    zeros = info["measured"] * info["pruned_params"]
    assert info["measured"] == pytest.approx(0.5)
    assert f32["macs_per_token"] - pruned["macs_per_token"] == pytest.approx(zeros)  # zeroed weights cost nothing
    assert f32["energy_strict_pj"] - pruned["energy_strict_pj"] == pytest.approx(zeros * F32_MAC)
    assert f32["weight_bytes_per_token"] - pruned["weight_bytes_per_token"] == pytest.approx(4 * zeros - block / 8)
    assert pruned["energy_published_pj"] == pytest.approx(f32["energy_published_pj"])  # the papers' convention
    for out in (f32, i8, pruned):
        assert 0 < out["memory_share_sram"] < out["memory_share_dram"] < 1


def test_spiking_lm_at_float32_and_int8_and_formats_read_off_models(tiny_dense):
    from spiking.quantize import quantize_lm

    model = SpikingLM(**TINY, timesteps=2, threshold=0.5, rngs=nnx.Rngs(0))
    tokens = tiny_dense["tokens"][:, :-1]
    sites = _sites(model, tokens)
    linears = [f"blocks.0.{n}" for n in ("wq", "wk", "wv", "wo", "w1", "w2")]
    assert all(sites[n]["binary"] == 1 for n in linears)
    formats = energy.model_formats(quantize_lm(model, weights="int8")[0])  # int8 weights read int32-exact spikes
    assert formats == energy.Formats("float32", "int8", "none", frozenset(linears), "")
    assert energy.model_formats(model) == energy.Formats()
    assert energy.model_formats(DenseLM(**TINY, dtype="bfloat16", rngs=nnx.Rngs(0))).compute == "bfloat16"
    assert energy.model_formats(tiny_dense["int8"]).quantised == frozenset(linears)
    f32 = energy.account(sites, tokens.size)
    i8 = energy.account(sites, tokens.size, formats=formats)  # the same spikes priced at int8
    acs = sum(float(sites[n]["acs_nz"]) for n in linears)
    outs = sum(float(sites[n]["outputs"]) for n in linears)
    assert f32["energy_strict_pj"] - i8["energy_strict_pj"] == pytest.approx(
        (acs * (F32_ADD - I32_ADD) - outs * F32_MUL) / tokens.size)  # spikes are integers: no input quantising
    assert f32["weight_bytes_per_token"] - i8["weight_bytes_per_token"] == pytest.approx(12 * 16 * 16 * 3 - 9 * 16 * 4)
    bits = sum(float(sites[n]["inputs"]) for n in linears) / 8 / tokens.size  # spikes read at 1 bit
    assert bits < 0.05 * f32["activation_bytes_per_token"]


def test_moe_weight_bytes_count_only_the_experts_used():
    kw = {**TINY, "ffn": "moe", "experts": 4, "top_k": 1, "capacity_factor": 4.0}  # capacity for every token
    tokens = jax.random.randint(jax.random.key(4), (2, 8), 0, 256)
    sites = _sites(DenseLM(**kw, rngs=nnx.Rngs(0)), tokens)
    out = energy.account(sites, tokens.size)
    w1, w2 = sites["blocks.0.moe.w1"], sites["blocks.0.moe.w2"]
    assert float(w1["weights"]) == tokens.size * 16 * 64 and float(w2["biases"]) == tokens.size * 16  # one expert
    d, h = 16, 64  # attention (weights, biases), the router, ONE expert (of 4), the head: float32
    assert out["weight_bytes_per_token"] == pytest.approx(4 * (4 * d * d + 4 * d + d * 4 + 2 * d * h + h + d
                                                               + d * 256 + 256))
