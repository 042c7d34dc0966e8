"""Quantum layer: analytic values, batching, equal-parameter classical twin; the hybrid MLP learns digits in the runner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from quantum_opt.circuits import make_circuit
from quantum_opt.layers import ClassicalTwinLayer, HybridMLP, QuantumLayer, twin_shapes


def _jitted(layer):
    graphdef, state = nnx.split(layer)
    return jax.jit(lambda w, x: nnx.merge(graphdef, state)(x) if w is None else
                   nnx.merge(graphdef, nnx.State({"weights": nnx.Param(w)}))(x)), state["weights"][...]


def test_quantum_layer_values_and_batching():
    x = jax.random.uniform(jax.random.key(1), (5, 3), minval=-np.pi, maxval=np.pi)
    f, w = _jitted(QuantumLayer(3, 2, "reuploading", rngs=nnx.Rngs(0)))
    out = f(w, x)
    assert out.shape == (5, 3) and bool(jnp.all(jnp.abs(out) <= 1.0 + 1e-6))
    circuit = make_circuit(3, 2, "reuploading")
    np.testing.assert_allclose(np.asarray(out[2]), np.asarray(jax.jit(circuit.expval)(w, x[2])), atol=1e-6)
    # Rot(0) = identity and CZ on |000> leave <Z> = 1 on every wire
    np.testing.assert_allclose(np.asarray(f(jnp.zeros_like(w), x)), 1.0, atol=1e-6)
    f, w = _jitted(QuantumLayer(2, 1, "hardware_efficient", rngs=nnx.Rngs(0)))
    c = np.cos(np.asarray(x[:, :2]))  # zero weights: RY(x) encoding, then CNOT(0, 1): <Z0> = cos x0, <Z1> = cos x0 cos x1
    np.testing.assert_allclose(np.asarray(f(jnp.zeros_like(w), x[:, :2])), np.stack([c[:, 0], c[:, 0] * c[:, 1]], 1),
                               atol=1e-5)


@pytest.mark.parametrize("n_qubits,n_layers,ansatz", [(4, 2, "reuploading"), (3, 2, "strongly_entangling")])
def test_twin_has_equal_parameter_count(n_qubits, n_layers, ansatz):
    count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
    q = HybridMLP(16, 10, kind="quantum", n_qubits=n_qubits, n_layers=n_layers, ansatz=ansatz, rngs=nnx.Rngs(0))
    c = HybridMLP(16, 10, kind="classical", n_qubits=n_qubits, n_layers=n_layers, ansatz=ansatz, rngs=nnx.Rngs(0))
    assert count(q) == count(c) and count(q.core) == q.core.n_params == c.core.n_params
    h, si, so = twin_shapes(n_qubits, n_qubits, q.core.n_params)
    assert h >= 1 and si + so <= 2 * n_qubits


def test_twin_every_parameter_is_used():
    twin = ClassicalTwinLayer(4, 4, 48, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(twin)
    x = jax.random.normal(jax.random.key(0), (8, 4))
    grad = jax.grad(lambda s: jnp.sum(jnp.sin(nnx.merge(graphdef, s)(x))))(state)
    assert bool(jnp.all(grad["theta"][...] != 0))


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        HybridMLP(16, 10, kind="analog", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_params"):
        ClassicalTwinLayer(4, 4, 5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="x"):
        QuantumLayer(2, 1, rngs=nnx.Rngs(0))(jnp.ones((2, 2, 2)))


@pytest.mark.parametrize("model", ["quantum_mlp", "classical_twin_mlp"])
def test_hybrid_mlp_learns_digits_in_the_runner(model, tmp_path):
    from experiments import from_dict, run

    config = from_dict({
        "seed": 0, "data": {"name": "digits", "downscale": 2},
        "model": {"name": model, "n_qubits": 4, "n_layers": 2},
        "optimizer": {"name": "adam", "learning_rate": 0.02, "schedule": "constant"},
        "train": {"steps": 150, "batch_size": 32, "eval_every": 150, "log_every": 150, "steps_per_call": 50},
    })
    result = run(config, tmp_path / model, quiet=True)
    acc = result.eval["accuracy"].iloc[-1]
    assert acc > 0.35, acc  # chance: 0.10
