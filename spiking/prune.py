"""Post-training pruning: magnitude, Wanda and SparseGPT on one weight matrix, and ``prune_lm`` for the LMs.

Convention: a weight matrix here is ``W [out, in]`` (one row per output unit, one column per input feature), the
papers' layout. Flax ``nnx.Linear`` stores ``kernel [in, out]``, so ``prune_lm`` passes ``kernel.T`` in and writes
``W_pruned.T`` back. Calibration inputs are ``X [N, in]`` (one row per token; a spiking model's time steps are
more rows), and ``gram(X) = XᵀX [in, in]`` is the papers' ``XXᵀ`` with their ``X [in, N]``.

* ``magnitude``: prune the smallest ``|W_ij|`` under one threshold per matrix (Han et al. 2015, "Learning both
  Weights and Connections for Efficient Neural Networks", NeurIPS).
* ``wanda``: score ``|W_ij|·‖X_j‖₂``, compared within each output row (Sun, Liu, Bair & Kolter 2023, "A Simple
  and Effective Pruning Approach for Large Language Models", arXiv:2306.11695, eq. 1 and §3 "comparison group").
* ``sparsegpt``: ``H = XᵀX + λI`` with ``λ = damp·mean diag(H)``; the columns are visited in blocks, each pruned
  weight's error is fed back to the not-yet-visited columns of its row through the upper Cholesky factor ``U`` of
  ``H⁻¹`` (``H⁻¹ = UᵀU``), which updates the kept weights; the unstructured mask is chosen adaptively per column
  block from ``w²/U_jj²`` of the already-updated block, the n:m mask every m columns (Frantar & Alistarh 2023,
  "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot", ICML, Algorithm 1 and §3.4, as in
  their reference code). An input that is zero on every calibration row (a neuron that never spiked) gets
  ``H_jj = 1`` and score 0, as in the reference code; its weights are not zeroed unless the mask prunes them.

``pattern=None`` is unstructured; ``(n, m)`` keeps n of every m consecutive input columns of each row (2:4 is
NVIDIA's sparse tensor-core pattern) and fixes the sparsity at ``1 - n/m``. Every function returns
``(W_pruned [out, in], mask [out, in] bool)``, ``mask`` True where a weight is kept. Ties are broken by position
(a stable sort), so the count pruned is exact: ``round(sparsity·size)`` per matrix (magnitude), per row (Wanda),
per column block (SparseGPT).

``prune_lm`` prunes every ``nnx.Linear`` under ``model.blocks`` (attention and feed-forward projections; never the
embeddings, head, norms, or a Linear whose path names a router), block by block: the calibration inputs of block k
are measured with blocks < k already pruned (SparseGPT §3 / Wanda §3 run the same sequential scheme). Inputs are
captured without the model's help: on a clone, each target Linear is replaced by a recording stand-in (``Tap``),
the clone is run, and the Linears are put back. In an MoE LM (``spiking.moe``) the router is skipped and the experts,
stacked ``[E, in, out]`` Params rather than Linears, stay dense: only attention is pruned there. The returned copy records what was done as
``model.post_info["prune"]`` (a hashable ``FrozenDict``, so it stays a static attribute of the graph).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
from flax import nnx

from spiking.calibration import Tapped, get_path, path_name, with_post_info
from spiking.lm import block_linears

__all__ = [
    "METHODS",
    "magnitude",
    "parse_pattern",
    "prune_lm",
    "sparsegpt",
    "wanda",
]

METHODS = ("magnitude", "wanda", "sparsegpt")
Pattern = tuple[int, int] | None


def parse_pattern(text: str) -> Pattern:
    """``""`` → None (unstructured); ``"2:4"`` → ``(2, 4)``. ValueError naming ``pattern`` otherwise."""
    if text in ("", None):
        return None
    try:
        n, m = (int(p) for p in str(text).split(":"))
    except ValueError:
        n = m = 0
    if not 0 < n < m:
        raise ValueError(f"pattern: {text!r} is not allowed; use '' (unstructured) or 'n:m' with 0 < n < m, "
                         "such as '2:4'")
    return n, m


def _check(W, sparsity, pattern) -> tuple[float, Pattern]:
    """Validated ``(sparsity, pattern)``; with a pattern the sparsity is ``1 - n/m`` (None is accepted)."""
    if jnp.ndim(W) != 2:
        raise ValueError(f"W: shape {jnp.shape(W)} is not allowed; use a matrix [out, in]")
    if pattern is None:
        if sparsity is None or not 0.0 <= float(sparsity) < 1.0:
            raise ValueError(f"sparsity: {sparsity!r} is not allowed; use 0 <= sparsity < 1")
        return float(sparsity), None
    n, m = (int(p) for p in pattern)
    if not 0 < n < m:
        raise ValueError(f"pattern: {tuple(pattern)} is not allowed; use (n, m) with 0 < n < m")
    if W.shape[1] % m:
        raise ValueError(f"pattern: {n}:{m} is not allowed for {W.shape[1]} input columns; m must divide them")
    implied = 1.0 - n / m
    if sparsity is not None and abs(float(sparsity) - implied) > 1e-9:
        raise ValueError(f"sparsity: {sparsity} is not allowed with pattern {n}:{m}; use {implied:g} (= 1 - n/m)")
    return implied, (n, m)


def _keep(score, pruned: int):
    """``score [..., K]`` → bool ``[..., K]``: False at the ``pruned`` lowest scores of each last-axis group."""
    ranks = jnp.argsort(jnp.argsort(score, axis=-1, stable=True), axis=-1, stable=True)
    return ranks >= pruned


def _count(sparsity: float, pattern: Pattern, size: int) -> int:
    """How many of ``size`` weights to prune (counted in Python, so ties and rounding match NumPy's)."""
    return 0 if pattern is not None else round(sparsity * size)


def _mask(score, pruned, pattern: Pattern):
    """Keep-mask of ``score [R, K]``: n:m groups along K, or the ``pruned`` lowest of each row pruned."""
    rows, cols = score.shape
    if pattern is not None:
        n, m = pattern
        return _keep(score.reshape(rows, cols // m, m), m - n).reshape(rows, cols)
    return _keep(score, pruned)


@functools.partial(jax.jit, static_argnames=("pattern", "per_row"))
def _apply(W, score, pruned, pattern, per_row):
    """``pruned`` (traced: one compiled program serves every sparsity) per row, or per matrix unless ``per_row``."""
    flat = score if per_row or pattern is not None else score.reshape(1, -1)
    keep = _mask(flat, pruned, pattern).reshape(W.shape)
    return jnp.where(keep, W, jnp.zeros_like(W)), keep


def magnitude(W, sparsity, *, pattern: Pattern = None):
    """Magnitude pruning, one threshold per matrix (n:m: the n largest of each group of m columns).

    Args: ``W [out, in]``; ``sparsity`` the fraction to zero (None allowed with a pattern); ``pattern`` (n, m).
    Returns ``(W_pruned [out, in], mask [out, in] bool)``.
    """
    sparsity, pattern = _check(W, sparsity, pattern)
    W = jnp.asarray(W)
    return _apply(W, jnp.abs(W), _count(sparsity, pattern, W.size), pattern, False)


def wanda(W, act_norms, sparsity, *, pattern: Pattern = None):
    """Wanda: prune by ``|W_ij|·‖X_j‖₂`` within each output row (Sun et al. 2023, eq. 1).

    Args: ``W [out, in]``; ``act_norms [in]`` the L2 norm of each input feature over the calibration rows
    (``sqrt(diag(XᵀX))``); ``sparsity``, ``pattern`` as ``magnitude``. Returns ``(W_pruned, mask)``, ``[out, in]``.
    """
    sparsity, pattern = _check(W, sparsity, pattern)
    W, act_norms = jnp.asarray(W), jnp.asarray(act_norms)
    if act_norms.shape != (W.shape[1],):
        raise ValueError(f"act_norms: shape {act_norms.shape} is not allowed; use [{W.shape[1]}] (one per input)")
    return _apply(W, jnp.abs(W) * act_norms[None, :], _count(sparsity, pattern, W.shape[1]), pattern, True)


def _sweep(W1, U1, keep1, err1, start, stop):
    """Visit columns ``start..stop-1`` of a block: zero the pruned weights of the column, feed the error forward.

    ``W1 [out, b]``, ``U1 [b, b]`` upper triangular, so row ``i`` of ``U1`` is zero left of ``i``: subtracting
    ``err ⊗ U1[i]`` only touches columns ``≥ i``, and column ``i`` becomes exactly its kept part.
    """

    def column(i, carry):
        W1, err1 = carry
        w = W1[:, i]
        err = (w - jnp.where(keep1[:, i], w, 0.0)) / U1[i, i]
        return W1 - err[:, None] * U1[i][None, :], err1.at[:, i].set(err)

    return jax.lax.fori_loop(start, stop, column, (W1, err1))


def _nm_block(W1, U1, alive1, n, m):
    """One column block under an n:m pattern: every m columns, keep the n largest ``w²/U_jj²`` of each row (from
    the weights as updated so far), then visit those m columns. Returns ``(W1, keep1, err1)``, each ``[out, b]``."""
    d1 = jnp.diag(U1)

    def group(g, carry):
        W1, keep1, err1 = carry
        c = g * m
        w = jax.lax.dynamic_slice_in_dim(W1, c, m, axis=1)
        score = jnp.where(jax.lax.dynamic_slice_in_dim(alive1, c, m), w, 0.0) ** 2
        score = score / jax.lax.dynamic_slice_in_dim(d1, c, m) ** 2
        keep1 = jax.lax.dynamic_update_slice_in_dim(keep1, _keep(score, m - n), c, axis=1)
        W1, err1 = _sweep(W1, U1, keep1, err1, c, c + m)
        return W1, keep1, err1

    init = (W1, jnp.zeros(W1.shape, bool), jnp.zeros_like(W1))
    return jax.lax.fori_loop(0, W1.shape[1] // m, group, init)


@functools.partial(jax.jit, static_argnames=("pattern", "block_size"))
def _sparsegpt(W, hessian, damp, pruned, pattern, block_size):
    """``pruned [n_blocks]``: how many weights each column block prunes (traced; unused for n:m)."""
    dtype = W.dtype
    W, H = W.astype(jnp.float32), hessian.astype(jnp.float32)
    rows, cols = W.shape
    alive = jnp.diag(H) > 0
    H = H + jnp.diag(jnp.where(alive, 0.0, 1.0))  # a dead input: H_jj = 1 (SparseGPT reference code)
    H = H + damp * jnp.mean(jnp.diag(H)) * jnp.eye(cols, dtype=H.dtype)
    hinv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(H), True), jnp.eye(cols, dtype=H.dtype))
    U = jnp.linalg.cholesky(hinv).T  # upper: H⁻¹ = UᵀU
    keep = jnp.zeros((rows, cols), bool)
    for b, b0 in enumerate(range(0, cols, block_size)):
        b1 = min(b0 + block_size, cols)
        W1, U1, a1 = W[:, b0:b1], U[b0:b1, b0:b1], alive[b0:b1]
        if pattern is None:  # adaptive mask: from this block's weights as updated by the earlier blocks
            score = jnp.where(a1, W1, 0.0) ** 2 / jnp.diag(U1) ** 2
            keep1 = _mask(score.reshape(1, -1), pruned[b], None).reshape(W1.shape)
            W1, err1 = _sweep(W1, U1, keep1, jnp.zeros_like(W1), 0, b1 - b0)
        else:
            W1, keep1, err1 = _nm_block(W1, U1, a1, *pattern)
        W = W.at[:, b0:b1].set(jnp.where(keep1, W1, 0.0))
        W = W.at[:, b1:].add(-err1 @ U[b0:b1, b1:])  # the block's errors, fed to every later column at once
        keep = keep.at[:, b0:b1].set(keep1)
    return jnp.where(keep, W, 0.0).astype(dtype), keep


def sparsegpt(W, hessian, sparsity, *, pattern: Pattern = None, block_size: int = 128, damp: float = 0.01):
    """SparseGPT (Frantar & Alistarh 2023, Algorithm 1): prune with error feedback that updates the kept weights.

    Args:
      W: ``[out, in]``.
      hessian: ``XᵀX [in, in]`` summed over the calibration rows (any positive scale; ``damp`` is relative).
      sparsity, pattern: as ``magnitude``.
      block_size: columns per lazy-update block (rounded down to a multiple of m for n:m, at least m).
      damp: λ = damp · mean diag(H).
    Returns ``(W_pruned [out, in], mask [out, in] bool)``.
    """
    sparsity, pattern = _check(W, sparsity, pattern)
    W, hessian = jnp.asarray(W), jnp.asarray(hessian)
    if hessian.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"hessian: shape {hessian.shape} is not allowed; use [{W.shape[1]}, {W.shape[1]}]")
    if block_size < 1:
        raise ValueError(f"block_size: {block_size} is not allowed; use an integer >= 1")
    if pattern is not None:
        block_size = max(pattern[1], block_size // pattern[1] * pattern[1])
    pruned = jnp.asarray([_count(sparsity, pattern, W.shape[0] * (min(b0 + block_size, W.shape[1]) - b0))
                          for b0 in range(0, W.shape[1], block_size)], jnp.int32)
    return _sparsegpt(W, hessian, damp, pruned, pattern, block_size)


# ------------------------------------------------------------------------------------------ whole models


def prune_lm(model, calib_batches: Iterable, *, method: str, sparsity: float | None,
             pattern: Pattern = None, block_size: int = 128, damp: float = 0.01):
    """A pruned copy of an LM of ``spiking.lm`` (DenseLM, SpikingLM, MoE LMs) and the measured sparsity per layer.

    Args:
      model: the trained model; not changed.
      calib_batches: model inputs (tokens ``[B, L]``) for the calibration; unused by ``magnitude``.
      method: "magnitude" | "wanda" | "sparsegpt".
      sparsity, pattern: as ``magnitude`` (the same for every layer).
      block_size, damp: SparseGPT's.
    Returns ``(pruned_model, {"blocks.0.wq": measured fraction of zero weights, ...})``. Only the kernels of the
    block Linears change (biases stay). ``pruned_model.post_info["prune"]`` holds method, sparsity, pattern
    ("" or "n:m"), ``measured`` (zeros over all pruned kernel weights), ``pruned_params`` (their count) and
    ``layers`` (the per-layer dict).
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not allowed; use one of {list(METHODS)}")
    pruned = nnx.clone(model)
    paths = block_linears(pruned)
    if not paths:
        raise ValueError(f"model: {type(model).__name__} has no nnx.Linear under .blocks to prune")
    for p in paths:  # validate every layer before any work
        _check(get_path(pruned, p).kernel[...].T, sparsity, pattern)
    pattern = None if pattern is None else tuple(int(v) for v in pattern)
    batches = list(calib_batches) if method != "magnitude" else []
    if method != "magnitude" and not batches:
        raise ValueError(f"calib_batches: none given; {method} needs calibration inputs")
    tapped = Tapped(pruned, paths) if method != "magnitude" else None
    by_block: dict[object, list[tuple]] = {}
    for p in paths:
        by_block.setdefault(p[1], []).append(p)
    layers = {}
    for group in by_block.values():  # block by block: calibration sees the blocks already pruned
        stats = tapped.run(batches) if tapped is not None else {}
        for p in group:
            linear = tapped.taps[p].linear if tapped is not None else get_path(pruned, p)
            W = linear.kernel[...].T
            if method == "magnitude":
                Wp, _ = magnitude(W, sparsity, pattern=pattern)
            elif method == "wanda":
                Wp, _ = wanda(W, jnp.sqrt(jnp.diag(stats[p]["gram"])), sparsity, pattern=pattern)
            else:
                Wp, _ = sparsegpt(W, stats[p]["gram"], sparsity, pattern=pattern, block_size=block_size, damp=damp)
            linear.kernel[...] = Wp.T.astype(linear.kernel.dtype)
            layers[path_name(p)] = float(jnp.mean(Wp == 0))
    if tapped is not None:
        tapped.restore()
    sizes = {path_name(p): get_path(pruned, p).kernel[...].size for p in paths}
    total = sum(sizes.values())
    measured = sum(layers[k] * sizes[k] for k in layers) / max(total, 1)
    with_post_info(pruned, "prune", {
        "method": method, "sparsity": _check(get_path(pruned, paths[0]).kernel[...].T, sparsity, pattern)[0],
        "pattern": "" if pattern is None else f"{pattern[0]}:{pattern[1]}", "measured": measured,
        "pruned_params": total, "layers": layers})
    return pruned, layers
