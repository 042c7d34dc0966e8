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

``ffn="moe"`` (both models) replaces every block's MLP by a ``spiking.moe.MoEFeedForward`` of ``experts`` MLPs
of the same shape, ``top_k`` of them per token (keyword arguments ``experts``, ``top_k``, ``capacity_factor``,
``balance``, ``balance_weight``, ``z_loss_weight``, ``bias_rate``; defaults ``MOE_DEFAULTS``). In SpikingLM the
experts read spikes as the MLP does ("pre") and the router reads the float LayerNorm output averaged over T.

``token_shift=True`` (both models): the Linears that read a block's LayerNorm output (Q/K/V, the MLP's first or
the experts) read half its channels from the previous token (``token_shift``; RWKV-2, as SpikeGPT shifts tokens).
It adds no operation; a byte-level model learns local context from it far sooner.

``dtype`` ("float32" | "bfloat16" | "float16", every model): the Linears, attention and experts compute in that
type; parameters (so the optimizer state), the residual stream, LayerNorms, softmax (``dot_product_attention``
accumulates its logits in float32), neuron membranes, the router and the logits the loss reads stay float32.
float16 has no loss scaling here. ``DenseLM(attention="xla" | "cudnn")`` picks the implementation of
``jax.nn.dot_product_attention`` (cuDNN's fused kernel needs a GPU and a 16-bit dtype).

``DenseLM`` is a standard pre-LayerNorm causal transformer (Vaswani et al. 2017; GPT-2 layout) with
``jax.nn.dot_product_attention``, GELU MLP, the same width, depth, heads, MLP ratio and embeddings (its parameter
count differs from SpikingLM's only by the attention-output LayerNorms, 2·D per block).

Every model maps tokens ``[B, L]`` int to logits ``[B, L, 256]``. The models count nothing themselves: they sow
what the accounting reads (``spiking.layers.trace``: each Linear's input, the spikes the published convention
prices it by, attention operands, norm outputs), only under ``nnx.capture``; ``spiking.energy.capture_sites(model,
tokens)`` builds the op-count sites from those. The training path sows and computes none of it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from spiking.layers import TWIN_ACTIVATIONS, Neuron, remat_policy, sharded, trace
from spiking.moe import MoEFeedForward
from spiking.neurons import NEURONS

PLACEMENTS = ("pre", "post")
FFNS = ("dense", "moe")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
ATTENTIONS = ("xla", "cudnn")
MOE_DEFAULTS = {"experts": 8, "top_k": 2, "capacity_factor": 1.25, "balance": "loss", "balance_weight": 1e-2,
                "z_loss_weight": 1e-3, "bias_rate": 1e-3}


def _norm(d, rngs):
    return nnx.LayerNorm(d, dtype=jnp.float32, scale_init=sharded(nnx.initializers.ones, "norm"),
                         bias_init=sharded(nnx.initializers.zeros, "norm"), rngs=rngs)


def _linear(d_in, d_out, names, dtype, rngs):
    """``nnx.Linear`` (its default initialisers) whose kernel carries the logical axes ``names`` (in, out) and whose
    bias carries the output's."""
    return nnx.Linear(d_in, d_out, dtype=dtype, kernel_init=sharded(nnx.initializers.lecun_normal(), *names),
                      bias_init=sharded(nnx.initializers.zeros, names[1]), rngs=rngs)


def _qkvo(d, dtype, rngs):
    """Q, K, V (``embed -> heads``: the heads × per-head dimension, fused) and O (``heads -> embed``)."""
    return (*(_linear(d, d, ("embed", "heads"), dtype, rngs) for _ in range(3)),
            _linear(d, d, ("heads", "embed"), dtype, rngs))


def _mlp(d, h, dtype, rngs):
    return _linear(d, h, ("embed", "mlp"), dtype, rngs), _linear(h, d, ("mlp", "embed"), dtype, rngs)


def _run_blocks(blocks, x, remat: str, capturing: bool):
    """``x`` through every block. ``remat`` != "none": the blocks' states are stacked and ``lax.scan`` runs one
    ``jax.checkpoint``-ed block per step (MaxText's scanned layers), so the backward pass keeps only each block's
    input (or what the ``jax.checkpoint_policies`` policy names) and recomputes the rest block by block. The scan
    is what makes the saving real: with the blocks unrolled, XLA's scheduler may hoist every block's recomputation
    to the start of the backward pass and keep it all alive (it does on CPU). Under ``nnx.capture`` (the
    accounting) the blocks run plainly: nothing there is differentiated."""
    wrap, policy = remat_policy(remat)
    graphdef = nnx.split(blocks[0])[0]
    if not wrap or capturing or any(nnx.split(b)[0] != graphdef for b in blocks[1:]):
        for block in blocks:
            x = block(x)
        return x
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(nnx.state(b) for b in blocks))

    def body(h, state):
        block = nnx.merge(graphdef, state)
        return block(h), nnx.state(block)  # the state back out: a routing bias moves in training

    x, states = jax.lax.scan(jax.checkpoint(body, policy=policy), x, stacked)
    for i, block in enumerate(blocks):
        nnx.update(block, jax.tree.map(lambda a: a[i], states))
    return x


def _moe(ffn: str, width: int, hidden: int, moe_kw: dict, rngs) -> MoEFeedForward | None:
    """The block's mixture of experts when ``ffn == "moe"`` (``moe_kw``: MOE_DEFAULTS' keys), else None."""
    unknown = set(moe_kw) - set(MOE_DEFAULTS) - {"dispatch", "dtype"}
    if unknown:
        raise TypeError(f"unknown mixture-of-experts arguments {sorted(unknown)}")
    return MoEFeedForward(width, hidden, **{**MOE_DEFAULTS, **moe_kw}, rngs=rngs) if ffn == "moe" else None
__all__ = [
    "ATTENTIONS",
    "DTYPES",
    "FFNS",
    "MOE_DEFAULTS",
    "PLACEMENTS",
    "TWIN_ACTIVATIONS",
    "DenseBlock",
    "DenseLM",
    "SpikingBlock",
    "SpikingLM",
    "block_linears",
    "causal_spiking_attention",
    "token_shift",
]


def token_shift(x):
    """RWKV-2's token shift (Peng 2021; SpikeGPT, Zhu et al. 2023, shifts tokens too): the second half of the
    channels of ``x [..., L, D]`` is read from the previous position (zeros at position 0), the first half stays.

    A Linear reading the result sees the current and the previous token at no arithmetic cost: it moves data and
    adds no operation, so spikes stay binary and the op accounting is unchanged.
    """
    half = x.shape[-1] // 2
    prev = jnp.pad(x[..., :-1, half:], [(0, 0)] * (x.ndim - 2) + [(1, 0), (0, 0)])
    return jnp.concatenate([x[..., :half], prev], axis=-1)


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


class SpikingBlock(nnx.Module):
    """One block: spiking self-attention + spiking MLP, each added to the float residual stream ``[T, B, L, D]``.

    One ``Neuron`` (``spiking.layers``; the twin's continuous activation when not spiking) serves every place a
    neuron sits; it is stateless between calls, so sharing it shares only its parameters (``plif``'s ``w``).
    """

    def __init__(self, width, heads, mlp_ratio, placement, neuron_kw, *, ffn="dense", moe_kw=None,
                 dtype=jnp.float32, shift=False, rngs):
        d, h = width, width * mlp_ratio
        self.heads, self.placement, self.shift = heads, placement, shift
        self.ln1, self.ln2 = _norm(d, rngs), _norm(d, rngs)
        self.ln_attn = _norm(d, rngs)
        self.wq, self.wk, self.wv, self.wo = _qkvo(d, dtype, rngs)
        self.moe = _moe(ffn, d, h, {**(moe_kw or {}), "dtype": dtype}, rngs)
        if self.moe is None:
            self.w1, self.w2 = _mlp(d, h, dtype, rngs)
        self.neuron = Neuron(**neuron_kw)

    def _fire(self, x):
        """The neuron before a Linear ("pre" placement); identity for "post", whose neurons follow the Linears."""
        return self.neuron(x) if self.placement == "pre" else x

    def _input(self, h):
        """What the block's first Linears (Q/K/V, the MLP's first) read of the LayerNorm output ``h``: its spikes
        ("pre"), token-shifted when ``shift``."""
        s = self._fire(h)
        return token_shift(s) if self.shift else s

    def _linear(self, name, x):
        """The Linear ``self.<name>`` on ``x [T, B, L, in]``; "post" fires a neuron after it. Sows its input and
        (spiking only) the spikes the published convention rates it by: its input ("pre") or its output ("post")."""
        y = getattr(self, name)(x)
        if self.placement == "post":
            y = self.neuron(y)
        rate = {f"{name}_rate": x if self.placement == "pre" else y} if self.neuron.spiking else {}
        trace(self, **{name: x}, **rate)
        return y

    def __call__(self, x):
        """``x [T, B, L, D]`` -> ``[T, B, L, D]``: ``x + O(attn(Q, K, V))``, then ``x + W2(W1(ln2 x))``, spiking."""
        t, b, length, d = x.shape
        h = self.ln1(x)
        s = self._input(h)
        q, k, v = (self._fire(self._linear(n, s)) for n in ("wq", "wk", "wv"))  # spikes
        heads = lambda z: z.reshape(t, b, length, self.heads, d // self.heads)  # [T, B, L, H, dh]
        qh, kh, vh = heads(q), heads(k), heads(v)
        a = causal_spiking_attention(*(z.swapaxes(2, 3) for z in (qh, kh, vh))).swapaxes(2, 3).reshape(x.shape)
        a = self.ln_attn(a)
        x = x + self._linear("wo", self._fire(a))
        h2 = self.ln2(x)
        x = x + self._ffn(h2)
        rates = {"qk_rate": qh, "av_rate": vh} if self.neuron.spiking else {}
        trace(self, qk=qh, av=vh, layernorm=(h, a, h2), scale=a, **rates)  # ln_attn: norm (2) + scale (1)
        return x

    def _ffn(self, h):
        """The spiking MLP of ``h [T, B, L, D]`` (the LayerNorm output), or its mixture of experts: experts read
        spikes as the MLP does; the router reads the float ``h`` averaged over T (one decision per token)."""
        if self.moe is None:
            return self._linear("w2", self._fire(self._linear("w1", self._input(h))))
        rates = self.placement if self.neuron.spiking else None
        after = self.neuron if self.placement == "post" else None
        return self.moe(self._input(h), router_input=h.mean(0), activation=self.neuron, spike_rates=rates, after=after)


class _Embedding(nnx.Module):
    def __init__(self, vocab, width, seq_len, *, rngs):
        self.tok = nnx.Embed(vocab, width, rngs=rngs, embedding_init=sharded(
            nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0), "vocab", "embed"))
        self.pos = nnx.Param(sharded(nnx.initializers.normal(0.02), None, "embed")(rngs.params(), (seq_len, width)))
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
                 twin_activation: str = "sigmoid", ffn: str = "dense", dtype: str = "float32",
                 token_shift: bool = False, remat: str = "none", rngs: nnx.Rngs, **moe_kw):
        remat_policy(remat)  # validates
        self.remat = remat
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
        neuron_kw = {"neuron": neuron, "threshold": threshold, "surrogate": surrogate, "spiking": spiking,
                     "twin_activation": twin_activation, "w_init": math.log(beta / (1 - beta))}
        if neuron in ("lif", "alif"):
            neuron_kw["beta"] = beta
        self.ffn = ffn
        self.dtype = dtype
        self.blocks = nnx.List([SpikingBlock(width, heads, mlp_ratio, spike_placement, neuron_kw, ffn=ffn,
                                             moe_kw=moe_kw, dtype=DTYPES[dtype], shift=token_shift,
                                             rngs=rngs) for _ in range(depth)])
        self.token_shift = token_shift
        self.ln_f = _norm(width, rngs)
        self.head = _linear(width, vocab, ("embed", "vocab"), DTYPES[dtype], rngs)

    def __call__(self, tokens):
        """``tokens [B, L]`` -> logits ``[B, L, vocab]``."""
        e = self.embed(tokens)  # a gather: no MAC
        x = jnp.broadcast_to(e, (self.timesteps, *e.shape))  # direct coding: [T, B, L, D]
        x = _run_blocks(self.blocks, x, self.remat, hasattr(self, "__captures__"))
        z = self.ln_f(x.mean(0))  # readout: mean over T, then a float head
        trace(self, layernorm=z, head=z, **({"mean": x} if self.timesteps > 1 else {}))
        return self.head(z)


