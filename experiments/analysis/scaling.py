"""Loss against compute: power-law fits with bootstrap CIs, and a lever's gain as a compute multiplier.

``fit_power_law`` fits L(C) = E + A·C^(−α) the way Hoffmann et al. 2022 ("Training Compute-Optimal Large Language
Models", approach 3) fit their parametric loss: a Huber loss (δ = 1e-3) on log L, minimised from a grid of starting
points, the best end point kept (they use L-BFGS; ``lm_fit``'s batched Levenberg–Marquardt reaches the same minima
and refits a whole bootstrap at once). Compute is normalised by its geometric mean inside the fit, so the
optimiser sees numbers near 1 whatever the FLOP scale. ``parametric_fit`` draws each size's mean from its Student-t
sampling distribution for intervals on E, A and α that cover at 3-5 seeds a size (Kaplan et al. 2020 quote
α_C ≈ 0.05 for compute). ``compute_multiplier`` states a lever's
result the way Clark et al. 2022 ("Unified Scaling Laws for Routed Language Models") state a routed model's gain: the
dense compute that reaches the same loss on the dense fit, divided by the lever's compute. This module reads numbers
only; it never imports a model path.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from experiments.analysis import fit_cache, lm_fit
from experiments.analysis.stats import percentile_interval

HUBER_DELTA = 1e-3
LAW_SIZES = 5  # sizes a fit of the floored law needs: its 3 parameters + 2


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """L(C) = E + A·C^(−α); ``log_A`` is kept too, since A alone overflows for steep fits at large C."""

    E: float
    log_A: float
    alpha: float

    @property
    def A(self) -> float:
        return math.exp(self.log_A) if self.log_A < 700 else math.inf

    def __call__(self, compute):
        return self.E + np.exp(self.log_A - self.alpha * np.log(np.asarray(compute, dtype=float)))

    def compute_for(self, loss: float) -> float:
        """The compute at which the curve reaches ``loss``; ``inf`` at or below the floor E."""
        if loss <= self.E:
            return math.inf
        return math.exp((self.log_A - math.log(loss - self.E)) / self.alpha)


def _residuals(x, log_y):
    """``theta [B, 3] -> (r [B, K], J [B, K, 3])``: log L − log y for L = exp(e) + exp(a − α·x), ``log_y [B, K]``."""

    def residuals(theta):
        e, a, alpha = theta[:, :1], theta[:, 1:2], theta[:, 2:3]
        log_pred = np.logaddexp(e, a - alpha * x)
        p_e = np.exp(e - log_pred)
        p_a = 1.0 - p_e
        return log_pred - log_y, np.stack([p_e, p_a, -x * p_a], axis=-1)

    return residuals


def fit_power_laws(compute, losses, *, start: PowerLaw | None = None, restarts: bool = False) -> list[PowerLaw]:
    """The L(C) = E + A·C^(−α) fits of the rows of ``losses [R, N]`` at ``compute [N]``, all at once (``lm_fit``):
    each the best of Levenberg–Marquardt runs on the Huber loss of log L from a grid of starting points, or from
    ``start`` (a bootstrap replicate starts at the full fit) and, with ``restarts``, also from two starts far from
    it (no floor; a floor at 90% of the lowest loss), so a replicate whose optimum moved to another basin still
    finds it."""
    c, y = np.asarray(compute, dtype=float), np.atleast_2d(np.asarray(losses, dtype=float))
    log_c0 = float(np.mean(np.log(c)))
    x, low, mean = np.log(c) - log_c0, y.min(axis=1), y.mean(axis=1)

    def begin(floor, alpha):  # [R, 3]: a floor at ``floor`` of each row's lowest loss, the rest from its mean
        e0 = np.log(np.maximum(floor * low, 1e-6 * low))
        return np.stack([e0, np.log(np.maximum(mean - np.exp(e0), 1e-6 * low)), np.broadcast_to(alpha, e0.shape)],
                        axis=1)

    if start is not None:
        near = (math.log(max(start.E, 1e-12)), start.log_A - start.alpha * log_c0, start.alpha)
        per_row = [np.broadcast_to(np.array(near), (len(y), 3))]
        per_row += [begin(f, max(start.alpha, 0.05)) for f in (1e-6, 0.9)] if restarts else []
    else:
        per_row = [begin(f, al) for f, al in itertools.product((0.0, 0.5, 0.9), (0.05, 0.3, 1.0))]
    starts = np.stack(per_row, axis=1).reshape(-1, 3)  # problem-major: each row's starts together
    theta, loss = lm_fit.minimise(_residuals(x, np.repeat(np.log(y), len(per_row), axis=0)), starts,
                                  delta=HUBER_DELTA, lower=[-np.inf, -np.inf, 1e-4], upper=[np.inf, np.inf, 10.0])
    return [PowerLaw(E=float(math.exp(e)), log_A=float(a + alpha * log_c0), alpha=float(alpha))
            for e, a, alpha in lm_fit.best_of(theta, loss, len(per_row))]


def fit_power_law(compute, loss, *, start: PowerLaw | None = None, restarts: bool = False) -> PowerLaw:
    """The L(C) = E + A·C^(−α) fit of points ``compute [N]``, ``loss [N]`` (N ≥ 3, all > 0); see
    ``fit_power_laws``."""
    c, y = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if c.shape != y.shape or c.ndim != 1 or len(c) < 3 or np.any(c <= 0) or np.any(y <= 0):
        raise ValueError(f"compute, loss: {len(c)} points is not allowed; give >= 3 matching positive values")
    return fit_power_laws(c, y[None], start=start, restarts=restarts)[0]


@dataclasses.dataclass
class BootstrapFit:
    """The fit and ``n_boot`` refits on replicate data (``parametric_fit``); ``ci`` gives percentile intervals of E,
    A (as log A) and alpha, and of ``slope``: the pure power law's exponent (E = 0, Kaplan et al. 2020's form: minus
    the least-squares slope of log L on log C) on the same points and replicates."""

    fit: PowerLaw
    fits: list
    slope: float = math.nan
    slopes: list = dataclasses.field(default_factory=list)

    def ci(self, name: str, level: float = 0.95) -> tuple[float, float]:
        if name == "slope":
            return percentile_interval(self.slopes, level)
        return percentile_interval([getattr(f, name) for f in self.fits], level)


@dataclasses.dataclass(frozen=True)
class SizeMeans:
    """Per size (one model size: the seeds of one setting): mean compute, mean loss, the loss's standard error and
    degrees of freedom (runs − 1), in the order the sizes came."""

    names: tuple
    compute: np.ndarray
    loss: np.ndarray
    sem: np.ndarray
    dof: np.ndarray


def size_means(points) -> SizeMeans:
    """``points``: ``(size, compute, loss)`` per run. Every size needs >= 2 runs (a standard error)."""
    sizes: dict = {}
    for s, c, y in points:
        sizes.setdefault(s, []).append((float(c), float(y)))
    few = [s for s, runs in sizes.items() if len(runs) < 2]
    if few:
        raise ValueError(f"size {few[0]} has one run: no standard error, so no interval")
    arr = {s: np.asarray(runs) for s, runs in sizes.items()}
    return SizeMeans(tuple(arr), np.array([a[:, 0].mean() for a in arr.values()]),
                     np.array([a[:, 1].mean() for a in arr.values()]),
                     np.array([a[:, 1].std(ddof=1) / math.sqrt(len(a)) for a in arr.values()]),
                     np.array([len(a) - 1 for a in arr.values()]))


def draw_means(means: SizeMeans, n_boot: int, rng) -> np.ndarray:
    """``[n_boot, sizes]`` replicate mean losses: each size's mean plus its standard error times a Student-t draw
    with that size's degrees of freedom (the sampling distribution of a mean of normal runs), kept positive."""
    t = rng.standard_t(means.dof, size=(n_boot, len(means.names)))
    return np.maximum(means.loss + means.sem * t, 1e-9 * means.loss)


