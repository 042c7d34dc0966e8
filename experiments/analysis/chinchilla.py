"""Loss against model size and data: L(N, D) = E + A/N^α + B/D^β, its compute-optimal frontier and local exponent.

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"), approach 3: fit the parametric loss to a grid
of model sizes N (parameters) × token budgets D with a Huber loss (δ = 1e-3) on log L from a grid of starts, the best
end point kept (they use L-BFGS; ``lm_fit``'s batched Levenberg–Marquardt reaches the same minima, all replicates of
a bootstrap at once). With training compute C = 6ND the loss-optimal
split is N*(C) = G (C/6)^(β/(α+β)), D*(C) = (C/6)/N*, G = (αA / (βB))^(1/(α+β)), and the frontier L*(C) = L(N*, D*).
Its local exponent −d log L*/d log C is what "each tenfold compute increase gives a predictable loss reduction" is
about: ``frontier_change`` compares it at the geometric middles of the upper and lower halves of the measured compute.

E is fitted free of sign (Hoffmann et al. write it exp(e) > 0). With E > 0 forced, L*(C) = E + G·C^(−γ) and the
local exponent γ(L* − E)/L* always falls as compute grows: "the frontier flattens" would hold by construction. Free,
E < 0 makes it steepen and E ≈ 0 keeps it a pure power law, so the data decide (an E below 0 is no entropy, only the
sign the cells' curvature gives over the measured range).

Intervals: a parametric bootstrap as ``scaling.parametric_fit`` (each cell's mean drawn from its t distribution,
refits from the full fit and far starts). A fit needs its 5 parameters + 2 = 7 cells.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from experiments.analysis import fit_cache, lm_fit, scaling
from experiments.analysis.scaling import HUBER_DELTA, draw_means, size_means

CELLS = 7  # the law's 5 parameters + 2


@dataclasses.dataclass(frozen=True)
class Law:
    """L(N, D) = E + exp(log_A)/N^α + exp(log_B)/D^β."""

    E: float
    log_A: float
    alpha: float
    log_B: float
    beta: float

    def __call__(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + np.exp(self.log_A - self.alpha * np.log(n)) + np.exp(self.log_B - self.beta * np.log(d))

    def optimal(self, compute):
        """``(N*, D*, L*)`` at training compute ``C = 6ND`` (arrays of ``compute``'s shape)."""
        c = np.asarray(compute, float) / 6.0
        log_g = (math.log(self.alpha) + self.log_A - math.log(self.beta) - self.log_B) / (self.alpha + self.beta)
        n = np.exp(log_g + self.beta / (self.alpha + self.beta) * np.log(c))
        return n, c / n, self(n, c / n)

    def local_exponent(self, compute) -> float:
        """−d log L*/d log C at ``compute`` (a central difference over ±1% of compute)."""
        lo, hi = self.optimal(compute * 0.99)[2], self.optimal(compute * 1.01)[2]
        return float(-(np.log(hi) - np.log(lo)) / (math.log(1.01) - math.log(0.99)))


BOUNDS = ([-np.inf, -np.inf, 1e-3, -np.inf, 1e-3], [np.inf, np.inf, 5.0, np.inf, 5.0])  # (E, a, α, b, β)


def _residuals(log_n, log_d, log_y):
    """``theta [B, 5] -> (r [B, K], J [B, K, 5])``: log L − log y for L = E + exp(a − α log n) + exp(b − β log d),
    with ``log_y [B, K]``; a residual is NaN where L is not positive (E below 0 can make it so)."""

    def residuals(theta):
        e, a, alpha, b, beta = (theta[:, i:i + 1] for i in range(5))
        t1, t2 = np.exp(a - alpha * log_n), np.exp(b - beta * log_d)
        pred = e + t1 + t2
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.log(pred) - log_y
        jac = np.stack([np.ones_like(t1), t1, -t1 * log_n, t2, -t2 * log_d], axis=-1) / pred[..., None]
        return r, jac

    return residuals


def fit_laws(n, d, losses, *, start: Law | None = None) -> list[Law]:
    """The L(N, D) fits of the rows of ``losses [R, K]`` on the cells ``n [K]``, ``d [K]``, all at once
    (``lm_fit``): each the best of Levenberg–Marquardt runs on the Huber loss of log L from a grid of starts
    (Hoffmann et al.'s, coarser), or from ``start`` (a bootstrap replicate starts at the full fit) and two far
    starts. N and D are normalised by their geometric means inside the fit."""
    n, d, y = np.asarray(n, float), np.asarray(d, float), np.atleast_2d(np.asarray(losses, float))
    n0, d0 = float(np.mean(np.log(n))), float(np.mean(np.log(d)))
    low = y.min(axis=1)
    if start is not None:
        near = np.array([start.E, start.log_A - start.alpha * n0, start.alpha, start.log_B - start.beta * d0,
                         start.beta])
        per_row = [np.broadcast_to(near, (len(y), 5)),
                   np.stack([0.5 * low, np.log(0.5 * low), np.full_like(low, 0.3), np.log(0.5 * low),
                             np.full_like(low, 0.3)], axis=1),
                   np.stack([0.9 * low, np.log(0.05 * low), np.full_like(low, 0.5), np.log(0.05 * low),
                             np.full_like(low, 0.5)], axis=1)]
    else:
        per_row = [np.stack([f * low, np.log(0.3 * low), np.full_like(low, al), np.log(0.3 * low),
                             np.full_like(low, be)], axis=1)
                   for f, al, be in itertools.product((0.3, 0.8), (0.15, 0.6), (0.15, 0.6))]
    starts = np.stack(per_row, axis=1).reshape(-1, 5)  # problem-major: each row's starts together
    log_y = np.repeat(np.log(y), len(per_row), axis=0)
    theta, loss = lm_fit.minimise(_residuals(np.log(n) - n0, np.log(d) - d0, log_y), starts, delta=HUBER_DELTA,
                                  lower=BOUNDS[0], upper=BOUNDS[1])
    return [Law(float(e), float(a + alpha * n0), float(alpha), float(b + beta * d0), float(beta))
            for e, a, alpha, b, beta in lm_fit.best_of(theta, loss, len(per_row))]


def fit_law(n, d, loss, *, start: Law | None = None) -> Law:
    """The L(N, D) fit of cells ``n [K]``, ``d [K]``, ``loss [K]`` (K >= 5, all > 0); see ``fit_laws``."""
    n, d, y = (np.asarray(v, float) for v in (n, d, loss))
    if not (n.shape == d.shape == y.shape) or n.ndim != 1 or len(n) < 5 or min(n.min(), d.min(), y.min()) <= 0:
        raise ValueError(f"n, d, loss: {len(n)} cells is not allowed; give >= 5 matching positive values")
    return fit_laws(n, d, y[None], start=start)[0]


def parametric_law(points, n_boot: int = 2000, seed: int = 0) -> tuple[Law, list[Law], object]:
    """``points``: ``(cell, N, D, loss)`` per run (a cell: one model size at one token budget, >= 2 runs each).
    Returns the fit on the cell means, ``n_boot`` refits on means drawn from their t distributions, and the means.
    Remembered per input (``fit_cache``)."""
    points = [tuple(p) for p in points]
    return fit_cache.cached("law", _parametric_law, points, n_boot, seed,
                            (__name__, scaling.__name__, lm_fit.__name__))


def _parametric_law(points, n_boot: int, seed: int):
    by_cell = {}
    for cell, n, d, _ in points:
        by_cell.setdefault(cell, (float(n), float(d)))
    means = size_means([(cell, 0.0, y) for cell, _, _, y in points])
    n = np.array([by_cell[c][0] for c in means.names])
    d = np.array([by_cell[c][1] for c in means.names])
    full = fit_law(n, d, means.loss)
    draws = draw_means(means, n_boot, np.random.default_rng(seed))
    return full, fit_laws(n, d, draws, start=full), (n, d, means)
