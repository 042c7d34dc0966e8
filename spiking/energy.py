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
Sites are built outside the forward pass: a model sows the tensors the counting needs as ``spiking.layers.Trace``
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
SITE_FIELDS = ("macs", "acs", "binary", "spiking", "rate_nnz", "rate_size", "neuron", "macs_nz", "acs_nz",
               "inputs", "outputs", "weights", "weights_all", "biases", "channels")
MIN_FIELDS = ("binary", "spiking", "neuron")  # flags: a site keeps the minimum when summed


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
        from spiking.prune import block_linears  # the Linears quantize_lm quantises

        quantised = frozenset(".".join(str(p) for p in (path[:-1] if path[-1] == "linear" else path))
                              for path in block_linears(model))
    prune = dict(dict(getattr(model, "post_info", None) or {}).get("prune", None) or {})
    return Formats(str(getattr(model, "dtype", "float32")), precision.get("weights", "none"),
                   precision.get("activations", "none"), quantised, str(prune.get("pattern", "")))


def is_binary(x) -> jnp.ndarray:
    """1.0 if every element of ``x`` is 0 or 1, else 0.0 (checked on the values, not assumed)."""
    return jnp.all((x == 0) | (x == 1)).astype(jnp.float32)


def _f(v):
    return jnp.asarray(v, jnp.float32)


def linear_site(x, fan_out: int, *, spiking: bool, rate_from=None, kernel=None, bias: bool = True,
                tokens: int | None = None) -> dict:
    """Counts for ``x @ W`` with ``x [..., fan_in]`` (all timesteps folded in) and ``W [fan_in, fan_out]``.

    MACs = rows × fan_in × fan_out; ACs = nonzeros(x) × fan_out (= SOPs when ``x`` is binary); with ``kernel``
    (``W``) given, ``macs_nz`` = rows × nonzeros(W) and ``acs_nz`` = Σ_j nonzeros(x[..., j]) × nonzeros(W[j]).
    ``tokens``: how many tokens the rows belong to (default: one a row); each reads W (and ``bias``) once.
    ``rate_from`` is the spike tensor whose firing rate the published convention uses (default ``x``).
    """
    fan_in = x.shape[-1]
    rows = x.size // fan_in
    tokens = rows if tokens is None else tokens
    nz_x = jnp.count_nonzero(x.reshape(rows, fan_in), axis=0).astype(jnp.float32)  # [fan_in]
    if kernel is None:
        nz_w, nnz = jnp.full((fan_in,), float(fan_out)), _f(fan_in * fan_out)
    else:
        nz_w = jnp.count_nonzero(kernel, axis=-1).astype(jnp.float32)
        nnz = nz_w.sum()
    return dict(
        macs=_f(x.size * fan_out), acs=nz_x.sum() * fan_out, macs_nz=rows * nnz, acs_nz=nz_x @ nz_w,
        binary=is_binary(x), neuron=_f(0.0), inputs=_f(x.size), outputs=_f(rows * fan_out),
        weights=nnz * tokens, weights_all=_f(fan_in * fan_out * tokens), biases=_f(fan_out * tokens * bias),
        channels=_f(fan_out * tokens), **_rate(x if rate_from is None else rate_from, spiking),
    )


