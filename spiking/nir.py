"""NIR export / import of the feed-forward spiking parts (Affine/Linear + LIF/IF nodes).

NIR (Pedersen et al. 2024, "Neuromorphic intermediate representation: A unified instruction set for interoperable
brain-inspired computing", Nature Communications 15:8122) describes neurons in continuous time. Its LIF is

  τ·dv/dt = (v_leak - v) + r·I,   z = [v > v_threshold],   v ← v_reset when z = 1 (in the same step).

The mapping between our discrete LIF and NIR's is snntorch's (``snntorch/export_nir.py``, ``import_nir.py``):
a forward-Euler step of length ``dt`` gives ``v ← (1 - dt/τ)·v + (r·dt/τ)·I``, so

  τ = dt / (1 - β),   r = τ / dt  (input weight r·dt/τ = 1),   v_leak = 0,   v_threshold = θ,   v_reset = 0,

with ``dt = 1e-4`` by default (snntorch's constant; any dt gives the same discrete model). β = 1 (no leak) is
exported as ``nir.IF`` (``dv/dt = r·I``, r = 1 per step).

Reset semantics, written down: NIR's reset is to ``v_reset = 0`` in the step of the spike, i.e. our
``reset="zero", reset_delay=False`` — and that is exactly the ``snntorch.Leaky`` that snntorch's NIR import
builds. Layers with another reset (snntorch's default "subtract" with a delayed reset) have no NIR LIF equivalent:
``export_nir`` refuses them unless ``strict=False``, which exports the nearest NIR node and records the true
semantics in ``node.metadata["beyondscale_reset"]``; ``import_nir`` reads that metadata back, so a round trip in
JAX is exact either way, while other NIR consumers see reset-to-zero.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import nir
import numpy as np
from flax import nnx

from spiking.layers import Neuron, SpikingDense

__all__ = [
    "DT",
    "export_nir",
    "import_nir",
]

DT = 1e-4  # snntorch's export/import time step (seconds)


def _as_np(v, n):
    v = v[...] if isinstance(v, nnx.Variable) else v
    return np.broadcast_to(np.asarray(v, np.float32), (n,)).copy()


def _neuron_node(neuron: Neuron, n: int, dt: float, strict: bool) -> nir.NIRNode:
    if neuron.neuron not in ("lif", "if"):
        raise ValueError(f"neuron={neuron.neuron!r} has no NIR export; allowed: lif, if")
    semantics = {"reset": neuron.reset, "reset_delay": bool(neuron.reset_delay), "surrogate": str(neuron.surrogate)}
    if strict and (neuron.reset != "zero" or neuron.reset_delay):
        raise ValueError(f"reset={neuron.reset!r}, reset_delay={neuron.reset_delay} has no NIR equivalent "
                         "(NIR LIF resets to v_reset in the same step); allowed with strict=True: reset='zero', "
                         "reset_delay=False; pass strict=False to export anyway with the semantics in metadata")
    thr = _as_np(neuron.threshold, n)
    meta = {"beyondscale_reset": semantics}
    beta = None if neuron.neuron == "if" else np.clip(_as_np(neuron.beta, n), 0.0, 1.0)
    if beta is None or np.all(beta == 1.0):
        return nir.IF(r=np.ones(n, np.float32), v_threshold=thr, v_reset=np.zeros(n, np.float32), metadata=meta)
    if np.any(beta == 1.0):
        raise ValueError("beta mixes 1.0 (IF) and < 1 (LIF) in one layer; NIR needs one node type per layer")
    tau = (dt / (1.0 - beta)).astype(np.float32)
    return nir.LIF(tau=tau, r=(tau / dt).astype(np.float32), v_leak=np.zeros(n, np.float32), v_threshold=thr,
                   v_reset=np.zeros(n, np.float32), metadata=meta)


def export_nir(layers: Sequence[Any] | nnx.Sequential, *, dt: float = DT, strict: bool = True) -> nir.NIRGraph:
    """A chain of ``SpikingDense`` (→ Affine/Linear + LIF/IF), ``nnx.Linear`` and ``Neuron`` modules as a NIR graph.

    Args:
      layers: the modules in order (a list or ``nnx.Sequential``); the first must be a linear one.
      dt: the Euler time step of the mapping (``τ = dt/(1 - β)``).
      strict: refuse neurons whose reset NIR cannot express (anything but reset="zero", reset_delay=False).
    Returns:
      ``nir.NIRGraph`` with nodes ``input, fc0, lif0, fc1, lif1, ..., output`` chained by edges.
    """
    if isinstance(layers, nnx.Sequential):
        layers = list(layers.layers)
    if not layers:
        raise ValueError("layers=[] is empty; pass SpikingDense / nnx.Linear / Neuron modules")
    nodes: dict[str, nir.NIRNode] = {}
    order: list[str] = []
    width = None

    def add_linear(kernel, bias, i):
        w = np.asarray(kernel[...], np.float32).T.copy()  # NIR (like torch) stores [out, in]
        node = nir.Linear(weight=w) if bias is None else nir.Affine(weight=w, bias=np.asarray(bias[...], np.float32))
        nodes[f"fc{i}"] = node
        order.append(f"fc{i}")
        return w.shape[0], w.shape[1]

    for i, layer in enumerate(layers):
        if isinstance(layer, SpikingDense):
            out, inp = add_linear(layer.kernel, layer.bias, i)
            nodes[f"lif{i}"] = _neuron_node(layer.neuron, out, dt, strict)
            order.append(f"lif{i}")
        elif isinstance(layer, nnx.Linear):
            out, inp = add_linear(layer.kernel, layer.bias, i)
        elif isinstance(layer, Neuron):
            if width is None:
                raise ValueError("the first layer is a Neuron; its width is unknown: start with a linear layer")
            inp = out = width
            nodes[f"lif{i}"] = _neuron_node(layer, width, dt, strict)
            order.append(f"lif{i}")
        else:
            raise ValueError(f"layer {i} of type {type(layer).__name__} has no NIR export; allowed: "
                             "SpikingDense, nnx.Linear, Neuron")
        if width is None:
            nodes["input"] = nir.Input(input_type=np.array([inp]))
        elif inp != width:
            raise ValueError(f"layer {i} expects {inp} inputs but the previous layer gives {width}")
        width = out
    nodes["output"] = nir.Output(output_type=np.array([width]))
    chain = ["input", *order, "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])),
                        metadata={"source": "beyondscale.spiking", "dt": dt, "time_major": True})


def _chain(graph: nir.NIRGraph) -> list[str]:
    nxt = {}
    for a, b in graph.edges:
        if a in nxt:
            raise ValueError(f"node {a!r} has several successors; only feed-forward chains are imported")
        nxt[a] = b
    starts = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(starts) != 1:
        raise ValueError(f"graph has {len(starts)} Input nodes; exactly one is allowed")
    chain, k = [], starts[0]
    while k in nxt:
        k = nxt[k]
        chain.append(k)
    return [k for k in chain if not isinstance(graph.nodes[k], nir.Output)]


def _neuron_kwargs(node, dt):
    meta = dict(getattr(node, "metadata", {}) or {}).get("beyondscale_reset", {})
    kw = {"reset": meta.get("reset", "zero"), "reset_delay": bool(meta.get("reset_delay", False))}
    if "surrogate" in meta and meta["surrogate"] in ("atan", "fast_sigmoid", "superspike", "sigmoid", "triangle"):
        kw["surrogate"] = meta["surrogate"]
    if isinstance(node, nir.LIF):
        if not np.allclose(node.v_leak, 0.0) or not np.allclose(node.v_reset, 0.0):
            raise ValueError("LIF with v_leak != 0 or v_reset != 0 has no equivalent here; allowed: 0")
        w_in = np.asarray(node.r) * dt / np.asarray(node.tau)
        if not np.allclose(w_in, 1.0, rtol=1e-4):
            raise ValueError(f"LIF input weight r·dt/τ = {np.unique(w_in)[:3]} (dt={dt}); allowed: 1")
        return "lif", np.asarray(1.0 - dt / np.asarray(node.tau), np.float32), node.v_threshold, kw
    if isinstance(node, nir.IF):
        if not np.allclose(node.r, 1.0) or not np.allclose(node.v_reset, 0.0):
            raise ValueError("IF with r != 1 or v_reset != 0 has no equivalent here; allowed: r=1, v_reset=0")
        return "if", None, node.v_threshold, kw
    raise ValueError(f"node type {type(node).__name__} is not a neuron this importer knows; allowed: LIF, IF")


def import_nir(graph: nir.NIRGraph | str, *, dt: float | None = None) -> nnx.Sequential:
    """A NIR feed-forward chain as an ``nnx.Sequential`` of ``SpikingDense`` / ``nnx.Linear`` / ``Neuron``.

    Affine/Linear followed by LIF/IF becomes one ``SpikingDense``. The neuron's reset is the one recorded by
    ``export_nir`` in the node metadata, else NIR's own (reset to zero in the same step). ``dt`` defaults to
    the graph's ``metadata["dt"]`` or ``DT``. The result maps ``[T, B, N_in]`` to ``[T, B, N_out]`` spikes.
    """
    if isinstance(graph, str):
        graph = nir.read(graph)
    dt = dt if dt is not None else float((graph.metadata or {}).get("dt", DT))
    names = _chain(graph)
    modules: list[Any] = []
    i = 0
    while i < len(names):
        node = graph.nodes[names[i]]
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight, np.float32)
            bias = getattr(node, "bias", None)
            nxt = graph.nodes[names[i + 1]] if i + 1 < len(names) else None
            if isinstance(nxt, (nir.LIF, nir.IF)):
                kind, beta, thr, kw = _neuron_kwargs(nxt, dt)
                layer = SpikingDense(w.shape[1], w.shape[0], neuron=kind, beta=0.9 if beta is None else beta,
                                     threshold=np.asarray(thr, np.float32), use_bias=bias is not None,
                                     rngs=nnx.Rngs(0), **kw)
                i += 2
            else:
                layer = nnx.Linear(w.shape[1], w.shape[0], use_bias=bias is not None, rngs=nnx.Rngs(0))
                i += 1
            layer.kernel[...] = jnp.asarray(w.T)
            if bias is not None:
                layer.bias[...] = jnp.asarray(np.asarray(bias, np.float32))
            modules.append(layer)
        elif isinstance(node, (nir.LIF, nir.IF)):
            kind, beta, thr, kw = _neuron_kwargs(node, dt)
            modules.append(Neuron(kind, beta=0.9 if beta is None else beta, threshold=np.asarray(thr, np.float32),
                                  **kw))
            i += 1
        else:
            raise ValueError(f"node {names[i]!r} of type {type(node).__name__} is not supported; allowed: "
                             "Affine, Linear, LIF, IF")
    return nnx.Sequential(*modules)
