"""qng / qng_adam / spsa from the registry: the metric from the model's quantum layer, PennyLane's QNGOptimizer's
own steps, the partition into quantum and classical parameters, the runner's counters, config errors."""

import importlib
import typing

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pennylane as qml
import pytest
from flax import nnx
from pennylane import numpy as pnp

from experiments import ConfigError, build_optimizer, from_dict, run
from quantum_opt import qng, registry, samplers, tasks
from quantum_opt.circuits import ANSATZE, DEVICES, make_circuit
from quantum_opt.layers import HybridMLP, QuantumLayer, model_metric_fn, param_labels, probe_inputs

T = importlib.import_module("quantum_opt.transforms.tunneling")


def slot_major(params, wires, inputs=None):
    """hardware_efficient applied slot by slot: RY(x) encoding; per layer RY on every wire, then RZ on every wire,
    then a CNOT ladder. PennyLane's greedy parametrised layers are then the commuting blocks of Circuit.blocks."""
    wires = list(wires)
    if inputs is not None:
        qml.AngleEmbedding(inputs, wires=wires[: inputs.shape[-1]], rotation="Y")
    for layer in range(params.shape[0]):
        for g, gate in enumerate((qml.RY, qml.RZ)):
            for q, w in enumerate(wires):
                gate(params[layer, q, g], wires=w)
        for q in range(len(wires) - 1):
            qml.CNOT(wires=[wires[q], wires[q + 1]])


slot_major.param_shape = lambda n_qubits, n_layers: (n_layers, n_qubits, 2)
slot_major.gates_per_wire = 2


def test_qng_takes_pennylanes_steps():
    # PennyLane's own QNGOptimizer (NumPy/autograd interface, which works on every jax) against the jitted qng with
    # the quantum layer's metric from the JAX simulator: block-diagonal (PennyLane's default), same lam, same rate.
    n, L, lr, lam, steps = 3, 2, 0.1, 0.01, 6
    x0 = np.array([0.4, -1.1, 2.0])  # the layer's input, fixed (not trainable)
    coeffs = np.array([1.0, -0.6, 0.3])  # cost = coeffs · <Z> of the layer's output
    w0 = np.random.default_rng(0).uniform(-np.pi, np.pi, (L, n, 2))

    @qml.qnode(qml.device("default.qubit", wires=n), interface="autograd")
    def cost(w):
        slot_major(w, range(n), inputs=x0)
        return qml.expval(qml.Hamiltonian(coeffs, [qml.PauliZ(i) for i in range(n)]))

    opt = qml.QNGOptimizer(stepsize=lr, approx="block-diag", lam=lam)
    w, theirs = pnp.array(w0, requires_grad=True), []
    for _ in range(steps):
        w = opt.step(cost, w)
        theirs.append(np.asarray(w))
    their_metric = np.asarray(qml.metric_tensor(cost, approx="block-diag")(pnp.array(w0, requires_grad=True)))

    with jax.enable_x64(True):
        layer = QuantumLayer(n, L, slot_major, rngs=nnx.Rngs(0))
        graphdef, _ = nnx.split(layer)
        x = jnp.asarray(x0)[None]
        tx = qng(lr, metric_fn=model_metric_fn(layer, "block-diag"), metric_data=(x,), regularization=lam)

        def loss(p):
            return jnp.dot(jnp.asarray(coeffs), nnx.merge(graphdef, p)(x)[0])

        @jax.jit
        def run(p):
            def body(carry, _):
                p, s = carry
                u, s = tx.update(jax.grad(loss)(p), s, p)
                p = optax.apply_updates(p, u)
                return (p, s), p["weights"][...]

            return jax.lax.scan(body, (p, tx.init(p)), None, steps), layer.metric(p["weights"][...], x, "block-diag")

        ((_, state), ours), metric = run(nnx.State({"weights": nnx.Param(jnp.asarray(w0))}))
    np.testing.assert_allclose(metric, their_metric.reshape(metric.shape), atol=1e-10)
    diff = np.abs(np.asarray(ours) - np.stack(theirs)).max()
    print(f"max |step difference| against PennyLane: {diff:.1e}")
    assert diff < 1e-13, diff  # measured: ~1e-15
    assert np.abs(np.stack(theirs)[-1] - w0).max() > 0.05  # they really moved
    assert int(state.metric_evals) == steps and int(state.circuit_evals) == steps


