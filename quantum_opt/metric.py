"""The Fubini–Study metric of a parametrised state, computed exactly in JAX from the state and its Jacobian.

For a state ``|ψ(θ)>`` with parameters θ (any pytree, flattened to ``[P]`` with ``jax.flatten_util.ravel_pytree``),
the quantum geometric tensor is ``Q_ij = <∂iψ|∂jψ> − <∂iψ|ψ><ψ|∂jψ>`` and the Fubini–Study metric is its real part
``g_ij = Re Q_ij`` (Stokes, Izaac, Killoran & Carleo, "Quantum Natural Gradient", Quantum 4, 269, 2020; the same
convention as PennyLane's ``qml.metric_tensor``: ``RX(θ)|0>`` gives ``g = 1/4``). The Jacobian ``∂ψ/∂θ`` is
``jax.jacfwd`` of the stacked real and imaginary parts of ``state_fn(params)`` — ``Circuit.state``, the JAX simulator's
state (``quantum_opt.simulator``) — so it is exact, jittable, runs on any jax and device, and needs no
``qml.metric_tensor`` (whose JAX interface fails on jax >= 0.10; its NumPy interface is the tests' oracle).

``block_diagonal_metric`` is the layer-wise block-diagonal approximation (Stokes et al. 2020, Sec. 3): the exact
metric with the entries between different blocks set to zero. When the blocks are layers of commuting gates its blocks
equal PennyLane's ``approx="block-diag"`` metric. Computed here from the same full Jacobian (one ``jacfwd``), so it
costs the same as the full metric in a simulator; it exists for the approximation's effect on optimisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = [
    "block_diagonal_metric",
    "block_ids",
    "fubini_study_metric",
    "metric_fn",
    "quantum_geometric_tensor",
    "state_jacobian",
]


def state_jacobian(state_fn: Callable, params):
    """``(ψ [D] complex, ∂ψ/∂θ [D, P] complex)`` for ``state_fn(params) -> [D]`` with params flattened to ``[P]``."""
    flat, unravel = ravel_pytree(params)

    def ri(x):
        s = state_fn(unravel(x))
        if s.ndim != 1:
            raise ValueError(f"state_fn: returned shape {tuple(s.shape)}; allowed: one state vector [D]")
        out = jnp.stack([jnp.real(s), jnp.imag(s)])
        return out, out

    jac, val = jax.jacfwd(ri, has_aux=True)(flat)  # [2, D, P], [2, D]
    return val[0] + 1j * val[1], jac[0] + 1j * jac[1]


def quantum_geometric_tensor(state_fn: Callable, params):
    """The complex quantum geometric tensor ``Q [P, P]``: ``<∂iψ|∂jψ> − <∂iψ|ψ><ψ|∂jψ>``."""
    psi, jac = state_jacobian(state_fn, params)
    gram = jnp.conj(jac).T @ jac  # <∂iψ|∂jψ>
    overlap = jnp.conj(psi) @ jac  # <ψ|∂jψ>  [P]
    return gram - jnp.outer(jnp.conj(overlap), overlap)


def fubini_study_metric(state_fn: Callable, params):
    """The Fubini–Study metric ``g [P, P] = Re Q`` of ``state_fn`` at ``params`` (any pytree; P = its size).

    state_fn: ``params -> [2**n]`` complex state vector (differentiable with ``jax.jacfwd``).
    """
    return jnp.real(quantum_geometric_tensor(state_fn, params))


def block_ids(params, blocks="layer") -> np.ndarray:
    """An int array ``[P]``: the block of every flattened parameter (static, computed from shapes only).

    blocks: ``"layer"`` — each leaf's leading axis is its layer axis (a ``[L, ...]`` leaf gives L blocks);
    ``"leaf"`` — one block per leaf; ``"none"`` — every parameter its own block (the diagonal approximation);
    or a sequence of index groups into the flattened vector (disjoint; parameters in no group get their own block).
    """
    leaves = jax.tree_util.tree_leaves(params)
    sizes = [int(np.prod(np.shape(leaf))) for leaf in leaves]
    total = sum(sizes)
    if isinstance(blocks, str):
        if blocks == "none":
            return np.arange(total)
        if blocks not in ("layer", "leaf"):
            raise ValueError(f"blocks: got {blocks!r}; allowed: 'layer', 'leaf', 'none' or a list of index groups")
        ids, nxt = [], 0
        for leaf, size in zip(leaves, sizes):
            shape = np.shape(leaf)
            if blocks == "leaf" or len(shape) == 0:
                ids.append(np.full(size, nxt))
                nxt += 1
            else:
                ids.append(nxt + np.repeat(np.arange(shape[0]), size // max(shape[0], 1)))
                nxt += shape[0]
        return np.concatenate(ids) if ids else np.zeros(0, int)
    ids = np.full(total, -1)
    for b, group in enumerate(blocks):
        group = np.asarray(group, int).reshape(-1)
        if group.size and (group.min() < 0 or group.max() >= total):
            raise ValueError(f"blocks: group {b} has indices outside [0, {total}); allowed: flat parameter indices")
        if np.any(ids[group] >= 0) or len(set(group.tolist())) != group.size:
            raise ValueError(f"blocks: group {b} overlaps another group; allowed: disjoint index groups")
        ids[group] = b
    free = ids < 0
    ids[free] = len(blocks) + np.arange(int(free.sum()))
    return ids


def block_diagonal_metric(state_fn: Callable, params, blocks: str | Sequence[Sequence[int]] = "layer"):
    """The block-diagonal approximation of ``fubini_study_metric``: ``g [P, P]`` zero between blocks.

    blocks: see ``block_ids`` (default ``"layer"``: the leading axis of each ``[L, ...]`` parameter leaf).
    """
    ids = jnp.asarray(block_ids(params, blocks))
    g = fubini_study_metric(state_fn, params)
    return jnp.where(ids[:, None] == ids[None, :], g, 0.0)


def metric_fn(state_fn: Callable, approx: str | None = None, blocks="layer") -> Callable:
    """``params -> g [P, P]`` for ``qng(metric_fn=...)``: ``approx`` None (exact), ``"block-diag"`` (``blocks`` as in
    ``block_ids``) or ``"diag"`` (the diagonal only), mirroring PennyLane's ``QNGOptimizer(approx=...)``."""
    if approx is None or approx == "full":
        return lambda params: fubini_study_metric(state_fn, params)
    if approx == "block-diag":
        return lambda params: block_diagonal_metric(state_fn, params, blocks)
    if approx == "diag":
        return lambda params: block_diagonal_metric(state_fn, params, "none")
    raise ValueError(f"approx: got {approx!r}; allowed: None, 'full', 'block-diag', 'diag'")
