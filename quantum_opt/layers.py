"""Quantum layers for Flax NNX models, and classical twins with the same number of parameters.

``QuantumLayer``: ``[B, d] -> [B, n_qubits]`` Pauli-Z expectations of a parametrised circuit (``quantum_opt.circuits``:
a PennyLane ansatz compiled onto the JAX simulator, vmapped over the batch) whose weights are an ``nnx.Param``. The
inputs are angles: with the ``reuploading`` ansatz (Pérez-Salinas et al., "Data re-uploading for a universal quantum
classifier", Quantum 4, 226, 2020) they are encoded again in every layer; with ``hardware_efficient`` /
``strongly_entangling`` they are RY-encoded once before the first layer (Schuld et al., PRA 101, 032308, 2020).

``ClassicalTwinLayer``: ``[B, d] -> [B, n_out]``, a one-hidden-layer tanh MLP whose parameters are ONE flat
``nnx.Param`` of exactly ``n_params`` entries (the quantum layer's count): hidden width
h = floor((P - n_out) / (d + 1 + n_out)); the R leftover entries (R <= d + n_out) are trainable multiplicative
scales on the first min(R, d) inputs and on R - min(R, d) outputs, so every parameter is used.

``HybridMLP``: flatten → Linear(d_in, n_qubits) → tanh·π (angles) → quantum layer (or its twin) → Linear → logits.

For quantum natural gradient (``quantum_opt.transforms.qng``; Stokes et al., Quantum 4, 269, 2020) inside any model:
``quantum_layers(model)`` finds the quantum layers, ``param_labels(model)`` labels the parameters they own
("quantum", the rest "rest") for ``optax.partition``, and ``model_metric_fn(model)`` is the Fubini–Study metric of
their circuits on those parameters, averaged over given layer inputs (``probe_inputs``: angles drawn uniformly from
[-π, π)) — a layer's state depends on its data, and an optimizer sees no batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from quantum_opt import metric as M
from quantum_opt.circuits import make_circuit

KINDS = ("quantum", "classical")


class QuantumLayer(nnx.Module):
    """``[B, d] -> [B, n_qubits]`` expectation values of a trainable circuit (see the module docstring)."""

    def __init__(self, n_qubits: int, n_layers: int = 2, ansatz: str = "reuploading", *,
                 device: str = "simulator", init_scale: float = 0.5, in_features: int | None = None,
                 rngs: nnx.Rngs):
        self.circuit = make_circuit(n_qubits, n_layers, ansatz, device=device)
        self.in_features = n_qubits if in_features is None else in_features  # d of the [B, d] angles it is fed
        self.weights = nnx.Param(self.circuit.init(rngs.params(), scale=init_scale))

    @property
    def n_params(self) -> int:
        return self.circuit.n_params

    def metric(self, weights: jax.Array, inputs: jax.Array, approx: str = "block-diag") -> jax.Array:
        """``g [P, P]``: the Fubini–Study metric of the circuit's state in its weights, averaged over ``inputs [K, d]``.

        approx: "block-diag" (PennyLane's default approximation; blocks: the commuting gate layers ``Circuit.blocks``),
        "full" or "diag".
        """
        state, blocks = self.circuit.state, self.circuit.blocks
        one = lambda x: M.metric_fn(lambda w: state(w, x), approx, blocks)(weights)
        return jnp.mean(jax.vmap(one)(inputs), axis=0)

    def probe_inputs(self, key: jax.Array, n: int) -> jax.Array:
        """``[n, in_features]`` angles drawn uniformly from [-π, π): where ``model_metric_fn`` evaluates the metric."""
        return jax.random.uniform(key, (n, self.in_features), jnp.float32, -jnp.pi, jnp.pi)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"x: got shape {x.shape}; allowed: [B, d]")
        w = self.weights[...]
        return jax.vmap(lambda xi: self.circuit.expval(w, xi))(x).astype(x.dtype)


def twin_shapes(d: int, n_out: int, n_params: int) -> tuple[int, int, int]:
    """(hidden width h, input scales, output scales) of the classical twin with exactly ``n_params`` parameters."""
    h = (n_params - n_out) // (d + 1 + n_out)
    if h < 1:
        raise ValueError(f"n_params: got {n_params}; allowed: >= {d + 1 + 2 * n_out} for d={d}, n_out={n_out}")
    rest = n_params - n_out - h * (d + 1 + n_out)
    return h, min(rest, d), rest - min(rest, d)


class ClassicalTwinLayer(nnx.Module):
    """``[B, d] -> [B, n_out]``: a tanh MLP with exactly ``n_params`` trainable parameters (one flat Param)."""

    def __init__(self, d: int, n_out: int, n_params: int, *, rngs: nnx.Rngs):
        self.d, self.n_out = d, n_out
        self.h, self.n_in_scale, self.n_out_scale = twin_shapes(d, n_out, n_params)
        h = self.h
        k1, k2 = jax.random.split(rngs.params())
        parts = [jax.random.normal(k1, (d * h,)) / np.sqrt(d), jnp.zeros((h,)),
                 jax.random.normal(k2, (h * n_out,)) / np.sqrt(h), jnp.zeros((n_out,)),
                 jnp.ones((self.n_in_scale + self.n_out_scale,))]
        self.theta = nnx.Param(jnp.concatenate(parts).astype(jnp.float32))

    @property
    def n_params(self) -> int:
        return int(self.theta[...].shape[0])

    def __call__(self, x: jax.Array) -> jax.Array:
        d, h, n_out, si, so = self.d, self.h, self.n_out, self.n_in_scale, self.n_out_scale
        t = self.theta[...]
        sizes = np.cumsum([d * h, h, h * n_out, n_out, si])
        w1, b1, w2, b2, s_in, s_out = jnp.split(t, sizes)
        x = x * jnp.concatenate([s_in, jnp.ones((d - si,), t.dtype)])
        y = jnp.tanh(x @ w1.reshape(d, h) + b1) @ w2.reshape(h, n_out) + b2
        return y * jnp.concatenate([s_out, jnp.ones((n_out - so,), t.dtype)])


class HybridMLP(nnx.Module):
    """``[B, ...] -> [B, n_classes]``: Linear → tanh·π → quantum layer (``kind="quantum"``) or its equal-parameter
    classical twin (``kind="classical"``) → Linear."""

    def __init__(self, in_features: int, n_classes: int, *, kind: str = "quantum", n_qubits: int = 4,
                 n_layers: int = 2, ansatz: str = "reuploading", device: str = "simulator", rngs: nnx.Rngs):
        if kind not in KINDS:
            raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(KINDS)}")
        self.encode = nnx.Linear(in_features, n_qubits, rngs=rngs)
        quantum = QuantumLayer(n_qubits, n_layers, ansatz, device=device, rngs=rngs)
        self.core = quantum if kind == "quantum" else ClassicalTwinLayer(n_qubits, n_qubits, quantum.n_params,
                                                                         rngs=rngs)
        self.head = nnx.Linear(n_qubits, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        return self.head(self.core(jnp.pi * jnp.tanh(self.encode(x))))


def _names(path) -> tuple:
    """A pytree key path as a tuple of names (``nnx.State``'s trailing ``value`` of a Variable dropped)."""
    names = tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path)
    return names[:-1] if names and names[-1] == "value" else names


def quantum_layers(model: nnx.Module) -> dict[tuple, QuantumLayer]:
    """Every ``QuantumLayer`` in ``model``, by the path of its ``weights`` parameter (``("core", "weights")``)."""
    return {tuple(path) + ("weights",): node for path, node in nnx.iter_graph(model) if isinstance(node, QuantumLayer)}


def param_labels(model: nnx.Module, quantum: str = "quantum", rest: str = "rest"):
    """A label tree matching ``nnx.state(model, nnx.Param)``: ``quantum`` on quantum layers' weights, ``rest`` on the
    others (for ``optax.partition``)."""
    owned = quantum_layers(model)
    return jax.tree_util.tree_map_with_path(lambda path, _: quantum if _names(path) in owned else rest,
                                            nnx.state(model, nnx.Param))


def probe_inputs(model: nnx.Module, key: jax.Array, n: int) -> tuple[jax.Array, ...]:
    """``([n, d], ...)``: ``QuantumLayer.probe_inputs`` of every quantum layer (``quantum_layers`` order), one key
    each."""
    owned = quantum_layers(model)
    keys = jax.random.split(key, max(len(owned), 1))
    return tuple(layer.probe_inputs(k, n) for layer, k in zip(owned.values(), keys))


def model_metric_fn(model: nnx.Module, approx: str = "block-diag"):
    """``(params, inputs) -> g [P, P]`` for ``qng(metric_fn=..., metric_data=inputs)``: the block-diagonal stack, in
    ``ravel_pytree`` order, of every quantum layer's ``metric`` averaged over its ``inputs[i] [K, d]`` (one array per
    layer, ``quantum_layers`` order, as ``probe_inputs`` gives), on a params tree holding only quantum layers'
    weights (what ``optax.partition`` passes its QNG part). Different layers' circuits are separate states, so the
    blocks between them are zero."""
    owned = quantum_layers(model)
    index = {path: i for i, path in enumerate(owned)}

    def fn(params, inputs):
        if len(inputs) != len(owned):
            raise ValueError(f"inputs: got {len(inputs)} arrays; allowed: one [K, d] array per quantum layer "
                             f"({len(owned)})")
        blocks = []
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            name = _names(path)
            if name not in index:
                raise ValueError(f"params: {'.'.join(map(str, name))} is not a quantum layer's weights; allowed: "
                                 f"{', '.join('.'.join(p) for p in owned)} (partition with param_labels)")
            blocks.append(owned[name].metric(leaf, inputs[index[name]], approx))
        return jax.scipy.linalg.block_diag(*blocks)

    return fn
