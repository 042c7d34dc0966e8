"""Operation, energy and memory-traffic accounting for spiking and dense networks, from measured tensors.

Words (DESIGN.md): MAC = multiply-accumulate; AC = accumulate only (a binary spike selects a weight row);
SOP = synaptic operation = spikes × fan-out, summed over time (one AC each). Energies are named constants with
their sources. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, pp. 10-14,
Figure 1.1.9 ("rough energy costs for various operations", 45 nm, 0.9 V) — read through two independent
reproductions of that figure, not the paper's own PDF:
* ``MULTIPLY_PJ``: float32 3.7, float16 1.1, int8 0.2 (int32 3.1, unused); ``ADD_PJ``: float32 0.9, float16 0.4,
  int8 0.03, int32 0.1. The table has no bfloat16, fp8 or int4: bfloat16 is priced as float16 and int4 as int8
  (``PRICED_AS``; upper bounds, both narrower formats). fp8 weights are never multiplied here (see below).
* ``SRAM_8KB`` / ``SRAM_32KB`` / ``SRAM_1MB``: 10 / 20 / 100 pJ per 64-bit access; ``DRAM``: 1.3 nJ per 64-bit
  access (the low end of the figure's 1.3-2.6 nJ). Writes are priced as reads.
* ``CMOS_45NM`` (the published convention): E_MAC = 4.6 pJ (3.7 + 0.9), E_AC = 0.9 pJ, as SpikeGPT (Zhu et al.
  2023) and Spikformer (Zhou et al. 2023, ICLR) use them. ``LOIHI``: 23.6 pJ per synaptic spike op (min), 14 nm
  (Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1):82-99,
  2018, Table 1).

A network is described by *sites*: one per matmul (or other costed op), each a dict of scalars (numpy or jax)
  ``macs``     dense multiply-accumulates the op performs on the evaluated batch (all timesteps),
  ``acs``      accumulates if its input is binary: input spikes × fan-out, summed over time (measured),
  ``macs_nz``, ``acs_nz``  the same counting only nonzero weights (a zeroed, pruned weight costs nothing),
  ``binary``   1 if the operand it reads is a binary spike tensor (checked on the values), else 0,
  ``spiking``  1 if the published convention prices it as a spiking layer, else 0 (embedding, head, norms: 0),
  ``rate_nnz``, ``rate_size``  spikes and neurons of the spike tensor whose firing rate the convention uses,
  ``neuron``   1 for neuron membrane updates (one MAC per neuron-step), else 0,
  ``inputs``, ``outputs``  activation elements the op reads and writes (memory traffic),
  ``weights``, ``weights_all``  nonzero / all weights read, once per token (summed over the batch's tokens; a
               mixture of experts: only the experts each token used), ``biases`` bias elements read likewise,
  ``channels`` output channels per token (one per-channel quantisation scale read each).
Sites are built outside the forward pass (``spiking.sites``, whose names this module re-exports): a model sows the tensors the counting needs as ``spiking.layers.Trace``
variables, ``capture_sites(model, tokens)`` runs ``nnx.capture`` and ``sites`` turns what was sown into sites.
Sites merge one way (``merge_sites``), within a forward and over evaluation batches (``add_sites``); then
``account`` turns them into four accountings, per token (picojoules):

(a) published (Spikformer eq. for SOPs, SpikeGPT sec. 4), as the papers define it, always at float32: a spiking
    layer costs firing rate × ``macs`` × E_AC; non-spiking sites cost ``macs`` × E_MAC. ``energy_published_pj``
    also prices norms and neuron updates at E_MAC; ``energy_papers_pj`` leaves neuron updates out, as they do.
(b) strict, at the precision the model runs at (``Formats``, from ``model_formats(model)``): a site whose operand
    really is binary costs ``acs_nz`` × the add of its accumulator; every other site costs ``macs_nz`` × (the
    multiply in its operands' format + the add of its accumulator). Float formats accumulate in float32 (as
    tensor cores and TPU MXUs do, and as one must over long sums; ``ACCUMULATOR``); int8/int4 weights reading
    int8 activations or binary spikes (exact integers) accumulate in int32, plus one float32 multiply per output
    to rescale the int32 sum and one per float input quantised to int8 (Jacob et al. 2018, CVPR, §2.2). Weights
    quantised but multiplied with float inputs (``activations="none"``; any fp8) are dequantised: the MAC is in
    the compute format, plus one multiply per output for the per-channel scale. Embedding lookups, norms,
    softmax, neuron membranes and the router stay float32 in every model (``spiking.lm``), so they are priced
    as float32 MACs. The same counts are also priced on Loihi: SOPs × E_SOP, the rest as in (b).
(c) with memory (what no published accounting includes): (b) plus every weight read and every activation
    written and read, priced at ``sram`` (default the 8 KB SRAM: the cheapest level, so the memory share is a
    lower bound) and, separately, at ``dram``. Weights are read once per token (batch-1 decoding; a spiking
    model's T steps reuse the read, as its one time-folded matmul does) at the format they are multiplied in
    (float32 / the 16-bit compute dtype / the quantised format, plus float32 biases and scales); a pruned matrix
    is stored sparse when that is smaller: nonzeros plus a bitmask of 1 bit per weight (unstructured) or
    log2(m) bits per kept weight (n:m; 2:4 is NVIDIA's 2-bit index). Activations: each op's inputs are read and
    outputs written at their format (binary spikes 1 bit, int8 inputs 1 byte, else the compute dtype; norms,
    membranes float32); attention reads Q and, per query, the causal K and V rows (the decode-time KV cache);
    attention scores and softmax stay on-chip (a fused kernel, as FlashAttention). Norm gains and neuron
    parameters (< 1% of the weights) are left out.
(d) dense: the matched dense transformer's MACs × E_MAC at float32 (``dense_lm_macs`` counts them analytically).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from spiking.lm import block_linears
from spiking.sites import (  # noqa: F401 (re-exported)
    ELEMENTWISE,
    MIN_FIELDS,
    SITE_FIELDS,
    add_sites,
    capture_sites,
    causal_matmul_site,
    complete_site,
    elementwise_site,
    expert_site,
    gather_site,
    is_binary,
    linear_site,
    merge_sites,
)


class EnergyModel(NamedTuple):
    """Energy per operation in picojoules, with the source of the figures."""

    name: str
    e_mac_pj: float
    e_ac_pj: float
    source: str


class MemoryModel(NamedTuple):
    """Energy of one 64-bit access in picojoules, with its source."""

    name: str
    pj_per_64bit: float
    source: str


HOROWITZ = "Horowitz, ISSCC 2014, p. 10-14, Fig. 1.1.9 (45 nm, 0.9 V)"
CMOS_45NM = EnergyModel("45nm", 4.6, 0.9, "Horowitz, ISSCC 2014: fp32 MAC 4.6 pJ, fp32 add 0.9 pJ at 45 nm")
LOIHI = EnergyModel("loihi", 4.6, 23.6, "Davies et al., IEEE Micro 38(1) 2018, Table 1: 23.6 pJ per synaptic "
                    "spike op (min), 14 nm; non-spike ops priced at 45 nm MACs")
MULTIPLY_PJ = {"float32": 3.7, "float16": 1.1, "int8": 0.2, "int32": 3.1}  # HOROWITZ
ADD_PJ = {"float32": 0.9, "float16": 0.4, "int8": 0.03, "int32": 0.1}  # HOROWITZ
PRICED_AS = {"bfloat16": "float16", "int4": "int8"}  # formats the table lacks, priced as the next wider one
ACCUMULATOR = {"float32": "float32", "bfloat16": "float32", "float16": "float32", "int8": "int32"}
BITS = {"float32": 32, "bfloat16": 16, "float16": 16, "int8": 8, "fp8": 8, "int4": 4, "binary": 1}
INTEGER = ("int8", "int4")
SRAM_8KB = MemoryModel("sram_8kb", 10.0, HOROWITZ + ": 64-bit cache access, 8 KB")
SRAM_32KB = MemoryModel("sram_32kb", 20.0, HOROWITZ + ": 64-bit cache access, 32 KB")
SRAM_1MB = MemoryModel("sram_1mb", 100.0, HOROWITZ + ": 64-bit cache access, 1 MB")
DRAM = MemoryModel("dram", 1300.0, HOROWITZ + ": 64-bit DRAM access, 1.3-2.6 nJ (low end)")


class Formats(NamedTuple):
    """The number formats a model runs at (see the module text; ``model_formats`` reads them off a model).

    ``compute``: the dtype of its Linears and attention ("float32" | "bfloat16" | "float16"); ``weights`` /
    ``activations``: the post-training quantisation of the sites named in ``quantised`` ("none" = not quantised;
    "int8" | "fp8" | "int4" / "none" | "int8"); ``pattern``: "" or the pruning pattern "n:m" (the index cost).
    """

    compute: str = "float32"
    weights: str = "none"
    activations: str = "none"
    quantised: frozenset = frozenset()
    pattern: str = ""


FLOAT32 = Formats()  # every model that is neither 16-bit nor quantised


def model_formats(model) -> Formats:
    """The ``Formats`` of an LM of ``spiking.lm``: its ``dtype``, and ``precision`` / ``post_info["prune"]`` as
    ``spiking.quantize`` and ``spiking.prune`` record them on a transformed copy (float32, unquantised if absent)."""
    precision = dict(getattr(model, "precision", None) or {})
    quantised = frozenset()
    if precision and hasattr(model, "blocks"):
        quantised = frozenset(".".join(str(p) for p in (path[:-1] if path[-1] == "linear" else path))
                              for path in block_linears(model))
    prune = dict(dict(getattr(model, "post_info", None) or {}).get("prune", None) or {})
    return Formats(str(getattr(model, "dtype", "float32")), precision.get("weights", "none"),
                   precision.get("activations", "none"), quantised, str(prune.get("pattern", "")))


def _mul(fmt: str) -> float:
    return MULTIPLY_PJ[PRICED_AS.get(fmt, fmt)]


def _add(fmt: str) -> float:
    return ADD_PJ[PRICED_AS.get(fmt, fmt)]


def price_site(name: str, site: dict, formats: Formats = FLOAT32, *, accumulator=ACCUMULATOR) -> dict:
    """One site's strict energy at its formats (module text, (b) and (c)): ``{"ops_pj", "extra_pj",
    "weight_bits", "activation_bits"}`` — ``ops_pj`` the MACs or ACs, ``extra_pj`` the quantisation rescales."""
    s = {f: float(v) for f, v in complete_site(site).items()}
    binary = s["binary"] > 0.5
    has_weights = s["weights_all"] > 0
    if not has_weights and name.rsplit(".", 1)[-1] not in ("qk", "av"):  # float32 elementwise ops
        return {"ops_pj": s["macs_nz"] * (_mul("float32") + _add("float32")), "extra_pj": 0.0, "weight_bits": 0.0,
                "activation_bits": (s["inputs"] + s["outputs"]) * BITS["float32"]}
    compute = "float32" if name == "embed" or "router" in name else formats.compute
    quantised = name in formats.quantised and formats.weights != "none"
    w = formats.weights if quantised else compute
    x = "int8" if quantised and formats.activations == "int8" else compute
    integer = has_weights and w in INTEGER and (binary or x == "int8")
    mul, acc = ("int8", "int32") if integer else (compute, accumulator[compute])
    ops = s["acs_nz"] * _add(acc) if binary else s["macs_nz"] * (_mul(mul) + _add(acc))
    extra = s["outputs"] * _mul("float32" if integer else compute) if quantised else 0.0  # per-output rescale
    if x == "int8" and not binary:
        extra += s["inputs"] * _mul("float32")  # each float input quantised to int8
    wb = BITS[w]
    dense = s["weights_all"] * wb
    if s["weights"] < s["weights_all"]:  # zeros: store sparse when smaller (nonzeros + index)
        pattern = formats.pattern
        index = s["weights"] * math.ceil(math.log2(int(pattern.split(":")[1]))) if pattern else s["weights_all"]
        dense = min(dense, s["weights"] * wb + index)
    weight_bits = dense + s["biases"] * (BITS["float32"] if quantised else BITS[compute])
    weight_bits += s["channels"] * BITS["float32"] if quantised else 0.0  # per-channel scales
    in_bits = BITS["binary"] if binary else BITS[x]
    return {"ops_pj": ops, "extra_pj": extra, "weight_bits": weight_bits,
            "activation_bits": s["inputs"] * in_bits + s["outputs"] * BITS[compute]}


SERVER_BATCH = 32  # the server reading of memory traffic: a weight read once per batch of 32 tokens


def account(sites: dict, tokens: float, *, cmos: EnergyModel = CMOS_45NM, neuro: EnergyModel = LOIHI,
            dense_macs_per_token: float | None = None, formats: Formats | None = None,
            sram: MemoryModel = SRAM_8KB, dram: MemoryModel = DRAM) -> dict[str, float]:
    """The four accountings from summed sites, per token (picojoules), plus per-site firing rates and counts.

    Returns flat metrics: ``rate/<site>``, ``macs_per_token`` and ``acs_per_token`` (strict: nonzero weights
    only), ``energy_published_pj``, ``energy_papers_pj``, ``energy_strict_pj`` (at ``formats``, default
    float32), ``energy_strict_loihi_pj``, ``weight_bytes_per_token``, ``activation_bytes_per_token``,
    ``energy_with_memory_sram_pj`` / ``_dram_pj`` and ``memory_share_sram`` / ``_dram`` (memory's share of
    them; weights read once per token, batch-1 decoding: an edge device, a neuromorphic chip),
    ``energy_with_memory_sram_b32_pj`` / ``_dram_b32_pj`` (weights read once per batch of ``SERVER_BATCH`` tokens,
    activations per token: a server), ``energy_dense_pj`` and the ratios ``ratio_*_vs_dense`` when ``dense_macs_per_token`` is given, and
    ``firing_rate`` (over all spiking sites).
    """
    formats = formats or FLOAT32
    out: dict[str, float] = {}
    pub = strict = loihi = weight_bits = act_bits = 0.0
    strict_macs = strict_acs = dense_macs = neuron_macs = 0.0
    spikes = neurons = 0.0
    for name, s in sites.items():
        s = complete_site(s)
        macs = float(s["macs"])
        binary, spiking = float(s["binary"]) > 0.5, float(s["spiking"]) > 0.5
        rate = float(s["rate_nnz"]) / float(s["rate_size"]) if float(s["rate_size"]) > 0 else 0.0
        dense_macs += macs
        if float(s["neuron"]) > 0.5:
            neuron_macs += macs
        if float(s["rate_size"]) > 0:
            out[f"rate/{name}"] = rate
            spikes += float(s["rate_nnz"])
            neurons += float(s["rate_size"])
        pub += rate * macs * cmos.e_ac_pj if spiking else macs * cmos.e_mac_pj
        p = price_site(name, s, formats)
        strict += p["ops_pj"] + p["extra_pj"]
        weight_bits += p["weight_bits"]
        act_bits += p["activation_bits"]
        if binary:
            strict_acs += float(s["acs_nz"])
            loihi += float(s["acs_nz"]) * neuro.e_ac_pj + p["extra_pj"]
        else:
            strict_macs += float(s["macs_nz"])
            loihi += p["ops_pj"] + p["extra_pj"]
    per = 1.0 / float(tokens)
    words = (weight_bits + act_bits) / 64.0 * per  # 64-bit accesses per token
    strict *= per
    out.update(
        firing_rate=spikes / neurons if neurons else 0.0,
        macs_per_token=strict_macs * per,
        acs_per_token=strict_acs * per,
        all_ops_as_macs_per_token=dense_macs * per,
        energy_published_pj=pub * per,
        energy_papers_pj=(pub - neuron_macs * cmos.e_mac_pj) * per,
        neuron_macs_per_token=neuron_macs * per,
        energy_strict_pj=strict,
        energy_strict_loihi_pj=loihi * per,
        weight_bytes_per_token=weight_bits / 8.0 * per,
        activation_bytes_per_token=act_bits / 8.0 * per,
    )
    served = (weight_bits / SERVER_BATCH + act_bits) / 64.0 * per  # a weight read serves a batch of tokens
    for level, mem in (("sram", sram), ("dram", dram)):
        memory = words * mem.pj_per_64bit
        out[f"energy_with_memory_{level}_pj"] = strict + memory
        out[f"memory_share_{level}"] = memory / (strict + memory) if strict + memory > 0 else 0.0
        out[f"energy_with_memory_{level}_b{SERVER_BATCH}_pj"] = strict + served * mem.pj_per_64bit
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
