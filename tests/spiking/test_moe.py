"""Mixture of experts: capacity, top-k, the balance loss by hand, E = 1 equals the dense MLP, the loss-free bias,
aux losses in the task loss, routing metrics, and energy that counts only the experts a token used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spiking import energy
from spiking.lm import DenseBlock, DenseLM, SpikingLM
from spiking.moe import MoEFeedForward, capacity, load_balance_loss, route, router_z_loss

SMALL = {"width": 16, "depth": 1, "heads": 2, "seq_len": 16}


def _call(module, *args, method="__call__"):
    """``module.method(*args)`` under one jit (eager NNX calls dispatch op by op)."""
    g, s = nnx.split(module)
    return jax.jit(lambda s, *a: getattr(nnx.merge(g, s), method)(*a))(s, *args)


@pytest.mark.parametrize("top_k,factor", [(1, 1.0), (2, 1.25), (3, 0.5)])
def test_capacity_respected_and_at_most_top_k_experts(top_k, factor):
    n, e = 64, 6
    logits = 3.0 * jax.random.normal(jax.random.key(0), (n, e)) + jnp.arange(e) * 0.8  # skewed
    r = route(logits, top_k=top_k, capacity_factor=factor)
    cap = capacity(n, e, top_k, factor)
    idx, kept, pos = map(np.asarray, (r.expert_index, r.kept, r.position))
    for x in range(e):
        slots = pos[(idx == x) & kept]
        assert len(slots) <= cap and len(set(slots)) == len(slots)  # within capacity, one token per slot
    assert all(len(set(row)) == top_k for row in idx)  # k distinct experts per token
    assert kept.sum(1).max() <= top_k
    assert (~kept).sum() > 0  # the skew drops something at these factors
    np.testing.assert_allclose(np.asarray(r.gates).sum(1), 1.0 if top_k > 1 else np.asarray(r.gates)[:, 0], rtol=1e-6)


def test_dropless_keeps_everything():
    logits = jnp.zeros((10, 4)).at[:, 0].set(5.0)  # every token prefers expert 0
    r = route(logits, top_k=2, capacity_factor=0.0)
    assert bool(r.kept.all()) and capacity(10, 4, 2, 0.0) == 10


def test_load_balance_loss_by_hand_and_uniform():
    probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    index = jnp.array([[0, 1], [1, 2], [0, 2], [2, 0]])
    # assignments: expert 0 three times, 1 twice, 2 three times, of 8; mean probs (0.375, 0.3125, 0.3125)
    f, p = np.array([3, 2, 3]) / 8, np.array([1.5, 1.25, 1.25]) / 4
    assert float(load_balance_loss(probs, index, 3)) == pytest.approx(3 * (f * p).sum(), rel=1e-6)
    for k in (1, 2, 4):  # uniform routing: exactly 1 for any top_k
        e, n = 4, 8
        uniform_index = (jnp.arange(n)[:, None] + jnp.arange(k)[None]) % e
        assert float(load_balance_loss(jnp.full((n, e), 1 / e), uniform_index, e)) == pytest.approx(1.0, abs=1e-6)
    logits = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    lse = np.array([np.log(np.exp(1.0) + np.exp(2.0)), np.log(2.0)])
    assert float(router_z_loss(logits)) == pytest.approx(np.mean(lse ** 2), rel=1e-6)


def test_one_expert_top1_dropless_equals_dense_mlp():
    block = DenseBlock(16, 2, 4, rngs=nnx.Rngs(0))
    moe = MoEFeedForward(16, 64, experts=1, top_k=1, capacity_factor=0.0, rngs=nnx.Rngs(1))
    moe.w1[...] = block.w1.kernel[...][None]
    moe.b1[...] = block.w1.bias[...][None]
    moe.w2[...] = block.w2.kernel[...][None]
    moe.b2[...] = block.w2.bias[...][None]
    h = jax.random.normal(jax.random.key(2), (3, 8, 16))
    np.testing.assert_array_equal(np.asarray(_call(moe, h)), np.asarray(_call(block, h, method="mlp")))


def test_gather_and_einsum_dispatch_agree():
    kw = dict(experts=4, top_k=2, capacity_factor=0.75)
    a = MoEFeedForward(16, 32, **kw, dispatch="gather", rngs=nnx.Rngs(0))
    b = MoEFeedForward(16, 32, **kw, dispatch="einsum", rngs=nnx.Rngs(0))
    h = jax.random.normal(jax.random.key(3), (2, 8, 16))
    np.testing.assert_allclose(np.asarray(_call(a, h)), np.asarray(_call(b, h)), rtol=1e-5, atol=1e-6)


def test_gather_and_einsum_dispatch_have_the_same_gradients():
    """The gather dispatch differentiates by gathers (``gather_rows``' own VJP), with drops (capacity 0.75) and a
    leading time axis; the einsum dispatch by autodiff: both give every parameter's and the input's gradient."""
    kw = dict(experts=4, top_k=2, capacity_factor=0.75)
    h = jax.random.normal(jax.random.key(3), (2, 2, 8, 16))  # [T, B, L, D]
    grads = []
    for dispatch in ("gather", "einsum"):
        graphdef, params, rest = nnx.split(MoEFeedForward(16, 32, **kw, dispatch=dispatch, rngs=nnx.Rngs(0)),
                                           nnx.Param, ...)
        loss = lambda p, x: jnp.sum(nnx.merge(graphdef, p, rest)(x, router_input=x.mean(0)) ** 2)
        grads.append(jax.tree.leaves(jax.jit(jax.grad(loss, argnums=(0, 1)))(params, h)))
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_bias_update_moves_a_skewed_router_toward_uniform_load():
    moe = MoEFeedForward(8, 16, experts=4, top_k=1, capacity_factor=0.0, balance="bias", bias_rate=0.05,
                         rngs=nnx.Rngs(0))
    moe.router.kernel[...] = moe.router.kernel[...].at[:, 0].add(0.5)  # skewed toward expert 0
    x = jax.random.normal(jax.random.key(4), (4, 16, 8)) + 1.0
    graphdef, state = nnx.split(moe)

    @jax.jit
    def step(state):
        m = nnx.merge(graphdef, state)
        m.train()
        m(x)
        return nnx.state(m)

    @jax.jit
    def chosen(state):
        m = nnx.merge(graphdef, state)
        return route(m.router(x.reshape(-1, 8)), top_k=1, capacity_factor=0.0, bias=m.bias[...]).expert_index

    def load(state):
        return np.bincount(np.asarray(chosen(state)[:, 0]), minlength=4) / 64

    before = load(state)
    for _ in range(30):
        state = step(state)
    after = load(state)
    assert before.max() > 0.5 and after.max() < before.max() - 0.2, (before, after)
    assert np.abs(np.asarray(nnx.merge(graphdef, state).bias[...])).sum() > 0  # the bias moved, no optimizer
    assert "bias" not in nnx.state(moe, nnx.Param).keys()  # and it is not a parameter


@pytest.fixture(scope="module")
def moe_lm():
    return DenseLM(**SMALL, ffn="moe", experts=4, top_k=1, capacity_factor=0.0, rngs=nnx.Rngs(0))


def test_aux_losses_reach_the_task_loss_and_routing_metrics(moe_lm):
    from spiking.registry import TextConfig, measure_routing, text_task

    task = text_task(TextConfig(seq_len=16, eval_windows=4), key=jax.random.key(0))
    batch = jax.jit(lambda d, k: task.sample(d, k, 4))(task.train_data, jax.random.key(1))
    graphdef, state = nnx.split(moe_lm)
    loss, metrics = jax.jit(lambda s, b: task.loss(nnx.merge(graphdef, s), b, None, True))(state, batch)
    assert float(metrics["aux_loss"]) > 0
    assert float(loss) == pytest.approx(float(metrics["loss"]) + float(metrics["aux_loss"]), rel=1e-6)
    assert float(metrics["aux_loss"]) == pytest.approx(1e-2 * float(metrics["balance_loss"])
                                                       + 1e-3 * float(metrics["z_loss"]), rel=1e-5)
    out = measure_routing(moe_lm, task.eval_batches(task.eval_data, 4))
    loads = [out[f"moe/blocks.0.moe/load/{e}"] for e in range(4)]
    assert sum(loads) == pytest.approx(1.0) and 0 < out["moe_load_entropy"] <= 1.0
    assert out["moe_max_load"] == pytest.approx(max(loads) / 0.25) and out["moe_dropped"] == 0.0
    expert = 2 * 16 * 64 + 64 + 16
    assert out["params_total"] - out["params_active_per_token"] == 3 * expert


def test_energy_counts_only_the_experts_a_token_used(moe_lm):
    tokens = jax.random.randint(jax.random.key(5), (2, 16), 0, 256)

    def sites(model):
        g, s = nnx.split(model)
        return jax.device_get(jax.jit(lambda s: energy.capture_sites(nnx.merge(g, s), tokens))(s))

    moe, dense = sites(moe_lm), sites(DenseLM(**SMALL, rngs=nnx.Rngs(0)))
    for name in ("w1", "w2"):  # top-1 of experts shaped like the dense MLP: the same work per token
        assert float(moe[f"blocks.0.moe.{name}"]["macs"]) == pytest.approx(float(dense[f"blocks.0.{name}"]["macs"]))
    assert float(moe["blocks.0.moe.router"]["macs"]) == tokens.size * 16 * 4


def test_spiking_moe_experts_read_spikes():
    model = SpikingLM(**SMALL, timesteps=2, threshold=0.5, ffn="moe", experts=2, top_k=1, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(6), (2, 16), 0, 256)
    g, s = nnx.split(model)
    out = jax.device_get(jax.jit(lambda s: energy.capture_sites(nnx.merge(g, s), tokens))(s))
    assert out["blocks.0.moe.w1"]["binary"] == 1 and out["blocks.0.moe.w2"]["binary"] == 1
    assert out["blocks.0.moe.router"]["binary"] == 0  # the router reads the float LayerNorm output
    assert 0 < out["blocks.0.moe.w1"]["rate_nnz"] / out["blocks.0.moe.w1"]["rate_size"] < 1


def test_active_params_count_what_a_token_uses():
    """Kaplan's N for 6ND: a dense LM's parameters without the embedding tables, by hand; a top-2 MoE of 8 experts
    of hidden 2D: that plus the router, with each block's MLP counted for two experts instead of eight."""
    from spiking.registry import active_params

    d, depth, seq = 16, 2, 8
    dense = DenseLM(width=d, depth=depth, heads=2, seq_len=seq, mlp_ratio=4, rngs=nnx.Rngs(0))
    block = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d  # Q/K/V/O, MLP, two LayerNorms
    assert active_params(dense) == depth * block + 2 * d + d * 256 + 256  # + final LayerNorm and head
    moe = DenseLM(width=d, depth=depth, heads=2, seq_len=seq, mlp_ratio=2, ffn="moe", experts=8, top_k=2,
                  rngs=nnx.Rngs(0))
    expert = d * 2 * d + 2 * d + 2 * d * d + d
    assert active_params(moe) == active_params(dense) + depth * (2 * expert - (8 * d * d + 5 * d) + d * 8)
