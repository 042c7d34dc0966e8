"""What the LM hooks measure on a model over evaluation batches: energy per token under every accounting
(``measure_energy``, with ``active_params`` for 6ND compute), mixture-of-experts routing (``measure_routing``), and a
distilled student against its teacher (``measure_distill``). Pure of the runner: ``spiking.registry`` registers
them as the hooks ``spiking_energy``, ``moe_routing`` and ``distill``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from spiking import energy
from spiking.distill import Distill
from spiking.moe import MoEFeedForward, MoEStats

_SITES: dict = {}


def _sites_fn(graphdef):
    """The jitted ``(state, tokens) -> sites`` of one model structure: a closure, since a graph definition need not
    be hashable (a SpikingLM's neuron keeps a dict); cached by structure when it is."""
    fn = jax.jit(lambda state, tokens: energy.capture_sites(nnx.merge(graphdef, state), tokens))
    try:
        return _SITES.setdefault(graphdef, fn)
    except TypeError:
        return fn


def measure_energy(model, batches) -> dict[str, float]:
    """Run the accounting of ``spiking.energy`` for ``model`` over ``batches`` (``{"tokens": [B, L + 1]}``).

    Returns per-token figures (picojoules; strict and with memory at the model's precision, ``dtype`` and a
    transformed copy's ``precision`` / pruning read by ``energy.model_formats``), per-layer firing rates, the
    weight and activation bytes per token, ``active_params`` (``active_params``) and ``tokens_per_example``
    (for ``6 N D`` training compute), and the ratios to the matched dense model
    (``energy.dense_lm_macs`` of the same width, depth, heads, MLP ratio and evaluated sequence length; for a
    mixture of experts, MLP ratio × top_k: the dense model of equal active FLOPs per token).
    """
    graphdef, state = nnx.split(model)
    total, tokens, length, sites_fn = None, 0, None, _sites_fn(graphdef)
    for batch in batches:
        toks = jnp.asarray(batch["tokens"])[:, :-1]
        embed = energy.gather_site(toks.size, model.width, tables=2)  # token and position rows, read per token
        total = energy.add_sites(total, jax.device_get({**sites_fn(state, toks), "embed": embed}))
        tokens += toks.shape[0] * toks.shape[1]
        length = toks.shape[1]
    if total is None:
        return {}
    moe = [m for _, m in nnx.iter_modules(model) if isinstance(m, MoEFeedForward)]
    ratio = model.mlp_ratio * (moe[0].top_k if moe else 1)  # the dense model of equal active FLOPs per token
    dense = energy.dense_lm_macs(model.width, model.depth, length, heads=model.heads, mlp_ratio=ratio,
                                 vocab=model.vocab)
    out = energy.account(total, tokens, dense_macs_per_token=dense, formats=energy.model_formats(model))
    out["timesteps"] = float(getattr(model, "timesteps", 1))
    out.update(active_params=active_params(model), tokens_per_example=float(length))
    return {k: float(np.asarray(v)) for k, v in out.items()}


def active_params(model) -> float:
    """Kaplan et al.'s N for ``6 N D`` training compute: the parameters a token uses, embeddings left out (token
    and position tables) and, in a mixture of experts, the experts it is not routed to."""
    total = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    embed = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model.embed, nnx.Param)))
    idle = sum((m.experts - m.top_k) * m.expert_params() for _, m in nnx.iter_modules(model)
               if isinstance(m, MoEFeedForward))
    return float(total - embed - idle)


