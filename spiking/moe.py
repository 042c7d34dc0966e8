"""Mixture-of-experts feed-forward layers: top-k routing with capacity, balance losses, the loss-free bias.

* Routing (Shazeer et al. 2017; Lepikhin et al. 2020, "GShard"; Fedus et al. 2021, "Switch Transformers", JMLR
  23:120): the router is a float32 Linear ``D -> E``; softmax over experts, then the top-k. Each expert takes at
  most ``capacity = ceil(capacity_factor · N · k / E)`` of the ``N`` tokens' assignments, filled choice-major (every
  token's first choice before any second choice, tokens in order); an assignment past capacity is dropped, and a
  token with none left passes through the residual only. ``capacity_factor <= 0`` is dropless (capacity ``N``).
  Gates are the router probabilities of the chosen experts, renormalised over them when ``k > 1`` (GShard).
* ``load_balance_loss``: Switch's ``E · Σ_e f_e P_e`` with ``f_e`` the share of the ``N·k`` assignments sent to
  ``e`` and ``P_e`` the mean router probability of ``e`` — exactly 1 when routing is uniform, for any ``k``.
* ``router_z_loss`` (Zoph et al. 2022, "ST-MoE", eq. 5): the mean squared log-sum-exp of the router logits.
* Auxiliary-loss-free balancing (Wang et al. 2024, "Auxiliary-Loss-Free Load Balancing Strategy for
  Mixture-of-Experts"; DeepSeek-AI 2024, "DeepSeek-V3", §2.1.2): a per-expert bias, a ``RouterBias`` variable
  (not a ``Param``: no gradient, no optimizer), is added to the scores only to choose the top-k (the gates stay the
  unbiased probabilities) and is moved after each training step by ``rate · sign(mean load − load)``.

Dispatch is a gather into ``[E, C, D]`` capacity buffers and a gather back (``dispatch="gather"``), or one-hot
einsums (``"einsum"``, as Mesh-TensorFlow/GShard); the gather is the faster here (``experiments/benchmarks/
moe_speed.py``). Expert kernels are ``[E, D, H]`` / ``[E, H, D]`` ``Param``\\ s (not ``nnx.Linear``), so
post-training passes over the block Linears leave the experts and the router (path ``router``) alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from spiking.layers import Neuron, sharded, trace

__all__ = ["BALANCES", "DISPATCHES", "MoEFeedForward", "MoEStats", "RouterBias", "Routing", "capacity",
           "gather_rows", "load_balance_loss", "route", "router_z_loss"]

BALANCES = ("loss", "bias", "none")
DISPATCHES = ("gather", "einsum")


class RouterBias(nnx.Variable):
    """The aux-loss-free per-expert routing bias ``[E]``: changes which experts are chosen, never the gates."""


class MoEStats(nnx.Intermediate):
    """Routing statistics and auxiliary losses a ``MoEFeedForward`` sows (under ``nnx.capture(model, MoEStats)``)."""


class Routing(NamedTuple):
    """The routing of ``N`` tokens over ``E`` experts, ``k`` choices each.

    expert_index ``[N, k]`` int32 (best first), gates ``[N, k]`` float32, position ``[N, k]`` int32 (the slot in
    the expert's buffer), kept ``[N, k]`` bool (position < capacity), probs ``[N, E]`` float32 (router softmax).
    """

    expert_index: jax.Array
    gates: jax.Array
    position: jax.Array
    kept: jax.Array
    probs: jax.Array


def capacity(tokens: int, num_experts: int, top_k: int, capacity_factor: float) -> int:
    """Slots per expert: ``ceil(capacity_factor · tokens · top_k / num_experts)``; ``tokens`` when dropless."""
    if capacity_factor <= 0:
        return tokens
    return min(tokens, max(1, math.ceil(capacity_factor * tokens * top_k / num_experts)))


def route(logits: jax.Array, *, top_k: int, capacity_factor: float, bias: jax.Array | None = None) -> Routing:
    """Top-k routing of router ``logits [N, E]`` with per-expert capacity (see the module docstring).

    ``bias [E]`` (aux-loss-free balancing) is added to the probabilities only to choose the experts. Pure.
    """
    n, e = logits.shape
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    scores = probs if bias is None else probs + jax.lax.stop_gradient(bias)
    _, index = jax.lax.top_k(scores, top_k)  # [N, k]
    gates = jnp.take_along_axis(probs, index, axis=-1)
    if top_k > 1:
        gates = gates / gates.sum(-1, keepdims=True)
    onehot = jax.nn.one_hot(index.T.reshape(-1), e, dtype=jnp.int32)  # [k·N, E], choice-major
    position = ((jnp.cumsum(onehot, axis=0) - 1) * onehot).sum(-1).reshape(top_k, n).T
    kept = position < capacity(n, e, top_k, capacity_factor)
    return Routing(index.astype(jnp.int32), gates, position.astype(jnp.int32), kept, probs)


def load_balance_loss(router_probs: jax.Array, expert_index: jax.Array, num_experts: int) -> jax.Array:
    """Switch's auxiliary loss, normalised so that a uniform routing gives exactly 1 for any ``top_k``.

    ``L = E · Σ_e f_e · P_e`` with ``f_e = (1 / (N k)) Σ_n Σ_j [expert_index[n, j] = e]`` (the share of all
    assignments, before any drop) and ``P_e = (1 / N) Σ_n router_probs[n, e]``. Uniform: ``f_e = P_e = 1/E``, so
    ``L = E · E · 1/E² = 1``; all tokens on one expert with probability 1: ``L = E``.
    Args: ``router_probs [N, E]``, ``expert_index [N, k]`` int.
    """
    f = jax.nn.one_hot(expert_index, num_experts, dtype=jnp.float32).sum(1).mean(0) / expert_index.shape[-1]
    return num_experts * jnp.sum(f * router_probs.astype(jnp.float32).mean(0))


def router_z_loss(logits: jax.Array) -> jax.Array:
    """ST-MoE's router z-loss: ``mean_n (logsumexp_e logits[n, e])²`` for ``logits [N, E]``."""
    return jnp.mean(jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1) ** 2)