def test_blocks_are_the_commuting_gate_layers():
    # hardware_efficient [L=2, n=2, 2]: flat index 4l + 2q + g; one block per (layer, gate) across the wires
    assert make_circuit(2, 2, "hardware_efficient").blocks == [[0, 2], [1, 3], [4, 6], [5, 7]]
    # reuploading [1, 2, 6]: θ[..., k] and w[..., k] set the same gate k
    assert make_circuit(2, 1, "reuploading").blocks == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    custom = lambda params, wires, inputs=None: None
    custom.param_shape = lambda n_qubits, n_layers: (n_layers, n_qubits)
    assert make_circuit(2, 2, custom).blocks == [[0, 1], [2, 3]]  # no gates_per_wire: one block per layer


@pytest.fixture(scope="module")
def small_hybrid():
    return HybridMLP(4, 3, n_qubits=2, n_layers=1, ansatz="reuploading", rngs=nnx.Rngs(0))


def test_qng_adam_partitions_the_model(small_hybrid):
    model = small_hybrid
    labels = param_labels(model)
    assert labels["core"]["weights"].get_value() == "quantum" and labels["encode"]["kernel"].get_value() == "rest"
    cfg = {"regularization": 0.01, "probe_inputs": 4, "qng_lr_scale": 2.0}
    key = jax.random.key(3)
    tx = build_optimizer("qng_adam", cfg, learning_rate=0.05, key=key, model=model)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x, y = jax.random.uniform(jax.random.key(1), (6, 4)), jnp.arange(6) % 3

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(x), y).mean()

    (inputs,) = probe_inputs(model, jax.random.fold_in(key, 0), 4)

    @jax.jit
    def step(p):
        grads = jax.grad(loss)(p)
        updates, state = tx.update(grads, tx.init(p), p, value_fn=loss)
        return grads, updates, state, model.core.metric(p["core"]["weights"][...], inputs, "block-diag")

    grads, updates, state, g = step(params)
    # the quantum weights: -2 * 0.05 (g + 0.01 I)^-1 grad, g the layer's block-diagonal metric over 4 probe inputs
    g, gw = np.asarray(g, np.float64), np.asarray(grads["core"]["weights"][...], np.float64).reshape(-1)
    expected = -0.1 * np.linalg.solve(g + 0.01 * np.eye(g.shape[0]), gw)
    np.testing.assert_allclose(np.asarray(updates["core"]["weights"][...]).reshape(-1), expected, rtol=2e-3,
                               atol=1e-6)
    ids = np.zeros(g.shape[0], int)
    for b, group in enumerate(model.core.circuit.blocks):  # reuploading [1, 2, 6]: 3 blocks of 4 (θ and w of a gate)
        ids[group] = b
    assert len(model.core.circuit.blocks) == 3 and np.abs(g[ids[:, None] != ids[None, :]]).max() == 0
    assert np.abs(g[ids[:, None] == ids[None, :]]).max() > 0.05
    # everything else: adam at the unscaled rate, as if the quantum weights were not there
    adam = optax.adam(0.05)
    ref, _ = adam.update(grads["head"]["kernel"][...], adam.init(grads["head"]["kernel"][...]))
    np.testing.assert_allclose(updates["head"]["kernel"][...], ref, rtol=1e-6)
    quantum_state = state.inner_states["quantum"].inner_state
    assert (int(quantum_state.metric_evals), int(quantum_state.circuit_evals)) == (1, 4)
    # the probe inputs ride in the state, not baked into the program (seeds of a sweep share one compile)
    np.testing.assert_array_equal(quantum_state.metric_data[0], inputs)


def _config(optimizer, model=(), **data):
    return from_dict({
        "seed": 0, "data": {"name": "digits", "downscale": 4, **data},
        "model": {"name": "quantum_mlp", "n_qubits": 2, "n_layers": 1, **dict(model)},
        "optimizer": {"learning_rate": 0.05, "schedule": "constant", **optimizer},
        "train": {"steps": 4, "batch_size": 8, "eval_every": 4, "log_every": 4, "steps_per_call": 2,
                  "max_eval_batches": 1, "eval_batch_size": 32},
    })


