"""Byte-level causal language models: SpikingLM, its non-spiking twin, and a matched DenseLM (Flax NNX).

``SpikingLM`` is a causal spiking transformer with Spikformer-style spiking self-attention (Zhou et al. 2023,
"Spikformer: When Spiking Neural Network Meets Transformer", ICLR): Q, K and V are spike tensors, there is no
softmax, scores ``Q Kᵀ`` are masked causally and multiplied by ``V`` with a scale (here ``1/sqrt(d_head)`` and
``1/(i+1)`` for query ``i``, so the magnitude does not grow with position; a LayerNorm follows, as Spikformer's BN).
Layout is time-major ``[T, B, L, D]``; every matmul folds ``T`` into the batch (one ``[T·B·L, D]`` product) and
only the neuron dynamics scan over ``T`` (``spiking.neurons``).

* Input encoding: byte embedding + learned position embedding ``[B, L, D]``, repeated over ``T`` (direct coding).
* Readout: mean over ``T`` of the residual stream after the last block, a LayerNorm, then a float head to 256.
* ``spike_placement="post"``: a neuron after each Linear (as SpikeGPT, Zhu et al. 2023): Q/K/V/O and MLP Linears
  read the float LayerNorm output or attention output (only the second MLP Linear reads spikes).
  ``"pre"``: a neuron before each Linear, so every block Linear reads a binary spike tensor — the placement
  neuromorphic hardware needs; residual stream, norms and head stay float.
* ``spiking=False`` gives the twin: every neuron is replaced by a memoryless continuous activation of its input
  current (``sigmoid(I - θ)`` by default, the smooth version of the step ``H(I - θ)``); everything else is equal.
  Its activations have no memory, so the T copies would be identical: the twin runs with ``T = 1``.

``DenseLM`` is a standard pre-LayerNorm causal transformer (Vaswani et al. 2017; GPT-2 layout) with
``jax.nn.dot_product_attention``, GELU MLP, the same width, depth, heads, MLP ratio and embeddings (its parameter
count differs from SpikingLM's only by the attention-output LayerNorms, 2·D per block).

Every model maps tokens ``[B, L]`` int to logits ``[B, L, 256]``. ``model(tokens, return_stats=True)`` returns
``(logits, sites)`` with the measured op counts of ``spiking.energy`` (per-layer spikes, MACs, ACs); the training
path (``return_stats=False``) computes none of them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from spiking import energy
from spiking.neurons import NEURONS

PLACEMENTS = ("pre", "post")
TWIN_ACTIVATIONS = {
    "sigmoid": lambda x, th: jax.nn.sigmoid(x - th),
    "relu": lambda x, th: jax.nn.relu(x),
    "gelu": lambda x, th: jax.nn.gelu(x),
}


def _put(sites, name, fn, *args, **kw):
    """Record the site ``fn(*args, **kw)`` under ``name`` (adding to an existing one) only when stats are on."""
    if sites is None:
        return
    site = fn(*args, **kw)
    if name in sites:
        old = sites[name]
        sites[name] = {f: (jnp.minimum(old[f], site[f]) if f in energy.MIN_FIELDS else old[f] + site[f])
                       for f in energy.SITE_FIELDS}
    else:
        sites[name] = site


def causal_spiking_attention(q, k, v):
    """Spikformer self-attention with a causal mask and no softmax.

    Args: ``q, k, v`` ``[..., L, d]`` (spikes, or activations in the twin). Returns ``[..., L, d]``:
    ``out_i = (Σ_{j≤i} (q_i·k_j) v_j) / (sqrt(d) (i+1))``.
    """
    length, d = q.shape[-2], q.shape[-1]
    mask = jnp.tril(jnp.ones((length, length), q.dtype))
    scores = jnp.einsum("...id,...jd->...ij", q, k) * mask
    out = jnp.einsum("...ij,...jd->...id", scores, v)
    norm = 1.0 / (math.sqrt(d) * jnp.arange(1, length + 1, dtype=q.dtype))
    return out * norm[:, None]


class SpikeNeuron(nnx.Module):
    """A spiking neuron over time-major ``[T, ...]`` currents (any of ``spiking.neurons.NEURONS``), or, when
    ``spiking=False``, a memoryless continuous activation (the twin). ``plif`` gets a learnable ``w``."""

    def __init__(self, kind: str, *, beta: float, threshold: float, surrogate: str, spiking: bool,
                 twin_activation: str):
        self.kind, self.beta, self.threshold, self.surrogate = kind, beta, threshold, surrogate
        self.spiking, self.twin_activation = spiking, twin_activation
        if spiking and kind == "plif":
            self.w = nnx.Param(jnp.asarray(math.log(beta / (1 - beta)), jnp.float32))

    def __call__(self, x, sites=None, name="neurons"):
        """``x [T, ...]`` input current -> spikes (or activations) ``[T, ...]``."""
        _put(sites, name, energy.elementwise_site, x, 1.0, neuron=True)  # membrane update, 1 MAC per step
        if not self.spiking:
            return TWIN_ACTIVATIONS[self.twin_activation](x, self.threshold)
        kw = {"threshold": self.threshold, "surrogate": self.surrogate}
        if self.kind in ("lif", "alif"):
            kw["beta"] = self.beta
        elif self.kind == "plif":
            kw["w"] = self.w[...]
        spikes, _ = NEURONS[self.kind](x, **kw)
        return spikes


class SpikingBlock(nnx.Module):
    """One block: spiking self-attention + spiking MLP, each added to the float residual stream ``[T, B, L, D]``."""

    def __init__(self, width, heads, mlp_ratio, placement, neuron_kw, *, rngs):
        d, h = width, width * mlp_ratio
        self.heads, self.placement = heads, placement
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.ln_attn = nnx.LayerNorm(d, rngs=rngs)
        self.wq, self.wk, self.wv, self.wo = (nnx.Linear(d, d, rngs=rngs) for _ in range(4))
        self.w1, self.w2 = nnx.Linear(d, h, rngs=rngs), nnx.Linear(h, d, rngs=rngs)
        self.neuron = SpikeNeuron(**neuron_kw)

    def _linear(self, lin, x, sites, name):
        """``lin`` applied to ``x [T, B, L, in]``, spikes placed before ("pre": x already spikes) or after."""
        if self.placement == "post":
            y = self.neuron(lin(x), sites, name + ".neurons")
            _put(sites, name, energy.linear_site, x, lin.out_features, spiking=self.neuron.spiking, rate_from=y)
            return y
        _put(sites, name, energy.linear_site, x, lin.out_features, spiking=self.neuron.spiking)
        return lin(x)

    def __call__(self, x, sites=None, prefix="block"):
        t, b, length, d = x.shape
        nh = self.heads
        h = self.ln1(x)
        _put(sites, prefix + ".norms", energy.elementwise_site, h, 2.0)
        if self.placement == "pre":
            s = self.neuron(h, sites, prefix + ".neurons")
            q, k, v = (self.neuron(self._linear(w, s, sites, f"{prefix}.{n}"), sites, prefix + ".neurons")
                       for w, n in ((self.wq, "q"), (self.wk, "k"), (self.wv, "v")))
        else:
            q, k, v = (self._linear(w, h, sites, f"{prefix}.{n}")
                       for w, n in ((self.wq, "q"), (self.wk, "k"), (self.wv, "v")))
        split = lambda z: z.reshape(t, b, length, nh, d // nh).swapaxes(2, 3)  # [T, B, H, L, dh]
        qh, kh, vh = split(q), split(k), split(v)
        _put(sites, prefix + ".qk", energy.causal_matmul_site, qh, 0, spiking=self.neuron.spiking)
        _put(sites, prefix + ".av", energy.causal_matmul_site, vh, 0, spiking=self.neuron.spiking,
             query_side=False)
        a = causal_spiking_attention(qh, kh, vh).swapaxes(2, 3).reshape(t, b, length, d)
        a = self.ln_attn(a)
        _put(sites, prefix + ".norms", energy.elementwise_site, a, 3.0)  # norm (2) + scale (1)
        if self.placement == "pre":
            a = self.neuron(a, sites, prefix + ".neurons")
        x = x + self._linear(self.wo, a, sites, prefix + ".o")
        h = self.ln2(x)
        _put(sites, prefix + ".norms", energy.elementwise_site, h, 2.0)
        if self.placement == "pre":
            s = self.neuron(h, sites, prefix + ".neurons")
            s = self.neuron(self._linear(self.w1, s, sites, prefix + ".fc1"), sites, prefix + ".neurons")
        else:
            s = self._linear(self.w1, h, sites, prefix + ".fc1")
        return x + self._linear(self.w2, s, sites, prefix + ".fc2")


class _Embedding(nnx.Module):
    def __init__(self, vocab, width, seq_len, *, rngs):
        self.tok = nnx.Embed(vocab, width, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (seq_len, width)))
        self.seq_len = seq_len

    def __call__(self, tokens):
        if tokens.ndim != 2 or tokens.shape[1] > self.seq_len:
            raise ValueError(f"tokens: shape {tokens.shape} is not allowed; use [B, L] with L <= {self.seq_len}")
        return self.tok(tokens) + self.pos[...][: tokens.shape[1]]


class SpikingLM(nnx.Module):
    """Causal spiking transformer LM (see the module docstring). Tokens ``[B, L]`` -> logits ``[B, L, vocab]``."""

    def __init__(self, *, vocab: int = 256, width: int = 128, depth: int = 2, heads: int = 4, seq_len: int = 128,
                 timesteps: int = 4, spike_placement: str = "pre", neuron: str = "lif", surrogate: str = "atan",
                 beta: float = 0.5, threshold: float = 1.0, mlp_ratio: int = 4, spiking: bool = True,
                 twin_activation: str = "sigmoid", rngs: nnx.Rngs):
        if spike_placement not in PLACEMENTS:
            raise ValueError(f"spike_placement: {spike_placement!r} is not allowed; use one of {PLACEMENTS}")
        if neuron not in NEURONS:
            raise ValueError(f"neuron: {neuron!r} is not allowed; use one of {sorted(NEURONS)}")
        if twin_activation not in TWIN_ACTIVATIONS:
            raise ValueError(f"twin_activation: {twin_activation!r} is not allowed; use one of "
                             f"{sorted(TWIN_ACTIVATIONS)}")
        if width % heads or timesteps < 1 or depth < 1:
            raise ValueError(f"width/heads/timesteps/depth: {width}/{heads}/{timesteps}/{depth} not allowed; "
                             "width must divide by heads, timesteps and depth >= 1")
        if not 0.0 < beta < 1.0:
            raise ValueError(f"beta: {beta!r} is not allowed; use 0 < beta < 1")
        self.width, self.depth, self.heads, self.seq_len, self.vocab = width, depth, heads, seq_len, vocab
        # the twin's activations are memoryless, so its T copies would be identical: it runs with T = 1
        self.timesteps = timesteps if spiking else 1
        self.spike_placement, self.mlp_ratio, self.spiking = spike_placement, mlp_ratio, spiking
        self.embed = _Embedding(vocab, width, seq_len, rngs=rngs)
        neuron_kw = {"kind": neuron, "beta": beta, "threshold": threshold, "surrogate": surrogate, "spiking": spiking,
                         "twin_activation": twin_activation}
        self.blocks = nnx.List([SpikingBlock(width, heads, mlp_ratio, spike_placement, neuron_kw, rngs=rngs)
                                for _ in range(depth)])
        self.ln_f = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, rngs=rngs)

    def __call__(self, tokens, *, return_stats: bool = False):
        """``tokens [B, L]`` -> logits ``[B, L, vocab]`` (and the op-count sites when ``return_stats``)."""
        sites = {} if return_stats else None
        e = self.embed(tokens)  # a gather: no MAC
        x = jnp.broadcast_to(e, (self.timesteps, *e.shape))  # direct coding: [T, B, L, D]
        for i, block in enumerate(self.blocks):
            x = block(x, sites, f"block{i}")
        z = self.ln_f(x.mean(0))  # readout: mean over T, then a float head
        _put(sites, "readout", energy.elementwise_site, x, 1.0 if self.timesteps > 1 else 0.0)
        _put(sites, "readout", energy.elementwise_site, z, 2.0)
        _put(sites, "head", energy.linear_site, z, self.vocab, spiking=False)
        logits = self.head(z)
        return (logits, sites) if return_stats else logits


class DenseBlock(nnx.Module):
    """Pre-LayerNorm transformer block: causal ``jax.nn.dot_product_attention`` + GELU MLP, ``[B, L, D]``."""

    def __init__(self, width, heads, mlp_ratio, *, rngs):
        d = width
        self.heads = heads
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.wq, self.wk, self.wv, self.wo = (nnx.Linear(d, d, rngs=rngs) for _ in range(4))
        self.w1, self.w2 = nnx.Linear(d, d * mlp_ratio, rngs=rngs), nnx.Linear(d * mlp_ratio, d, rngs=rngs)

    def __call__(self, x, sites=None, prefix="block"):
        b, length, d = x.shape
        nh = self.heads
        h = self.ln1(x)
        _put(sites, prefix + ".norms", energy.elementwise_site, h, 2.0)
        for w, n in ((self.wq, "q"), (self.wk, "k"), (self.wv, "v")):
            _put(sites, f"{prefix}.{n}", energy.linear_site, h, d, spiking=False)
        q, k, v = (w(h).reshape(b, length, nh, d // nh) for w in (self.wq, self.wk, self.wv))
        heads_first = lambda z: z.swapaxes(1, 2)  # [B, H, L, dh] for counting
        _put(sites, prefix + ".qk", energy.causal_matmul_site, heads_first(q), 0, spiking=False)
        _put(sites, prefix + ".av", energy.causal_matmul_site, heads_first(v), 0, spiking=False, query_side=False)
        # softmax: one op per unmasked score
        _put(sites, prefix + ".norms", energy.elementwise_site, b * nh * length * (length + 1) // 2, 1.0)
        a = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, length, d)
        _put(sites, prefix + ".o", energy.linear_site, a, d, spiking=False)
        x = x + self.wo(a)
        h = self.ln2(x)
        _put(sites, prefix + ".norms", energy.elementwise_site, h, 2.0)
        _put(sites, prefix + ".fc1", energy.linear_site, h, self.w1.out_features, spiking=False)
        g = jax.nn.gelu(self.w1(h))
        _put(sites, prefix + ".norms", energy.elementwise_site, g, 1.0)
        _put(sites, prefix + ".fc2", energy.linear_site, g, d, spiking=False)
        return x + self.w2(g)


class DenseLM(nnx.Module):
    """Standard pre-LayerNorm causal transformer LM. Tokens ``[B, L]`` -> logits ``[B, L, vocab]``."""

    def __init__(self, *, vocab: int = 256, width: int = 128, depth: int = 2, heads: int = 4, seq_len: int = 128,
                 mlp_ratio: int = 4, rngs: nnx.Rngs):
        if width % heads or depth < 1:
            raise ValueError(f"width/heads/depth: {width}/{heads}/{depth} not allowed; width must divide by heads")
        self.width, self.depth, self.heads, self.seq_len, self.vocab = width, depth, heads, seq_len, vocab
        self.mlp_ratio = mlp_ratio
        self.embed = _Embedding(vocab, width, seq_len, rngs=rngs)
        self.blocks = nnx.List([DenseBlock(width, heads, mlp_ratio, rngs=rngs) for _ in range(depth)])
        self.ln_f = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, rngs=rngs)

    def __call__(self, tokens, *, return_stats: bool = False):
        """``tokens [B, L]`` -> logits ``[B, L, vocab]`` (and the op-count sites when ``return_stats``)."""
        sites = {} if return_stats else None
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, sites, f"block{i}")
        z = self.ln_f(x)
        _put(sites, "readout", energy.elementwise_site, z, 2.0)
        _put(sites, "head", energy.linear_site, z, self.vocab, spiking=False)
        logits = self.head(z)
        return (logits, sites) if return_stats else logits