@jax.custom_vjp
def gather_rows(src: jax.Array, index: jax.Array, inverse: jax.Array) -> jax.Array:
    """Rows ``index [R]`` of ``src [..., M, D]`` (index ``M``: a zero row) -> ``[..., R, D]``, differentiated by a
    gather too: ``inverse [M, m]`` lists, per source row, the output rows that read it (``R``: none), so the
    gradient is ``Σ_m g[inverse[:, m]]`` instead of the scatter-add autodiff would emit (slow on CPU).
    Dispatch and combine are such gathers: each slot holds at most one token, each token fills at most k slots."""
    pad = jnp.zeros((*src.shape[:-2], 1, src.shape[-1]), src.dtype)
    return jnp.take(jnp.concatenate([src, pad], axis=-2), index, axis=-2)


def _gather_rows_fwd(src, index, inverse):
    return gather_rows(src, index, inverse), (inverse, src.shape[-2])


def _gather_rows_bwd(res, g):
    inverse, m = res
    pad = jnp.zeros((*g.shape[:-2], 1, g.shape[-1]), g.dtype)
    rows = jnp.take(jnp.concatenate([g, pad], axis=-2), inverse.reshape(-1), axis=-2)
    return rows.reshape(*g.shape[:-2], m, inverse.shape[-1], g.shape[-1]).sum(-2), None, None


gather_rows.defvjp(_gather_rows_fwd, _gather_rows_bwd)


def expert_load(expert_index: jax.Array, num_experts: int) -> jax.Array:
    """Share of the assignments each expert received ``[E]`` (sums to 1)."""
    return jax.nn.one_hot(expert_index.reshape(-1), num_experts, dtype=jnp.float32).mean(0)


