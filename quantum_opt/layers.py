"""Quantum layers for Flax NNX models, and classical twins with the same number of parameters.

``QuantumLayer``: ``[B, d] -> [B, n_qubits]`` Pauli-Z expectations of a parametrised circuit (``quantum_opt.circuits``,
a PennyLane QNode with the JAX interface, vmapped over the batch) whose weights are an ``nnx.Param``. The inputs
are angles: with the ``reuploading`` ansatz (Pérez-Salinas et al., "Data re-uploading for a universal quantum
classifier", Quantum 4, 226, 2020) they are encoded again in every layer; with ``hardware_efficient`` /
``strongly_entangling`` they are RY-encoded once before the first layer (Schuld et al., PRA 101, 032308, 2020).

``ClassicalTwinLayer``: ``[B, d] -> [B, n_out]``, a one-hidden-layer tanh MLP whose parameters are ONE flat
``nnx.Param`` of exactly ``n_params`` entries (the quantum layer's count): hidden width
h = floor((P - n_out) / (d + 1 + n_out)); the R leftover entries (R <= d + n_out) are trainable multiplicative
scales on the first min(R, d) inputs and on R - min(R, d) outputs, so every parameter is used.

``HybridMLP``: flatten → Linear(d_in, n_qubits) → tanh·π (angles) → quantum layer (or its twin) → Linear → logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from quantum_opt.circuits import make_circuit

KINDS = ("quantum", "classical")


class QuantumLayer(nnx.Module):
    """``[B, d] -> [B, n_qubits]`` expectation values of a trainable circuit (see the module docstring)."""

    def __init__(self, n_qubits: int, n_layers: int = 2, ansatz: str = "reuploading", *,
                 device: str = "default.qubit", init_scale: float = 0.5, rngs: nnx.Rngs):
        self.circuit = make_circuit(n_qubits, n_layers, ansatz, device=device)
        self.weights = nnx.Param(self.circuit.init(rngs.params(), scale=init_scale))

    @property
    def n_params(self) -> int:
        return self.circuit.n_params

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
                 n_layers: int = 2, ansatz: str = "reuploading", device: str = "default.qubit", rngs: nnx.Rngs):
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
