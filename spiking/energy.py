"""Operation and energy accounting for spiking and dense networks, from measured spike tensors.

Words (DESIGN.md): MAC = multiply-accumulate; AC = accumulate only (a binary spike selects a weight row);
SOP = synaptic operation = spikes × fan-out, summed over time (one AC each). Energies per op are named constants
with their sources:

* 45 nm CMOS, fp32 (Horowitz, "Computing's energy problem", ISSCC 2014, p. 10-14): E_MAC = 4.6 pJ (3.7 pJ
  multiply + 0.9 pJ add), E_AC = 0.9 pJ. These are the constants SpikeGPT (Zhu et al. 2023) and Spikformer
  (Zhou et al. 2023, ICLR) use.
* Neuromorphic: Intel Loihi, 14 nm, minimum energy per synaptic spike operation 23.6 pJ (Davies et al., "Loihi: a
  neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1):82-99, 2018, Table 1).

A network is described by *sites*: one per matmul (or per other costed op), each a dict of scalars (numpy or jax)
  ``macs``     dense multiply-accumulates the op performs on the evaluated batch (all timesteps),
  ``acs``      accumulates if its input is binary: input spikes × fan-out, summed over time (measured),
  ``binary``   1 if the operand it reads is a binary spike tensor (checked on the values), else 0,
  ``spiking``  1 if the published convention prices it as a spiking layer, else 0 (embedding, head, norms: 0),
  ``rate_nnz``, ``rate_size``  spikes and neurons of the spike tensor whose firing rate the convention uses
               (the layer's input spikes, or for "post" placement the spikes right after the layer),
  ``neuron``   1 for neuron membrane updates (one MAC per neuron-step), else 0.
Sites are built outside the forward pass: a model sows the tensors the counting needs as ``spiking.layers.Trace``
variables (each Linear's input, the spikes whose rate the convention uses, attention operands, norm outputs,
routing decisions), ``capture_sites(model, tokens)`` runs ``nnx.capture`` and ``sites`` turns what was sown into
sites (the names it understands are listed in ``sites``). Sites merge one way (``merge_sites``), within a forward
and over evaluation batches (``add_sites``); then ``account`` turns them into three accountings:

(a) published (Spikformer eq. for SOPs, SpikeGPT sec. 4): a spiking layer costs firing rate × MACs(one timestep)
    × T × E_AC = rate × ``macs`` × E_AC; non-spiking sites cost ``macs`` × E_MAC. ("FLOPs" in those papers are
    multiply-accumulate counts.) ``energy_published_pj`` also prices norms and neuron membrane updates at E_MAC;
    ``energy_papers_pj`` leaves the neuron updates out, as those papers do (``neuron_macs_per_token`` says how many).
(b) strict: a site whose operand really is binary costs its measured ``acs`` × E_AC; every other site (float
    matmuls, attention on floats, embedding, norms, head, neuron membrane updates) costs ``macs`` × E_MAC. The same
    op counts are also priced on Loihi: SOPs × E_SOP + the remaining MACs at 45 nm.
(c) dense: the matched dense transformer's MACs × E_MAC (``dense_lm_macs`` counts them analytically).
All energies are reported per token (divide by the number of predicted tokens).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spiking.layers import Trace


class EnergyModel(NamedTuple):
    """Energy per operation in picojoules, with the source of the figures."""

    name: str
    e_mac_pj: float
    e_ac_pj: float
    source: str


CMOS_45NM = EnergyModel("45nm", 4.6, 0.9, "Horowitz, ISSCC 2014: fp32 MAC 4.6 pJ, fp32 add 0.9 pJ at 45 nm")
LOIHI = EnergyModel("loihi", 4.6, 23.6, "Davies et al., IEEE Micro 38(1) 2018, Table 1: 23.6 pJ per synaptic "
                    "spike op (min), 14 nm; non-spike ops priced at 45 nm MACs")
SITE_FIELDS = ("macs", "acs", "binary", "spiking", "rate_nnz", "rate_size", "neuron")
MIN_FIELDS = ("binary", "spiking", "neuron")  # flags: a site keeps the minimum when summed


def is_binary(x) -> jnp.ndarray:
    """1.0 if every element of ``x`` is 0 or 1, else 0.0 (checked on the values, not assumed)."""
    return jnp.all((x == 0) | (x == 1)).astype(jnp.float32)


def linear_site(x, fan_out: int, *, spiking: bool, rate_from=None) -> dict:
    """Counts for ``x @ W`` with ``x [..., fan_in]`` (all timesteps folded in) and ``W [fan_in, fan_out]``.

    MACs = rows × fan_in × fan_out; ACs = nonzeros(x) × fan_out (= SOPs when ``x`` is binary).
    ``rate_from`` is the spike tensor whose firing rate the published convention uses (default ``x``).
    """
    return dict(
        macs=jnp.asarray(x.size * fan_out, jnp.float32),
        acs=jnp.count_nonzero(x).astype(jnp.float32) * fan_out,
        binary=is_binary(x),
        neuron=jnp.asarray(0.0, jnp.float32),
        **_rate(x if rate_from is None else rate_from, spiking),
    )


def _rate(spikes, spiking: bool) -> dict:
    """The convention's firing-rate fields; zero (no rate) for a site that is not a spiking layer."""
    if not spiking:
        z = jnp.asarray(0.0, jnp.float32)
        return {"spiking": z, "rate_nnz": z, "rate_size": z}
    return {"spiking": jnp.asarray(1.0, jnp.float32), "rate_nnz": jnp.count_nonzero(spikes).astype(jnp.float32),
            "rate_size": jnp.asarray(spikes.size, jnp.float32)}