def expert_site(x, kernel, used, *, spiking: bool, rate_from=None, bias: bool = True) -> dict:
    """Counts for a mixture of experts' ``x [..., E, C, in] @ kernel [E, in, out]`` of which only the capacity
    slots ``used [E, C]`` hold a token: each used slot reads its expert's weights once (per token, not per
    timestep), so only the experts a token used are counted; empty slots (zeros) cost nothing."""
    e, c, fan_in = x.shape[-3:]
    fan_out = kernel.shape[-1]
    lead = x.size // (e * c * fan_in)
    slots = used.astype(jnp.float32).sum(-1)  # [E] tokens each expert holds
    nz_w = jnp.count_nonzero(kernel, axis=-1).astype(jnp.float32)  # [E, in]
    nz_x = jnp.count_nonzero(x.reshape(lead, e, c, fan_in), axis=(0, 2)).astype(jnp.float32)  # [E, in]
    share = slots.sum() / (e * c)
    rate = x if rate_from is None else rate_from
    return dict(
        macs=_f(x.size * fan_out) * share, acs=nz_x.sum() * fan_out, macs_nz=lead * slots @ nz_w.sum(-1),
        acs_nz=(nz_x * nz_w).sum(), binary=is_binary(x), neuron=_f(0.0), inputs=x.size * share,
        outputs=lead * slots.sum() * fan_out, weights=slots @ nz_w.sum(-1), weights_all=slots.sum() * fan_in * fan_out,
        biases=slots.sum() * fan_out * bias, channels=slots.sum() * fan_out,
        **{**_rate(rate, spiking), **({"rate_size": _f(rate.size) * share} if spiking else {})},
    )


def gather_site(rows: int, width: int, *, tables: int = 1) -> dict:
    """A table lookup (an embedding): no MAC; ``tables`` rows of ``width`` weights read per token, one
    ``[rows, width]`` sum written."""
    z = _f(0.0)
    return {**{f: z for f in SITE_FIELDS}, "weights": _f(rows * width * tables),
            "weights_all": _f(rows * width * tables), "outputs": _f(rows * width)}


def _rate(spikes, spiking: bool) -> dict:
    """The convention's firing-rate fields; zero (no rate) for a site that is not a spiking layer."""
    if not spiking:
        z = _f(0.0)
        return {"spiking": z, "rate_nnz": z, "rate_size": z}
    return {"spiking": _f(1.0), "rate_nnz": jnp.count_nonzero(spikes).astype(jnp.float32),
            "rate_size": _f(spikes.size)}


def _no_weights(**fields) -> dict:
    z = _f(0.0)
    return {"weights": z, "weights_all": z, "biases": z, "channels": z, **fields}


def causal_matmul_site(a, b_dim: int, *, spiking: bool, rate_from=None, query_side: bool = True) -> dict:
    """Counts for one causal attention product (only the unmasked lower triangle is counted as work).

    ``a [..., L, d]`` is the operand whose values decide AC vs MAC. For ``query_side`` (scores = Q K^T, ``a`` = Q,
    ``d`` = head dim, ``b_dim`` unused): query ``i`` meets ``i + 1`` keys, so MACs = Σ_i (i+1) d and each nonzero
    of row ``i`` feeds ``i + 1`` outputs. Otherwise (out = S V, ``a`` = V ``[..., L, d]``): key ``j`` is read by
    ``L - j`` queries, MACs = Σ_j (L - j) d, each nonzero of row ``j`` feeds ``L - j`` outputs. Memory: Q K^T
    reads Q and, per query, its causal K rows (one element per MAC); S V reads the causal V rows and writes
    ``[..., L, d]``; the scores stay on-chip.
    """
    length, d = a.shape[-2], a.shape[-1]
    n_mats = a.size // (length * d)
    pos = np.arange(length, dtype=np.float64)
    fan = pos + 1.0 if query_side else length - pos
    nnz_rows = jnp.count_nonzero(a, axis=-1).astype(jnp.float32).reshape(-1, length).sum(0)
    macs = _f(n_mats * float(fan.sum()) * d)
    acs = (nnz_rows * jnp.asarray(fan, jnp.float32)).sum()
    return _no_weights(
        macs=macs, acs=acs, macs_nz=macs, acs_nz=acs, binary=is_binary(a), neuron=_f(0.0),
        inputs=macs + a.size if query_side else macs, outputs=_f(0.0 if query_side else a.size),
        **_rate(a if rate_from is None else rate_from, spiking),
    )