class DenseBlock(nnx.Module):
    """Pre-LayerNorm transformer block: causal ``jax.nn.dot_product_attention`` + GELU MLP, ``[B, L, D]``."""

    def __init__(self, width, heads, mlp_ratio, *, ffn="dense", moe_kw=None, dtype=jnp.float32, attention="xla",
                 shift=False, rngs):
        d, h = width, width * mlp_ratio
        self.heads, self.attention, self.shift = heads, attention, shift
        self.ln1, self.ln2 = _norm(d, rngs), _norm(d, rngs)
        self.wq, self.wk, self.wv, self.wo = _qkvo(d, dtype, rngs)
        self.moe = _moe(ffn, d, h, {**(moe_kw or {}), "dtype": dtype}, rngs)
        if self.moe is None:
            self.w1, self.w2 = _mlp(d, h, dtype, rngs)

    def __call__(self, x):
        """``x [B, L, D]`` -> ``[B, L, D]``: ``x + attend(ln1 x)``, then ``x + mlp(ln2 x)``."""
        h1 = self.ln1(x)
        x = x + self.attend(token_shift(h1) if self.shift else h1)
        h2 = self.ln2(x)
        x = x + self.mlp(token_shift(h2) if self.shift else h2)
        trace(self, layernorm=(h1, h2))
        return x

    def attend(self, h):
        """Causal multi-head softmax attention of ``h [B, L, D]`` -> ``[B, L, D]`` (output projection included)."""
        b, length, d = h.shape
        q, k, v = (w(h).reshape(b, length, self.heads, d // self.heads) for w in (self.wq, self.wk, self.wv))
        a = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=self.attention)
        a = a.reshape(b, length, d)
        trace(self, wq=h, wk=h, wv=h, wo=a, qk=q, av=v, softmax=q)
        return self.wo(a)

    def mlp(self, h):
        """``W2 gelu(W1 h)`` for ``h [B, L, D]`` -> ``[B, L, D]`` (or the mixture of experts of such MLPs)."""
        if self.moe is not None:
            return self.moe(h)
        g = jax.nn.gelu(self.w1(h))
        trace(self, w1=h, gelu=g, w2=g)
        return self.w2(g)


class DenseLM(nnx.Module):
    """Standard pre-LayerNorm causal transformer LM. Tokens ``[B, L]`` -> logits ``[B, L, vocab]``."""

    def __init__(self, *, vocab: int = 256, width: int = 128, depth: int = 2, heads: int = 4, seq_len: int = 128,
                 mlp_ratio: int = 4, ffn: str = "dense", dtype: str = "float32", attention: str = "xla",
                 token_shift: bool = False, remat: str = "none", rngs: nnx.Rngs, **moe_kw):
        remat_policy(remat)  # validates
        self.remat = remat
        if width % heads or depth < 1:
            raise ValueError(f"width/heads/depth: {width}/{heads}/{depth} not allowed; width must divide by heads")
        self.width, self.depth, self.heads, self.seq_len, self.vocab = width, depth, heads, seq_len, vocab
        self.mlp_ratio = mlp_ratio
        self.embed = _Embedding(vocab, width, seq_len, rngs=rngs)
        self.ffn, self.dtype, self.attention, self.token_shift = ffn, dtype, attention, token_shift
        self.blocks = nnx.List([DenseBlock(width, heads, mlp_ratio, ffn=ffn, moe_kw=moe_kw, dtype=DTYPES[dtype],
                                           attention=attention, shift=token_shift, rngs=rngs) for _ in range(depth)])
        self.ln_f = _norm(width, rngs)
        self.head = _linear(width, vocab, ("embed", "vocab"), DTYPES[dtype], rngs)

    def __call__(self, tokens):
        """``tokens [B, L]`` -> logits ``[B, L, vocab]``."""
        x = _run_blocks(self.blocks, self.embed(tokens), self.remat, hasattr(self, "__captures__"))
        z = self.ln_f(x)
        trace(self, layernorm=z, head=z)
        return self.head(z)


def block_linears(model) -> list[tuple]:
    """Paths from ``model`` of every ``nnx.Linear`` under ``model.blocks`` whose path names no router: the Linears
    post-training pruning and quantisation change (never embeddings, head, norms or routers)."""
    if not hasattr(model, "blocks"):
        raise ValueError(f"model: {type(model).__name__} has no .blocks; give an LM of spiking.lm")
    seen, paths = set(), []
    for path, node in nnx.iter_graph(model.blocks):
        if isinstance(node, nnx.Linear) and id(node) not in seen and not any("router" in str(p) for p in path):
            seen.add(id(node))
            paths.append(("blocks", *path))
    return paths