def causal_matmul_site(a, b_dim: int, *, spiking: bool, rate_from=None, query_side: bool = True) -> dict:
    """Counts for one causal attention product (only the unmasked lower triangle is counted as work).

    ``a [..., L, d]`` is the operand whose values decide AC vs MAC. For ``query_side`` (scores = Q K^T, ``a`` = Q,
    ``d`` = head dim, ``b_dim`` unused): query ``i`` meets ``i + 1`` keys, so MACs = Σ_i (i+1) d and each nonzero
    of row ``i`` feeds ``i + 1`` outputs. Otherwise (out = S V, ``a`` = V ``[..., L, d]``): key ``j`` is read by
    ``L - j`` queries, MACs = Σ_j (L - j) d, each nonzero of row ``j`` feeds ``L - j`` outputs.
    """
    length, d = a.shape[-2], a.shape[-1]
    n_mats = a.size // (length * d)
    pos = np.arange(length, dtype=np.float64)
    fan = pos + 1.0 if query_side else length - pos
    nnz_rows = jnp.count_nonzero(a, axis=-1).astype(jnp.float32).reshape(-1, length).sum(0)
    return dict(
        macs=jnp.asarray(n_mats * float(fan.sum()) * d, jnp.float32),
        acs=(nnz_rows * jnp.asarray(fan, jnp.float32)).sum(),
        binary=is_binary(a),
        neuron=jnp.asarray(0.0, jnp.float32),
        **_rate(a if rate_from is None else rate_from, spiking),
    )


def elementwise_site(x, macs_per_element: float, *, neuron: bool = False) -> dict:
    """A float elementwise op on ``x`` (an array, or its element count) priced as MACs (norms: 2 per element;
    ``neuron=True``: membrane updates, 1 per neuron-step)."""
    z = jnp.asarray(0.0, jnp.float32)
    size = x if isinstance(x, int) else x.size
    return {"macs": jnp.asarray(size * macs_per_element, jnp.float32), "acs": z, "binary": z, "spiking": z,
            "rate_nnz": z, "rate_size": z, "neuron": jnp.asarray(float(neuron), jnp.float32)}


def merge_sites(a: dict, b: dict) -> dict:
    """One site from two (summed field by field; the flags in ``MIN_FIELDS`` keep the minimum)."""
    mn = jnp.minimum if any(isinstance(v, jax.Array) for v in (*a.values(), *b.values())) else np.minimum
    return {f: (mn(a[f], b[f]) if f in MIN_FIELDS else a[f] + b[f]) for f in SITE_FIELDS}


def add_sites(total: dict | None, sites: dict) -> dict:
    """Sum two ``{name: site}`` dicts (over evaluation batches) with ``merge_sites``, as float64 numpy."""
    sites = {k: {f: np.asarray(v[f], np.float64) for f in SITE_FIELDS} for k, v in sites.items()}
    if total is None:
        return sites
    return {k: merge_sites(total[k], v) if k in total else v for k, v in sites.items()}