def elementwise_site(x, macs_per_element: float, *, neuron: bool = False, reads: float = 1.0,
                     writes: float = 1.0) -> dict:
    """A float elementwise op on ``x`` (an array, or its element count) priced as MACs (norms: 2 per element;
    ``neuron=True``: membrane updates, 1 per neuron-step, reading current and membrane, writing the membrane).
    ``reads`` / ``writes``: elements read / written per element of ``x`` (memory traffic)."""
    z = _f(0.0)
    size = x if isinstance(x, int) else x.size
    macs = _f(size * macs_per_element)
    reads = 2.0 if neuron else reads
    return _no_weights(macs=macs, acs=z, macs_nz=macs, acs_nz=z, binary=z, spiking=z, rate_nnz=z, rate_size=z,
                       neuron=_f(float(neuron)), inputs=_f(size * reads), outputs=_f(size * writes))


def _complete(site: dict) -> dict:
    """``site`` with every field of ``SITE_FIELDS`` (a site built elsewhere: nonzero counts = dense ones)."""
    if all(f in site for f in SITE_FIELDS):
        return site
    defaults = {"macs_nz": site["macs"], "acs_nz": site["acs"]}
    return {f: site[f] if f in site else defaults.get(f, 0.0) for f in SITE_FIELDS}


def merge_sites(a: dict, b: dict) -> dict:
    """One site from two (summed field by field; the flags in ``MIN_FIELDS`` keep the minimum)."""
    a, b = _complete(a), _complete(b)
    mn = jnp.minimum if any(isinstance(v, jax.Array) for v in (*a.values(), *b.values())) else np.minimum
    return {f: (mn(a[f], b[f]) if f in MIN_FIELDS else a[f] + b[f]) for f in SITE_FIELDS}


def add_sites(total: dict | None, sites: dict) -> dict:
    """Sum two ``{name: site}`` dicts (over evaluation batches) with ``merge_sites``, as float64 numpy."""
    sites = {k: {f: np.asarray(v[f], np.float64) for f in SITE_FIELDS} for k, v in
             ((k, _complete(v)) for k, v in sites.items())}
    if total is None:
        return sites
    return {k: merge_sites(total[k], v) if k in total else v for k, v in sites.items()}


ELEMENTWISE = {"layernorm": 2.0, "scale": 1.0, "gelu": 1.0, "mean": 1.0}  # float MACs per element


def _weight(owner, name):
    """``(kernel, has_bias)`` of the Linear (or ``[in, out]`` / ``[E, in, out]`` kernel) at ``owner.name``, or
    ``(None, False)``; an expert kernel ``w1`` / ``w2`` has its bias in ``b1`` / ``b2``."""
    attr = getattr(owner, name, None)
    kernel = getattr(attr, "kernel", attr)
    if not (isinstance(kernel, nnx.Variable) and kernel.ndim in (2, 3)):
        return None, False
    bias = getattr(attr, "bias", None) if kernel is not attr else getattr(owner, "b" + name[1:], None)
    return kernel.get_value(), bias is not None


