"""NIR export/import: snntorch's NIR import runs our exported graph to the same spikes; JAX round trip exact."""

import jax
import jax.numpy as jnp
import nir
import numpy as np
import pytest
from flax import nnx

from spiking.layers import Neuron, SpikingDense
from spiking.nir import DT, export_nir, import_nir


def _x(shape=(30, 3, 10), p=0.4, seed=0):
    return (jax.random.uniform(jax.random.PRNGKey(seed), shape) < p).astype(jnp.float32)


def _nir_stack():
    beta = np.linspace(0.6, 0.95, 16).astype(np.float32)
    l1 = SpikingDense(10, 16, beta=beta, threshold=0.5, reset="zero", reset_delay=False, rngs=nnx.Rngs(1))
    l2 = SpikingDense(16, 6, beta=0.8, threshold=0.3, reset="zero", reset_delay=False, rngs=nnx.Rngs(2))
    return [l1, l2]


def test_export_maps_beta_to_tau_as_snntorch():
    layers = _nir_stack()
    g = export_nir(layers)
    assert [type(g.nodes[k]).__name__ for k in ("input", "fc0", "lif0", "fc1", "lif1", "output")] == \
        ["Input", "Affine", "LIF", "Affine", "LIF", "Output"]
    beta = np.linspace(0.6, 0.95, 16).astype(np.float32)
    np.testing.assert_allclose(g.nodes["lif0"].tau, DT / (1 - beta), rtol=1e-6)
    np.testing.assert_allclose(g.nodes["lif0"].r * DT / g.nodes["lif0"].tau, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(g.nodes["fc0"].weight, np.asarray(layers[0].kernel[...]).T)
    np.testing.assert_array_equal(g.nodes["lif1"].v_threshold, np.full(6, 0.3, np.float32))


def test_snntorch_nir_import_gives_the_same_spikes():
    torch = pytest.importorskip("torch")
    pytest.importorskip("nirtorch")  # snntorch.import_nir needs it
    from snntorch.import_nir import import_from_nir
    layers = _nir_stack()
    x = _x()
    ours = np.asarray(layers[1](layers[0](x)))
    net = import_from_nir(export_nir(layers))
    with torch.no_grad():
        ref = np.stack([net(torch.tensor(np.asarray(x[t])))[0].numpy() for t in range(x.shape[0])])
    assert 0.05 < ours.mean() < 0.6
    np.testing.assert_array_equal(ref, ours)


@pytest.mark.parametrize("reset,reset_delay", [("subtract", True), ("zero", False), ("none", True)])
def test_round_trip_in_jax_is_exact(reset, reset_delay, tmp_path):
    layers = [SpikingDense(10, 12, beta=0.9, threshold=0.4, reset=reset, reset_delay=reset_delay, rngs=nnx.Rngs(0)),
              nnx.Linear(12, 8, rngs=nnx.Rngs(1)),
              Neuron("if", threshold=0.7, reset=reset, reset_delay=reset_delay),
              SpikingDense(8, 5, neuron="if", threshold=0.2, reset=reset, reset_delay=reset_delay,
                           use_bias=False, rngs=nnx.Rngs(2))]
    x = _x()
    y = x
    for layer in layers:
        y = layer(y)
    g = export_nir(layers, strict=False)
    path = str(tmp_path / "net.nir")
    nir.write(path, g)
    back = import_nir(path)
    # a Linear followed by a neuron node comes back as one SpikingDense
    assert [type(m).__name__ for m in back.layers] == ["SpikingDense"] * 3
    assert back.layers[0].neuron.reset == reset and back.layers[0].neuron.reset_delay == reset_delay
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(y))
    assert float(y.sum()) > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="reset='subtract'.*no NIR equivalent"):
        export_nir([SpikingDense(4, 3, rngs=nnx.Rngs(0))])
    with pytest.raises(ValueError, match="allowed: lif, if"):
        export_nir([SpikingDense(4, 3, neuron="alif", rngs=nnx.Rngs(0))], strict=False)
    with pytest.raises(ValueError, match="has no NIR export"):
        export_nir([nnx.LayerNorm(4, rngs=nnx.Rngs(0))])
    with pytest.raises(ValueError, match="expects 5 inputs"):
        export_nir([nnx.Linear(4, 3, rngs=nnx.Rngs(0)), nnx.Linear(5, 2, rngs=nnx.Rngs(0))])
    g = nir.NIRGraph.from_list(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
                               nir.LIF(tau=np.full(3, 0.01), r=np.full(3, 100.0), v_leak=np.ones(3),
                                       v_threshold=np.ones(3)))
    with pytest.raises(ValueError, match="v_leak"):
        import_nir(g, dt=DT)
