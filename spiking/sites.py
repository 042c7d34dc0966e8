"""Op-count *sites* from measured tensors: one per matmul (or other costed op) of a forward pass.

What a site holds, and how ``spiking.energy`` prices it, is described there; this module builds them: a Linear's
(``linear_site``), a mixture of experts' capacity buffers (``expert_site``), an embedding lookup (``gather_site``),
a causal attention matmul (``causal_matmul_site``), elementwise ops and neuron updates (``elementwise_site``), and
every site a model sowed (``sites``, ``capture_sites``). ``merge_sites`` / ``add_sites`` are the one way sites
combine, within a forward and over evaluation batches.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spiking.layers import Trace

SITE_FIELDS = ("macs", "acs", "binary", "spiking", "rate_nnz", "rate_size", "neuron", "macs_nz", "acs_nz",
               "inputs", "outputs", "weights", "weights_all", "biases", "channels")
MIN_FIELDS = ("binary", "spiking", "neuron")  # flags: a site keeps the minimum when summed


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


def complete_site(site: dict) -> dict:
    """``site`` with every field of ``SITE_FIELDS`` (a site built elsewhere: nonzero counts = dense ones)."""
    if all(f in site for f in SITE_FIELDS):
        return site
    defaults = {"macs_nz": site["macs"], "acs_nz": site["acs"]}
    return {f: site[f] if f in site else defaults.get(f, 0.0) for f in SITE_FIELDS}


def merge_sites(a: dict, b: dict) -> dict:
    """One site from two (summed field by field; the flags in ``MIN_FIELDS`` keep the minimum)."""
    a, b = complete_site(a), complete_site(b)
    mn = jnp.minimum if any(isinstance(v, jax.Array) for v in (*a.values(), *b.values())) else np.minimum
    return {f: (mn(a[f], b[f]) if f in MIN_FIELDS else a[f] + b[f]) for f in SITE_FIELDS}


def add_sites(total: dict | None, sites: dict) -> dict:
    """Sum two ``{name: site}`` dicts (over evaluation batches) with ``merge_sites``, as float64 numpy."""
    sites = {k: {f: np.asarray(v[f], np.float64) for f in SITE_FIELDS} for k, v in
             ((k, complete_site(v)) for k, v in sites.items())}
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
        raise ValueError(f"trace: {name!r} on {type(owner).__name__} is not a name spiking.sites.sites understands")
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