def _site(owner, name: str, value, rate):
    """The site of one sown ``value`` (see ``sites``); ``rate`` is the sown ``<name>_rate`` entry or None."""
    used = None
    if isinstance(value, dict):  # mixture-of-experts capacity buffers: count only the slots holding a token
        used, value = value["slots"], value["inputs"]
    rate = rate["inputs"] if isinstance(rate, dict) else rate
    spiking = rate is not None
    kernel, bias = _weight(owner, name)
    if kernel is not None and kernel.ndim == 3 and used is not None:
        return expert_site(value, kernel, used, spiking=spiking, rate_from=rate, bias=bias)
    if kernel is not None:  # inputs [..., B, L, in]: any leading axis (time) repeats the same tokens
        tokens = math.prod(value.shape[-3:-1]) if value.ndim >= 3 else value.shape[0]
        site = linear_site(value, kernel.shape[-1], spiking=spiking, rate_from=rate, kernel=kernel, bias=bias,
                           tokens=tokens)
    elif name in ("qk", "av"):  # attention operands [..., L, H, d]
        site = causal_matmul_site(jnp.swapaxes(value, -2, -3), 0, spiking=spiking, query_side=name == "qk",
                                  rate_from=None if rate is None else jnp.swapaxes(rate, -2, -3))
    elif name == "softmax":  # one op per unmasked causal score of the queries [..., L, H, d]; on-chip (fused)
        length, d = value.shape[-3], value.shape[-1]
        site = elementwise_site(value.size // (length * d) * length * (length + 1) // 2, 1.0, reads=0, writes=0)
    elif name == "neuron":
        site = elementwise_site(value, 1.0, neuron=True)
    elif name == "mean":  # the readout's mean over T [T, ...]: reads T copies, writes one
        site = elementwise_site(value, 1.0, writes=1.0 / value.shape[0])
    elif name in ELEMENTWISE:
        site = elementwise_site(value, ELEMENTWISE[name])
    else:
        raise ValueError(f"trace: {name!r} on {type(owner).__name__} is not a name spiking.energy.sites understands")
    if used is not None:  # empty slots are zeros (no AC), and their dense-equivalent work is not counted
        share = used.astype(jnp.float32).mean()
        for f in ("macs", "macs_nz", "rate_size", "inputs", "outputs"):
            site[f] = site[f] * share
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


def _mul(fmt: str) -> float:
    return MULTIPLY_PJ[PRICED_AS.get(fmt, fmt)]


def _add(fmt: str) -> float:
    return ADD_PJ[PRICED_AS.get(fmt, fmt)]


def price_site(name: str, site: dict, formats: Formats = FLOAT32, *, accumulator=ACCUMULATOR) -> dict:
    """One site's strict energy at its formats (module text, (b) and (c)): ``{"ops_pj", "extra_pj",
    "weight_bits", "activation_bits"}`` — ``ops_pj`` the MACs or ACs, ``extra_pj`` the quantisation rescales."""
    s = {f: float(v) for f, v in _complete(site).items()}
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


def account(sites: dict, tokens: float, *, cmos: EnergyModel = CMOS_45NM, neuro: EnergyModel = LOIHI,
            dense_macs_per_token: float | None = None, formats: Formats | None = None,
            sram: MemoryModel = SRAM_8KB, dram: MemoryModel = DRAM) -> dict[str, float]:
    """The four accountings from summed sites, per token (picojoules), plus per-site firing rates and counts.

    Returns flat metrics: ``rate/<site>``, ``macs_per_token`` and ``acs_per_token`` (strict: nonzero weights
    only), ``energy_published_pj``, ``energy_papers_pj``, ``energy_strict_pj`` (at ``formats``, default
    float32), ``energy_strict_loihi_pj``, ``weight_bytes_per_token``, ``activation_bytes_per_token``,
    ``energy_with_memory_sram_pj`` / ``_dram_pj`` and ``memory_share_sram`` / ``_dram`` (memory's share of
    them), ``energy_dense_pj`` and the ratios ``ratio_*_vs_dense`` when ``dense_macs_per_token`` is given, and
    ``firing_rate`` (over all spiking sites).
    """
    formats = formats or FLOAT32
    out: dict[str, float] = {}
    pub = strict = loihi = weight_bits = act_bits = 0.0
    strict_macs = strict_acs = dense_macs = neuron_macs = 0.0
    spikes = neurons = 0.0
    for name, s in sites.items():
        s = _complete(s)
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
    for level, mem in (("sram", sram), ("dram", dram)):
        memory = words * mem.pj_per_64bit
        out[f"energy_with_memory_{level}_pj"] = strict + memory
        out[f"memory_share_{level}"] = memory / (strict + memory) if strict + memory > 0 else 0.0
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