def model_flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) by PaLM's formula (Chowdhery et al. 2022, appendix B):
    ``6 N + 12 L H Q T`` with N the parameters a token's matmuls use (``active_params``: embeddings are gathers,
    a mixture of experts' idle experts do nothing), L blocks, H·Q = width, T = ``seq_len`` (attention's QKᵀ and
    AV, counted over the whole window as PaLM does). A spiking LM runs its blocks ``timesteps`` times (the head
    once, on the mean over time), so its block terms are multiplied by T_spike. Counted from the structure, never
    from a forward pass; the runner turns it into MFU (``experiments.runner.mfu``)."""
    n = active_params(model)
    head = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model.head, nnx.Param)))
    steps = float(getattr(model, "timesteps", 1))
    attention = 12.0 * model.depth * model.width * seq_len
    return 6.0 * ((n - head) * steps + head) + attention * steps


@functools.partial(jax.jit, static_argnums=0)
def _routing(graphdef, state, tokens):
    _, stats = nnx.capture(nnx.merge(graphdef, state), MoEStats)(tokens)
    return {path: v.get_value() for path, v in nnx.to_flat_state(stats) if path[-1] in ("load", "dropped")}


def measure_routing(model, batches) -> dict[str, float]:
    """Routing metrics of every ``MoEFeedForward`` in ``model`` over ``batches`` (``{"tokens": [B, L + 1]}``).

    Per layer ``<path>``: ``moe/<path>/load/<e>`` (share of the assignments expert ``e`` got, before drops),
    ``.../load_entropy`` (entropy of that load / log E: 1 is perfectly balanced), ``.../max_load`` (max / mean
    load), ``.../dropped`` (share of assignments past capacity); means over layers without the path; and
    ``params_total`` and ``params_active_per_token`` (the experts a token does not use left out). {} if no MoE.
    """
    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, MoEFeedForward)]
    if not layers:
        return {}
    graphdef, state = nnx.split(model)
    load, dropped, n = {}, {}, 0
    for batch in batches:
        out = jax.device_get(_routing(graphdef, state, jnp.asarray(batch["tokens"])[:, :-1]))
        for path, values in out.items():
            key = ".".join(map(str, path[:-1]))
            acc = load if path[-1] == "load" else dropped
            acc[key] = acc.get(key, 0.0) + np.asarray(values[0], np.float64)
        n += 1
    result: dict[str, float] = {}
    for key, total in load.items():
        share = total / n
        e = share.size
        for i, v in enumerate(share):
            result[f"moe/{key}/load/{i}"] = float(v)
        p = share[share > 0]
        result[f"moe/{key}/load_entropy"] = float(-(p * np.log(p)).sum() / math.log(e)) if e > 1 else 1.0
        result[f"moe/{key}/max_load"] = float(share.max() / share.mean())
        result[f"moe/{key}/dropped"] = float(dropped[key] / n)
    for name in ("load_entropy", "max_load", "dropped"):
        result[f"moe_{name}"] = float(np.mean([v for k, v in result.items() if k.endswith("/" + name)]))
    total = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    idle = sum((m.experts - m.top_k) * m.expert_params() for m in layers)
    result.update(params_total=float(total), params_active_per_token=float(total - idle))
    return result


def _per_token_time(module, batches, repeats: int = 3) -> float:
    """Seconds per token of ``module``'s jitted forward over ``batches`` (best of ``repeats``, after a warm-up)."""
    import time

    graphdef, state = nnx.split(module)
    fwd = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t))
    toks = [jnp.asarray(b["tokens"])[:, :-1] for b in batches]
    jax.block_until_ready(fwd(state, toks[0]))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in toks:
            jax.block_until_ready(fwd(state, t))
        best = min(best, time.perf_counter() - t0)
    return best / sum(t.size for t in toks)


def measure_distill(model: Distill, batches, unigram_bits: float) -> dict[str, float]:
    """Teacher and student bits/char over ``batches``, the share of the teacher's quality kept over the unigram
    baseline, and each model's inference time per token (same batches, same process, best of 3)."""
    @jax.jit
    def bits(state_s, state_t, tokens):
        m = nnx.merge(graphdef, state_s)
        t = nnx.merge(graphdef_t, state_t)
        out = []
        for lm in (m, t):
            logits = lm(tokens[:, :-1]).astype(jnp.float32)
            out.append(optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean() / math.log(2))
        return jnp.stack(out)

    graphdef, state = nnx.split(model.student)
    model.teacher.eval()
    graphdef_t, state_t = nnx.split(model.teacher)
    per = np.mean([np.asarray(bits(state, state_t, jnp.asarray(b["tokens"]))) for b in batches], axis=0)
    t_student, t_teacher = _per_token_time(model.student, batches), _per_token_time(model.teacher, batches)
    return {"student_bits_per_char": float(per[0]), "teacher_bits_per_char": float(per[1]),
            "teacher_quality_kept": float((unigram_bits - per[0]) / (unigram_bits - per[1])),
            "student_s_per_token": t_student, "teacher_s_per_token": t_teacher,
            "student_vs_teacher_time": t_student / t_teacher}