def test_qng_adam_and_spsa_in_the_runner(tmp_path):
    final = run(_config({"name": "qng_adam", "probe_inputs": 3}), tmp_path / "qng", quiet=True).summary["final"]
    assert final["metric_evals"] == 4 and final["circuit_evals"] == 12  # 1 metric of 3 probe circuits a step
    # spsa: its key from the run's seed (same seed, same run; another seed, another run), 2 loss evals a step
    landscape = {"seed": 0, "data": {"name": "landscape", "dim": 2}, "model": {"name": "point"},
                 "optimizer": {"name": "spsa", "learning_rate": 0.05, "schedule": "constant"},
                 "train": {"steps": 6, "batch_size": 1, "eval_every": 6, "log_every": 6, "steps_per_call": 6}}
    runs = [run(from_dict({**landscape, "seed": s}), tmp_path / f"spsa{i}", quiet=True).summary["final"]
            for i, s in enumerate((0, 0, 1))]
    assert runs[0]["loss_evals"] == 12 and runs[0]["loss"] == runs[1]["loss"] != runs[2]["loss"]


def test_bad_config(small_hybrid):
    twin = HybridMLP(4, 3, kind="classical", n_qubits=2, n_layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="optimizer.name: 'qng_adam' is not allowed for HybridMLP"):
        build_optimizer("qng_adam", {}, learning_rate=0.1, key=jax.random.key(0), model=twin)
    with pytest.raises(ConfigError, match="needs the model"):
        build_optimizer("qng", {}, learning_rate=0.1, key=jax.random.key(0))
    bad = [("metric", "kfac", "optimizer.metric: 'kfac' is not allowed; use one of 'block-diag'"),
           ("probe_inputs", 0, "optimizer.probe_inputs: 0 is not allowed; use an integer in 1..4096"),
           ("rest", "nadam", "optimizer.rest: 'nadam' is not allowed; use a registered optimizer: "),
           ("regularization", float("nan"), "optimizer.regularization: nan is not allowed")]
    for field, value, message in bad:  # the config loader reports the registered dataclass's check as one line
        with pytest.raises(ConfigError, match=message):
            _config({"name": "qng_adam", field: value})
    with pytest.raises(ConfigError, match="optimizer.perturbation: 0.0 is not allowed"):
        _config({"name": "spsa", "perturbation": 0.0})
    with pytest.raises(ConfigError, match="optimizer.weight_decay"):
        build_optimizer("spsa", {}, learning_rate=0.1, weight_decay=0.1, key=jax.random.key(0))
    with pytest.raises(ConfigError, match="model.ansatz: 'qaoa' is not allowed"):
        _config({"name": "adam"}, model={"ansatz": "qaoa"})
    with pytest.raises(ConfigError, match="data.dim: 0 is not allowed"):
        from_dict({"seed": 0, "data": {"name": "landscape", "dim": 0}, "model": {"name": "point"},
                   "optimizer": {"name": "sgd", "learning_rate": 0.1}, "train": {"steps": 1, "batch_size": 1}})
    with pytest.raises(ConfigError, match=r"optimizer.step_sizes: \[1.0, 2.0, 3.0\] is not allowed"):
        _config({"name": "tunneling", "step_sizes": [1.0, 2.0, 3.0]})


def test_literal_choices_are_the_cores():
    choices = lambda cls, field: set(typing.get_args(typing.get_type_hints(cls)[field]))
    assert choices(registry.TunnelingConfig, "sampler") == set(samplers.SAMPLERS)
    assert choices(registry.TunnelingConfig, "rule") == set(T.RULES)
    assert choices(registry.TunnelingConfig, "directions") == set(T.DIRECTIONS)
    assert choices(registry.TunnelingConfig, "accept") == set(T.ACCEPT)
    assert choices(registry.HybridConfig, "ansatz") == set(ANSATZE)
    assert choices(registry.HybridConfig, "device") == set(DEVICES)
    assert choices(registry.LandscapeConfig, "kind") == set(tasks.LANDSCAPES)