def parametric_fit(points, n_boot: int = 2000, seed: int = 0) -> BootstrapFit:
    """The fit on the size means and ``n_boot`` refits on means drawn from their t distributions (``draw_means``),
    each refit from the full fit and two far starts. The percentile intervals of these refits cover at 3-5 seeds a
    size, where resampling 3 seeds gives [min, max] of each size (a parametric bootstrap, Efron & Tibshirani 1993,
    ch. 6). Remembered per input (``fit_cache``)."""
    points = [tuple(p) for p in points]
    return fit_cache.cached("power", _parametric_fit, points, n_boot, seed, (__name__, lm_fit.__name__))


def _parametric_fit(points, n_boot: int, seed: int) -> BootstrapFit:
    means = size_means(points)
    full = fit_power_law(means.compute, means.loss)
    draws = draw_means(means, n_boot, np.random.default_rng(seed))
    fits = fit_power_laws(means.compute, draws, start=full, restarts=True)
    return BootstrapFit(full, fits, loglog_slope(means.compute, means.loss),
                        [loglog_slope(means.compute, d) for d in draws])


def loglog_slope(compute, loss) -> float:
    """The exponent of a pure power law L = A·C^(−α) (no floor): minus the least-squares slope of log L on log C."""
    return -float(np.polyfit(np.log(np.asarray(compute, float)), np.log(np.asarray(loss, float)), 1)[0])