ELEMENTWISE = {"layernorm": 2.0, "scale": 1.0, "gelu": 1.0, "mean": 1.0}  # float MACs per element


def _fan_out(owner, name):
    """The output width of the Linear (or ``[in, out]`` / ``[E, in, out]`` kernel) at ``owner.name``, or None."""
    attr = getattr(owner, name, None)
    kernel = getattr(attr, "kernel", attr)
    if isinstance(kernel, nnx.Variable) and kernel.ndim in (2, 3):
        return kernel.shape[-1]
    return None


def _site(owner, name: str, value, rate):
    """The site of one sown ``value`` (see ``sites``); ``rate`` is the sown ``<name>_rate`` entry or None."""
    used = None
    if isinstance(value, dict):  # mixture-of-experts capacity buffers: count only the slots holding a token
        used, value = value["slots"].astype(jnp.float32).mean(), value["inputs"]
    rate = rate["inputs"] if isinstance(rate, dict) else rate
    spiking = rate is not None
    fan_out = _fan_out(owner, name)
    if fan_out is not None:
        site = linear_site(value, fan_out, spiking=spiking, rate_from=rate)
    elif name in ("qk", "av"):  # attention operands [..., L, H, d]
        site = causal_matmul_site(jnp.swapaxes(value, -2, -3), 0, spiking=spiking, query_side=name == "qk",
                                  rate_from=None if rate is None else jnp.swapaxes(rate, -2, -3))
    elif name == "softmax":  # one op per unmasked causal score of the queries [..., L, H, d]
        length, d = value.shape[-3], value.shape[-1]
        site = elementwise_site(value.size // (length * d) * length * (length + 1) // 2, 1.0)
    elif name == "neuron":
        site = elementwise_site(value, 1.0, neuron=True)
    elif name in ELEMENTWISE:
        site = elementwise_site(value, ELEMENTWISE[name])
    else:
        raise ValueError(f"trace: {name!r} on {type(owner).__name__} is not a name spiking.energy.sites understands")
    if used is not None:  # empty slots are zeros (no AC), and their dense-equivalent work is not counted
        site["macs"] = site["macs"] * used
        site["rate_size"] = site["rate_size"] * used
    return site


def sites(model: nnx.Module, traces) -> dict:
    """Sites ``{"<module path>.<name>": site}`` from the ``Trace`` state that ``nnx.capture(model, Trace)`` returned.

    Names a module may sow (each value an array, or a tuple of arrays summed into one site):
      ``<attr>`` where ``module.<attr>`` is a Linear (or a ``[in, out]`` kernel): the Linear's input ``[..., in]``;
        for an ``[E, in, out]`` expert kernel the capacity buffers ``[..., E, C, in]``;
      any value may be ``{"inputs": tensor, "slots": [E, C] bool}``: a mixture of experts' capacity buffers, of
        which only the slots holding a token are counted as work (so only the experts a token used count);
      ``<name>_rate``: the spike tensor whose firing rate the published convention prices ``<name>`` by; a site
        with no ``_rate`` entry is not a spiking layer under that convention;
      ``qk`` / ``av``: queries / values ``[..., L, H, d]`` of a causal attention (``causal_matmul_site``);
      ``softmax``: the queries ``[..., L, H, d]`` of a softmax attention (one op per unmasked score);
      ``neuron``: input currents of a neuron, one membrane update (MAC) per neuron-step;
      ``layernorm`` (2 MACs per element), ``scale``, ``gelu``, ``mean`` (1 each): float elementwise ops.
    """
    modules = dict(nnx.iter_modules(model))
    out: dict = {}
    flat = {path: v.get_value() for path, v in nnx.to_flat_state(traces)}
    for path, values in flat.items():
        *where, name = path
        if name.endswith("_rate"):
            continue
        owner = modules[tuple(where)]
        rates = flat.get((*where, name + "_rate"), (None,) * len(values))
        key = ".".join(str(p) for p in path)
        for value, rate in zip(values, rates):  # one entry per sow; a tuple value holds several tensors
            value = value if isinstance(value, tuple) else (value,)
            rate = rate if isinstance(rate, tuple) else (rate,) * len(value)
            for v, r in zip(value, rate):
                site = _site(owner, name, v, r)
                out[key] = merge_sites(out[key], site) if key in out else site
    return out


def capture_sites(model: nnx.Module, *args, **kwargs) -> dict:
    """``model(*args, **kwargs)`` under ``nnx.capture`` and the sites of what it sowed (call it inside ``jax.jit``)."""
    _, traces = nnx.capture(model, Trace)(*args, **kwargs)
    return sites(model, traces)


def account(sites: dict, tokens: float, *, cmos: EnergyModel = CMOS_45NM, neuro: EnergyModel = LOIHI,
            dense_macs_per_token: float | None = None) -> dict[str, float]:
    """The three accountings from summed sites, per token (picojoules), plus per-site firing rates and counts.

    Returns flat metrics: ``rate/<site>``, ``macs_per_token``, ``acs_per_token`` (strict SOPs),
    ``energy_published_pj``, ``energy_strict_pj``, ``energy_strict_loihi_pj``, ``energy_dense_pj`` and the ratios
    ``ratio_*_vs_dense`` when ``dense_macs_per_token`` is given, and ``firing_rate`` (over all spiking sites).
    """
    out: dict[str, float] = {}
    pub = strict = loihi = 0.0
    strict_macs = strict_acs = dense_macs = neuron_macs = 0.0
    spikes = neurons = 0.0
    for name, s in sites.items():
        macs, acs = float(s["macs"]), float(s["acs"])
        binary, spiking = float(s["binary"]) > 0.5, float(s["spiking"]) > 0.5
        rate = float(s["rate_nnz"]) / float(s["rate_size"]) if float(s["rate_size"]) > 0 else 0.0
        dense_macs += macs
        if float(s.get("neuron", 0.0)) > 0.5:
            neuron_macs += macs
        if float(s["rate_size"]) > 0:
            out[f"rate/{name}"] = rate
            spikes += float(s["rate_nnz"])
            neurons += float(s["rate_size"])
        pub += rate * macs * cmos.e_ac_pj if spiking else macs * cmos.e_mac_pj
        if binary:
            strict_acs += acs
            strict += acs * cmos.e_ac_pj
            loihi += acs * neuro.e_ac_pj
        else:
            strict_macs += macs
            strict += macs * cmos.e_mac_pj
            loihi += macs * neuro.e_mac_pj
    per = 1.0 / float(tokens)
    out.update(
        firing_rate=spikes / neurons if neurons else 0.0,
        macs_per_token=strict_macs * per,
        acs_per_token=strict_acs * per,
        all_ops_as_macs_per_token=dense_macs * per,
        energy_published_pj=pub * per,
        energy_papers_pj=(pub - neuron_macs * cmos.e_mac_pj) * per,
        neuron_macs_per_token=neuron_macs * per,
        energy_strict_pj=strict * per,
        energy_strict_loihi_pj=loihi * per,
    )
    if dense_macs_per_token is not None:
        dense = dense_macs_per_token * cmos.e_mac_pj
        out["energy_dense_pj"] = dense
        for k in ("published", "papers", "strict", "strict_loihi"):
            out[f"ratio_{k}_vs_dense"] = out[f"energy_{k}_pj"] / dense
    return out


def dense_lm_macs(width: int, depth: int, seq_len: int, *, heads: int = 4, mlp_ratio: int = 4,
                  vocab: int = 256) -> float:
    """MACs per token of the pre-LayerNorm causal transformer ``DenseLM`` (analytic, counted as in ``account``).

    Per layer and token: Q, K, V, O projections 4 D²; MLP 2 r D²; causal attention (Q K^T and S V) 2 D (L+1)/2 on
    average over positions; softmax H (L+1)/2 (one op per unmasked score); two LayerNorms 2 × 2 D; GELU r D.
    Plus the final LayerNorm 2 D and the head D × vocab. The embedding lookup is a gather and costs no MAC;
    residual additions are not counted (in any model).
    """
    d = float(width)
    per_layer = (4 * d * d + 2 * mlp_ratio * d * d + 2 * d * (seq_len + 1) / 2.0 + heads * (seq_len + 1) / 2.0
                 + 4 * d + mlp_ratio * d)
    return depth * per_layer + 2 * d + d * vocab
