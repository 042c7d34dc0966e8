"""LIF / IF / ALIF / PLIF / leaky integrator: parity with snntorch.Leaky, fast path = autodiff, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiking import alif, if_neuron, leaky_integrator, lif, plif

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

T, B, N = 40, 3, 16


def _data(seed, scalar=False):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(T, B, N)) * 1.3 + 0.3).astype(np.float32)
    if scalar:
        return x, np.float32(rng.uniform(0.2, 1.0)), np.float32(rng.uniform(0.5, 1.5))
    beta = rng.uniform(0.2, 1.0, size=N).astype(np.float32)
    beta[0] = 1.3  # snntorch clamps beta to [0, 1]; so must we
    thr = rng.uniform(0.5, 1.5, size=N).astype(np.float32)
    return x, beta, thr


def _snntorch_run(neuron, x, weights=None):
    """Run a snntorch neuron step by step; returns spikes, membranes and (optionally) d(loss)/d(input)."""
    xt = torch.tensor(x, requires_grad=True)
    mem = torch.zeros(x.shape[1:])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        s, mem = neuron(xt[t], mem)
        spikes.append(s)
        mems.append(mem)
    s, m = torch.stack(spikes), torch.stack(mems)
    grad = None
    if weights is not None:
        ws, wm = (torch.tensor(w) for w in weights)
        (s * ws).sum().add((m * wm).sum()).backward()
        grad = xt.grad.numpy()
    return s.detach().numpy(), m.detach().numpy(), grad


def _loss_weights(seed):
    rng = np.random.default_rng(seed + 100)
    return rng.normal(size=(T, B, N)).astype(np.float32), rng.normal(size=(T, B, N)).astype(np.float32) * 0.1


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("reset_delay", [True, False])
def test_lif_equals_snntorch_leaky(reset, reset_delay):
    scalar = reset == "none"  # scalar beta and threshold on one mode, per-neuron on the others
    x, beta, thr = _data(len(reset) + 10 * reset_delay, scalar)
    weights = _loss_weights(1)
    ref = snn.Leaky(beta=torch.tensor(beta), threshold=torch.tensor(thr), reset_mechanism=reset,
                    reset_delay=reset_delay)
    s_ref, m_ref, g_ref = _snntorch_run(ref, x, weights)
    s, m = jax.jit(lambda x: lif(x, beta=beta, threshold=thr, reset=reset, reset_delay=reset_delay))(x)
    assert 0.05 < s_ref.mean() < 0.7  # the trace exercises both spiking and resets
    np.testing.assert_array_equal(np.asarray(s), s_ref)
    np.testing.assert_allclose(np.asarray(m), m_ref, atol=1e-5, rtol=0)

    def loss(x):
        s, m = lif(x, beta=beta, threshold=thr, reset=reset, reset_delay=reset_delay)
        return jnp.sum(s * weights[0]) + jnp.sum(m * weights[1])
    g = jax.jit(jax.grad(loss))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), g_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_if_equals_snntorch_leaky_with_beta_one(reset):
    x, _, thr = _data(7)
    ref = snn.Leaky(beta=1.0, threshold=torch.tensor(thr), reset_mechanism=reset)
    s_ref, m_ref, _ = _snntorch_run(ref, x)
    s, m = if_neuron(jnp.asarray(x), threshold=thr, reset=reset)
    np.testing.assert_array_equal(np.asarray(s), s_ref)
    np.testing.assert_allclose(np.asarray(m), m_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("reset,surrogate", [("subtract", "atan"), ("zero", "fast_sigmoid"), ("none", "atan")])
def test_fast_custom_vjp_equals_autodiff_of_scan(reset, surrogate):
    x, beta, thr = _data(3)
    beta[0] = 0.9
    u0 = np.random.default_rng(4).normal(size=(B, N)).astype(np.float32)
    ws, wm = _loss_weights(2)

    def loss(impl):
        def f(x, beta, thr, u0):
            s, m = lif(x, beta=beta, threshold=thr, reset=reset, surrogate=surrogate, init_membrane=u0, impl=impl)
            return jnp.sum(s * ws) + jnp.sum(jnp.sin(m) * wm)
        return f

    args = tuple(jnp.asarray(a) for a in (x, beta, thr, u0))
    v_fast, g_fast = jax.jit(jax.value_and_grad(loss("fast"), argnums=(0, 1, 2, 3)))(*args)
    v_scan, g_scan = jax.jit(jax.value_and_grad(loss("scan"), argnums=(0, 1, 2, 3)))(*args)
    np.testing.assert_allclose(float(v_fast), float(v_scan), rtol=1e-6)
    for a, b in zip(g_fast, g_scan):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_leaky_integrator_equals_sequential_recurrence():
    x, beta, _ = _data(5)
    beta = np.clip(beta, 0, 1)
    init = np.random.default_rng(6).normal(size=(B, N)).astype(np.float32)
    u, ref = init, []
    for t in range(T):
        u = beta * u + x[t]
        ref.append(u)
    out = leaky_integrator(jnp.asarray(x), beta=beta, init=init)
    np.testing.assert_allclose(np.asarray(out), np.stack(ref), rtol=1e-5, atol=1e-5)
    # and equals lif without reset and an unreachable threshold
    _, m = lif(jnp.asarray(x), beta=beta, threshold=1e9, reset="none", init_membrane=init)
    np.testing.assert_allclose(np.asarray(out), np.asarray(m), rtol=1e-5, atol=1e-5)


def test_alif_threshold_adapts():
    x = jnp.full((60, 1, 4), 0.6, jnp.float32)
    s_lif, m_lif = lif(x, beta=0.9, threshold=1.0, unroll=1)
    s0, m0 = alif(x, beta=0.9, threshold=1.0, adapt=0.0, unroll=1)
    np.testing.assert_array_equal(np.asarray(s0), np.asarray(s_lif))
    np.testing.assert_allclose(np.asarray(m0), np.asarray(m_lif), atol=1e-6)
    s_ad, _ = alif(x, beta=0.9, threshold=1.0, adapt=1.8, rho=0.95, unroll=1)
    assert 0 < float(s_ad.sum()) < float(s_lif.sum())  # a rising threshold means fewer spikes
    g = jax.jit(jax.grad(lambda a: alif(x, beta=0.9, adapt=a, unroll=1)[0].sum()))(1.8)
    assert float(g) < 0  # more adaptation, fewer spikes: the gradient flows through the threshold


def test_plif_learns_beta_through_sigmoid():
    x, _, thr = _data(8)
    w = np.linspace(-2, 2, N).astype(np.float32)
    s, m = plif(jnp.asarray(x), w=w, threshold=thr, decay_input=False)
    s_ref, m_ref = lif(jnp.asarray(x), beta=jax.nn.sigmoid(w), threshold=thr)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s_ref))
    g = jax.grad(lambda w: plif(jnp.asarray(x), w=w, threshold=thr)[1].sum())(jnp.asarray(w))
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).min()) > 0


def test_bad_arguments_raise():
    x = jnp.zeros((5, 2, 3))
    with pytest.raises(ValueError, match="reset='soft'.*subtract, zero, none"):
        lif(x, beta=0.9, reset="soft")
    with pytest.raises(ValueError, match="beta of shape"):
        lif(x, beta=jnp.ones(4))
    with pytest.raises(ValueError, match="surrogate="):
        lif(x, beta=0.9, surrogate="nope")
    with pytest.raises(ValueError, match="impl='fast'"):
        lif(x, beta=0.9, reset_delay=False, impl="fast")