def compute_multiplier(dense: BootstrapFit | PowerLaw, compute: float, loss: float) -> dict:
    """The dense compute that reaches ``loss`` on the dense fit, over ``compute``: > 1 means the lever saves
    compute. With a BootstrapFit, a 95% CI from its refits. A loss at or below the fit's floor E has no dense
    equivalent on the curve: the result says so (``below_floor``) instead of extrapolating a number."""
    fit = dense.fit if isinstance(dense, BootstrapFit) else dense
    out = {"multiplier": math.nan, "ci": (math.nan, math.nan), "below_floor": loss <= fit.E, "dense_compute": None}
    if out["below_floor"]:
        out["note"] = f"loss {loss:.4g} is at or below the dense fit's floor E = {fit.E:.4g}; no dense compute reaches it"
        return out
    out["dense_compute"] = fit.compute_for(loss)
    out["multiplier"] = out["dense_compute"] / compute
    if isinstance(dense, BootstrapFit):
        refits = [f.compute_for(loss) / compute for f in dense.fits]
        out["ci"] = percentile_interval([r for r in refits if math.isfinite(r)])
    return out


def local_exponents(compute, loss) -> dict:
    """α fitted on the lower and on the upper half of the compute range (by median compute): does it flatten?"""
    c, y = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    mid = np.median(c)
    low, high = c <= mid, c >= mid
    return {"alpha_lower": fit_power_law(c[low], y[low]).alpha, "alpha_upper": fit_power_law(c[high], y[high]).alpha}


def training_compute(summary: dict, config: dict) -> dict:
    """Training FLOPs two ways, each named: XLA's per-step cost analysis × steps, and 6 · active parameters ·
    tokens (Kaplan et al. 2020), where a run records ``active_params`` and ``tokens_per_example``."""
    out = {}
    if summary.get("flops_per_step"):
        out["flops_cost_analysis"] = float(summary["flops_per_step"]) * summary["steps"]
    final = summary.get("final", {})
    active = final.get("active_params") or summary.get("param_count")
    tokens = final.get("tokens_per_example")
    if active and tokens:
        out["flops_6nd"] = 6.0 * active * tokens * summary.get("examples_seen", 0)
        out["train_tokens"] = float(tokens * summary.get("examples_seen", 0))
    return out