class MoEFeedForward(nnx.Module):
    """Top-k mixture of two-layer feed-forward experts, ``x [*lead, B, L, D] -> [*lead, B, L, D]``.

    ``lead`` is ``()`` for a dense LM or ``(T,)`` for a spiking one: a token keeps its experts for all T steps
    (one routing decision per token, from ``router_input [B, L, D]``, default ``x`` or its mean over ``lead``).
    Each expert is ``W2 act(W1 x + b1) + b2``; ``act`` is given at call time (GELU, or a spiking ``Neuron`` that
    scans over T). Args: width D, hidden H, experts E, top_k, capacity_factor, balance ("loss" | "bias" | "none"),
    balance_weight, z_loss_weight, bias_rate, dispatch, dtype (compute; kernels and router stay float32).
    Training mode (``model.train()``: ``deterministic=False``) moves the bias when ``balance="bias"``.
    """

    def __init__(self, width: int, hidden: int, *, experts: int, top_k: int = 2, capacity_factor: float = 1.25,
                 balance: str = "loss", balance_weight: float = 1e-2, z_loss_weight: float = 1e-3,
                 bias_rate: float = 1e-3, dispatch: str = "gather", dtype=None, rngs: nnx.Rngs):
        self.experts, self.top_k, self.capacity_factor, self.balance = experts, top_k, capacity_factor, balance
        self.balance_weight, self.z_loss_weight, self.bias_rate = balance_weight, z_loss_weight, bias_rate
        self.dispatch, self.dtype, self.deterministic = dispatch, dtype, True
        # logical axis names (spiking.layers.sharded): experts split over an expert axis, D and H as a dense MLP's
        self.router = nnx.Linear(width, experts, use_bias=False, param_dtype=jnp.float32, rngs=rngs,
                                 kernel_init=sharded(nnx.initializers.lecun_normal(), "embed", None))
        init = nnx.initializers.lecun_normal(batch_axis=(0,))  # as nnx.Linear's kernels, one per expert
        zeros = nnx.initializers.zeros
        self.w1 = nnx.Param(sharded(init, "expert", "embed", "mlp")(rngs.params(), (experts, width, hidden)))
        self.b1 = nnx.Param(sharded(zeros, "expert", "mlp")(None, (experts, hidden)))
        self.w2 = nnx.Param(sharded(init, "expert", "mlp", "embed")(rngs.params(), (experts, hidden, width)))
        self.b2 = nnx.Param(sharded(zeros, "expert", "embed")(None, (experts, width)))
        self.bias = RouterBias(jnp.zeros((experts,), jnp.float32))

    def expert_params(self) -> int:
        """Parameters of one expert (W1, b1, W2, b2)."""
        return (self.w1.size + self.b1.size + self.w2.size + self.b2.size) // self.experts

    def __call__(self, x: jax.Array, *, router_input: jax.Array | None = None,
                 activation: Callable = jax.nn.gelu, spike_rates: str | None = None,
                 after: Callable | None = None) -> jax.Array:
        """``x [*lead, B, L, D]`` -> ``[*lead, B, L, D]``; ``after`` (a neuron, "post" placement) follows W2.

        ``spike_rates`` ("pre" | "post" | None) tells the accounting which spikes rate each expert matmul."""
        *lead, b, length, d = x.shape
        n, e = b * length, self.experts
        if router_input is None:
            router_input = x.mean(tuple(range(len(lead)))) if lead else x
        r_in = router_input.reshape(n, d).astype(jnp.float32)
        logits = self.router(r_in)  # [N, E] float32
        use_bias = self.balance == "bias"
        r = route(logits, top_k=self.top_k, capacity_factor=self.capacity_factor,
                  bias=self.bias[...] if use_bias else None)
        cap = capacity(n, e, self.top_k, self.capacity_factor)
        xf = x.reshape(*lead, n, d)
        dt = self.dtype or x.dtype
        slot = jnp.where(r.kept, r.expert_index * cap + r.position, e * cap)  # [N, k]; e·cap = dropped
        owner = jnp.full((e * cap + 1,), n, jnp.int32).at[slot.reshape(-1)].set(
            jnp.repeat(jnp.arange(n, dtype=jnp.int32), self.top_k))[: e * cap]
        used = (owner < n).reshape(e, cap)  # [E, C]: the slot holds a token
        gates = (r.gates * r.kept).astype(dt)
        if self.dispatch == "gather":
            xd = gather_rows(xf, owner, slot).reshape(*lead, e, cap, d)
        else:
            combine = (jax.nn.one_hot(slot, e * cap, dtype=dt) * gates[..., None]).sum(1).reshape(n, e, cap)
            xd = jnp.einsum("nec,...nd->...ecd", (combine > 0).astype(dt), xf.astype(dt))
        mask = used.astype(dt)[..., None]
        w1, w2 = self.w1[...].astype(dt), self.w2[...].astype(dt)
        cur = jnp.einsum("...ecd,edh->...ech", xd.astype(dt), w1) + self.b1[...].astype(dt)[:, None]
        hidden = (activation(cur, slots=used) if isinstance(activation, Neuron) else activation(cur)) * mask
        yd = jnp.einsum("...ech,ehd->...ecd", hidden, w2) + self.b2[...].astype(dt)[:, None]
        if after is not None:
            yd = (after(yd, slots=used) if isinstance(after, Neuron) else after(yd)) * mask
        if self.dispatch == "gather":
            flat = slot.reshape(-1)  # assignment a = n·k + j -> its slot; and back: slot -> a (N·k: empty)
            assignment = jnp.full((e * cap + 1,), n * self.top_k, jnp.int32).at[flat].set(
                jnp.arange(n * self.top_k, dtype=jnp.int32))[: e * cap, None]
            z = gather_rows(yd.reshape(*lead, e * cap, d), flat, assignment).reshape(*lead, n, self.top_k, d)
            y = (z * gates[..., None]).sum(-2)  # [*lead, N, D]
        else:
            y = jnp.einsum("nec,...ecd->...nd", combine, yd)
        self._record(r, logits, r_in, xd, hidden, yd, used, spike_rates, isinstance(activation, Neuron))
        return y.reshape(x.shape).astype(x.dtype)

    def _record(self, r: Routing, logits, r_in, xd, hidden, yd, used, spike_rates, spiking_act):
        """Aux losses and routing statistics (``MoEStats``), the accounting's tensors (``Trace``), the bias step."""
        load = expert_load(r.expert_index, self.experts)
        if self.balance == "bias" and not self.deterministic:  # DeepSeek-V3's update, outside the optimizer
            self.bias[...] = self.bias[...] + self.bias_rate * jnp.sign(load.mean() - load)
        balance = load_balance_loss(r.probs, r.expert_index, self.experts)
        z = router_z_loss(logits)
        aux = (self.balance_weight * balance if self.balance == "loss" else 0.0) + self.z_loss_weight * z
        if hasattr(self, "__captures__"):  # only under nnx.capture (see spiking.layers.trace)
            self.sow(MoEStats, "aux_loss", aux)
            self.sow(MoEStats, "balance_loss", balance)
            self.sow(MoEStats, "z_loss", z)
            self.sow(MoEStats, "load", load)
            self.sow(MoEStats, "dropped", 1.0 - r.kept.mean())
        rates = {}
        if spike_rates == "pre":
            rates = {"w1_rate": {"inputs": xd, "slots": used}, "w2_rate": {"inputs": hidden, "slots": used}}
        elif spike_rates == "post":
            rates = {"w1_rate": {"inputs": hidden, "slots": used}, "w2_rate": {"inputs": yd, "slots": used}}
        gelu = {} if spiking_act else {"gelu": {"inputs": hidden, "slots": used}}
        trace(self, router=r_in, w1={"inputs": xd, "slots": used}, w2={"inputs": hidden, "slots": used},
              **gelu, **rates)
