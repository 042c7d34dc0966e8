"""SpikingDense / Neuron: folded matmul = per-step computation, snntorch parity, state access, learning on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from spiking import lif
from spiking.layers import Neuron, SpikingDense, fold_time

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")


def _spike_input(key, shape, p=0.3):
    return (jax.random.uniform(key, shape) < p).astype(jnp.float32)


def test_folded_matmul_equals_per_step_computation():
    layer = SpikingDense(12, 9, beta=0.8, threshold=0.4, rngs=nnx.Rngs(0))
    x = _spike_input(jax.random.PRNGKey(1), (15, 4, 12))
    spikes, state = layer(x, return_state=True)
    k, b = np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])
    cur = np.stack([np.asarray(x[t]) @ k + b for t in range(x.shape[0])])
    np.testing.assert_allclose(np.asarray(state["currents"]), cur, rtol=1e-5, atol=1e-6)
    s_ref, m_ref = lif(jnp.asarray(cur), beta=0.8, threshold=0.4)
    np.testing.assert_array_equal(np.asarray(spikes), np.asarray(s_ref))
    np.testing.assert_allclose(np.asarray(state["membranes"]), np.asarray(m_ref), atol=1e-5)
    assert 0 < float(spikes.mean()) < 1
    # extra leading axes ([T, B, L, N]) fold the same way
    x4 = _spike_input(jax.random.PRNGKey(2), (3, 2, 5, 12))
    np.testing.assert_allclose(np.asarray(fold_time(x4, k, b)), np.asarray(x4) @ k + b, rtol=1e-5, atol=1e-6)


def test_spiking_dense_stack_equals_snntorch():
    l1 = SpikingDense(10, 16, beta=0.85, threshold=0.5, rngs=nnx.Rngs(3))
    l2 = SpikingDense(16, 6, beta=0.7, threshold=0.3, reset="zero", rngs=nnx.Rngs(4))
    x = _spike_input(jax.random.PRNGKey(5), (25, 3, 10), 0.4)
    out = l2(l1(x))
    fcs = []
    for l in (l1, l2):
        fc = torch.nn.Linear(l.in_features, l.out_features)
        with torch.no_grad():
            fc.weight.copy_(torch.tensor(np.asarray(l.kernel[...]).T))
            fc.bias.copy_(torch.tensor(np.asarray(l.bias[...])))
        fcs.append(fc)
    lifs = [snn.Leaky(beta=0.85, threshold=0.5), snn.Leaky(beta=0.7, threshold=0.3, reset_mechanism="zero")]
    m1, m2 = lifs[0].reset_mem(), lifs[1].reset_mem()
    ref = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            s1, m1 = lifs[0](fcs[0](torch.tensor(np.asarray(x[t]))), m1)
            s2, m2 = lifs[1](fcs[1](s1), m2)
            ref.append(s2.numpy())
    assert 0 < float(out.mean()) < 1
    np.testing.assert_array_equal(np.asarray(out), np.stack(ref))


def test_state_access_and_learned_parameters():
    layer = SpikingDense(8, 5, learn_beta=True, learn_threshold=True, rngs=nnx.Rngs(0))
    x = _spike_input(jax.random.PRNGKey(1), (6, 2, 8))
    spikes, state = layer(x, return_state=True)
    assert set(state) == {"inputs", "currents", "membranes", "spikes"}
    assert state["membranes"].shape == (6, 2, 5) and state["inputs"] is x
    np.testing.assert_array_equal(np.asarray(state["spikes"]), np.asarray(spikes))
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    assert params["neuron"]["beta"][...].shape == (5,) and params["neuron"]["threshold"][...].shape == (5,)

    def loss(p):
        return jnp.sum(nnx.merge(graphdef, p, rest)(x, return_state=True)[1]["membranes"] ** 2)
    grads = jax.grad(loss)(params)
    assert float(jnp.abs(grads["neuron"]["beta"][...]).sum()) > 0


@pytest.mark.parametrize("name", ["lif", "if", "alif", "plif"])
def test_neuron_module_runs_every_neuron(name):
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 2, 4)) + 0.5
    s, st = Neuron(name, features=4)(x, return_state=True)
    assert s.shape == x.shape and set(np.unique(np.asarray(s))) <= {0.0, 1.0} and float(s.sum()) > 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="neuron='lifx'"):
        Neuron("lifx")
    with pytest.raises(ValueError, match="features=None"):
        Neuron("lif", learn_beta=True)
    with pytest.raises(ValueError, match="in_features=0"):
        SpikingDense(0, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"must be \[T, B, \.\.\., 4\]"):
        SpikingDense(4, 3, rngs=nnx.Rngs(0))(jnp.zeros((2, 3, 5)))


def test_learns_digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target
    xtr, ytr, xte, yte = jnp.asarray(x[:1200]), jnp.asarray(y[:1200]), x[1200:], y[1200:]
    T = 4

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = SpikingDense(64, 128, beta=0.9, threshold=0.5, rngs=rngs)
            self.out = nnx.Linear(128, 10, rngs=rngs)

        def __call__(self, x):  # x [B, 64] -> logits [B, 10] from the mean spike count
            s = self.hidden(jnp.broadcast_to(x, (T, *x.shape)))
            return self.out(s.mean(0))

    model = Net(nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    def loss_fn(p, xb, yb):
        logits = nnx.merge(graphdef, p, rest)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, o, key):
        idx = jax.random.randint(key, (128,), 0, xtr.shape[0])
        g = jax.grad(loss_fn)(p, xtr[idx], ytr[idx])
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    for k in jax.random.split(jax.random.PRNGKey(1), 300):
        params, opt = step(params, opt, k)
    acc = float((nnx.merge(graphdef, params, rest)(xte).argmax(-1) == yte).mean())
    assert acc > 0.85, acc
