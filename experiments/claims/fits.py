"""Claim conditions on fitted quantities: a power-law exponent, its change over the compute range, a compute multiplier.

A condition with ``fit = ...`` (instead of ``compare``) tests a quantity fitted to side a's runs::

    { a = { variant = "dense" }, fit = "alpha", compute = "train_flops", metric = "bits_per_char", op = ">=",
      threshold = 0.05 }

Points: one per run of a side, ``(size, values[compute], values[metric])``; ``compute`` defaults to
``"train_flops"``. A run's size is its values of the numeric config fields (seed aside) that differ among the side's
runs, as ``scaling_report.families`` splits them. Every fit is ``scaling.bootstrap_fit`` (L(C) = E + A·C^(−α),
``N_BOOT`` = 200 refits on seeds resampled within sizes, seed 0), and needs >= 3 sizes with >= 2 runs each (one run
per size leaves nothing to resample); short of that the condition is undecided, with a note saying why.

- ``fit = "alpha"`` (or ``"E"``): the full fit's value; CI: ``BootstrapFit.ci``.
- ``fit = "multiplier"``: side b is the baseline fit; each of side a's sizes gives (mean compute, mean loss), and
  the estimate is the geometric mean over those sizes of ``fit.compute_for(loss) / compute`` (> 1: side a needs
  less compute). CI: 2.5/97.5 percentiles of the same geometric mean over the baseline's refits (side a's seeds are
  not resampled). A mean loss at or below the baseline's floor E leaves it undecided: no extrapolation. The result
  also lists each size's multiplier (``multipliers``).
- ``fit = "alpha_change"``: α fitted on the upper half of the compute range minus α on the lower half (sizes split
  at the median of their mean compute, the median size in both halves; each half needs >= 3 sizes). CI: percentiles
  of the difference over paired refits of the two halves (bootstrap seeds 0 and 1). Negative: the exponent
  flattens. The result lists each half's α and its pure power law's exponent (E = 0), with CIs (``halves``).
- ``fit = "ratio_trend"``: how side a's metric over side b's changes as the model grows (a spike tax shrinking, a
  lever's gain growing). Per size both sides ran: the ratio of their mean metrics; the estimate is the least-squares
  slope of that ratio against log10 of b's mean compute (change per tenfold compute). Needs >= 3 shared sizes with
  >= 2 runs a side; CI: percentiles over ``N_BOOT`` refits with each side's seeds resampled within each size
  (seed 0). The result lists each size's ratio (``ratios``). Negative: the ratio falls as the model grows.

``estimate`` returns ``estimate``, ``ci`` and ``n`` (runs with both values on side a, side b), plus ``state`` only
when it is decided here (missing / undecided) and ``note`` where relevant; ``claims.judge`` decides holds / fails /
undecided from the CI exactly as for the other conditions.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.analysis import scaling
from experiments.analysis.folders import families, points
from experiments.analysis.stats import percentile_interval

FITS = ("alpha", "E", "multiplier", "alpha_change", "ratio_trend")
PAIRED = ("multiplier", "ratio_trend")  # fits of side a against side b
N_BOOT = 200
MIN_SIZES = 3


def check(cond: dict) -> str | None:
    """What is wrong with a fit condition, in one line, or None."""
    fit = cond["fit"]
    if fit not in FITS:
        return f"fit {fit!r} is not allowed; use one of {', '.join(FITS)}"
    if "compare" in cond:
        return (f"fit = {fit!r} and compare = {cond['compare']!r} cannot be given together; a fit condition tests "
                "the fitted quantity itself")
    if fit in PAIRED and "b" not in cond:
        return f"a fit = {fit!r} condition needs b = {{ variant = ... }} (the side it is measured against)"
    if fit not in PAIRED and "b" in cond:
        return f"a fit = {fit!r} condition fits side a only; b is for fit = 'multiplier' or 'ratio_trend'"
    if not isinstance(cond.get("compute", "train_flops"), str):
        return f"compute {cond['compute']!r} is not allowed; name a value such as 'train_flops'"
    return None


def describe(cond: dict, a: str, b: str = "") -> str:
    """A readable line for a fit condition; ``a`` and ``b`` label the sides."""
    metric, compute, fit = cond["metric"], cond.get("compute", "train_flops"), cond["fit"]
    if fit == "multiplier":
        expr = f"compute multiplier of {a} against the {b} fit ({metric}, {compute})"
    elif fit == "ratio_trend":
        expr = f"change of {a}'s {metric} over {b}'s per tenfold {compute} of {b}"
    elif fit == "alpha_change":
        expr = f"change in fitted α (upper minus lower half of {compute}) of {metric} for {a}"
    else:
        expr = f"fitted {'α' if fit == 'alpha' else fit} of {metric} against {compute} for {a}"
    return f"{expr} {cond['op']} {cond['threshold']}"


def estimate(cond: dict, a_runs: list[dict], b_runs: list[dict]) -> dict:
    """The fitted quantity of ``cond`` from side a's (and b's) runs, with its 95% CI; never raises on bad points."""
    compute, metric = cond.get("compute", "train_flops"), cond["metric"]
    a, b = _side_points(a_runs, compute, metric), _side_points(b_runs, compute, metric)
    try:
        if not a or (cond["fit"] in PAIRED and not b):
            out = _undecided(f"no run of side {'b' if a else 'a'} has numeric {compute} and {metric}", "missing")
        elif cond["fit"] == "multiplier":
            out = _multiplier(a, b)
        elif cond["fit"] == "ratio_trend":
            out = _ratio_trend(a, b)
        elif cond["fit"] == "alpha_change":
            out = _alpha_change(a)
        else:
            out = _fitted(a, cond["fit"])
    except ValueError as err:  # fit_power_law refuses non-positive values
        out = _undecided(f"no fit: {err}")
    return {**out, "n": (len(a), len(b))}


def _side_points(runs: list[dict], compute: str, metric: str) -> list[tuple]:
    """``(size, compute, metric)`` per run; a side whose runs also differ in text fields keys sizes by family too."""
    fams, _ = families(runs)
    by_size = {(size if len(fams) == 1 else f"{fam}, {size}"): rs for fam, sizes in fams.items()
               for size, rs in sizes.items()}
    return points(by_size, compute, metric)


def _undecided(note: str, state: str = "undecided") -> dict:
    return {"state": state, "estimate": math.nan, "ci": (math.nan, math.nan), "note": note}


def _unfittable(points) -> str | None:
    """Why ``points`` can't get a bootstrap fit with a CI, or None."""
    counts: dict = {}
    for s, _, _ in points:
        counts[s] = counts.get(s, 0) + 1
    if len(counts) < MIN_SIZES:
        return f"a fit needs runs of >= {MIN_SIZES} sizes; found {len(counts)} ({', '.join(map(str, counts))})"
    single = [s for s, k in counts.items() if k < 2]
    if single:
        return f"size {single[0]} has one run: no seeds to resample for a CI"
    return None


def _boot(points, seed: int = 0) -> scaling.BootstrapFit:
    return scaling.bootstrap_fit(points, n_boot=N_BOOT, seed=seed)


def _fitted(points, name: str) -> dict:
    why = _unfittable(points)
    if why:
        return _undecided(why)
    boot = _boot(points)
    return {"estimate": getattr(boot.fit, name), "ci": boot.ci(name)}


def _means(points) -> dict:
    """``{size: (mean compute, mean loss)}``."""
    return {s: (float(c.mean()), float(y.mean())) for s, (c, y) in _by_size(points).items()}


def _ratio(fit: scaling.PowerLaw, compute: float, loss: float) -> float:
    """Baseline compute reaching ``loss`` over ``compute``; ``inf`` at or below the floor or past float range."""
    try:
        return fit.compute_for(loss) / compute
    except OverflowError:
        return math.inf


def _geomean(fit: scaling.PowerLaw, means: dict) -> float:
    ratios = [_ratio(fit, c, y) for c, y in means.values()]
    return math.inf if math.inf in ratios else math.exp(float(np.mean(np.log(ratios))))


def _multiplier(a, b) -> dict:
    why = _unfittable(b)
    if why:
        return _undecided(f"baseline (side b): {why}")
    boot, means = _boot(b), _means(a)
    per_size = [{"size": s, "compute": c, "loss": y, "multiplier": _ratio(boot.fit, c, y)}
                for s, (c, y) in means.items()]
    low = [m for m in per_size if m["loss"] <= boot.fit.E]
    if low:
        out = _undecided(f"mean loss {low[0]['loss']:.4g} at {low[0]['size']} is at or below the baseline "
                               f"fit's floor E = {boot.fit.E:.4g}: no baseline compute reaches it (no extrapolation)")
        return {**out, "multipliers": per_size}
    refits = [_geomean(f, means) for f in boot.fits]
    out = {"estimate": _geomean(boot.fit, means), "ci": percentile_interval(refits), "multipliers": per_size}
    unbounded = sum(math.isinf(r) for r in refits)
    if unbounded:
        out["note"] = f"{unbounded} of {len(refits)} baseline refits have no compute reaching a mean loss (counted as ∞)"
    return out


def _alpha_change(points) -> dict:
    why = _unfittable(points)
    if why:
        return _undecided(why)
    compute = {s: c for s, (c, _) in _means(points).items()}
    mid = float(np.median(list(compute.values())))
    lower = [s for s, c in compute.items() if c <= mid]
    upper = [s for s, c in compute.items() if c >= mid]
    if min(len(lower), len(upper)) < MIN_SIZES:
        return _undecided(f"alpha_change needs >= {MIN_SIZES} sizes in each half of the compute range; found "
                                f"{len(lower)} at or below the median {mid:.4g} and {len(upper)} at or above it")
    low = _boot([p for p in points if p[0] in lower], seed=0)
    high = _boot([p for p in points if p[0] in upper], seed=1)
    change = [h.alpha - lo.alpha for h, lo in zip(high.fits, low.fits)]
    return {"estimate": high.fit.alpha - low.fit.alpha, "ci": percentile_interval(change),
            "alpha_lower": low.fit.alpha, "alpha_upper": high.fit.alpha, "halves": [
                {"half": name, "sizes": len(part), "alpha": b.fit.alpha, "alpha_ci": b.ci("alpha"),
                 "slope": b.slope, "slope_ci": b.ci("slope")} for name, part, b in (("lower", lower, low),
                                                                                   ("upper", upper, high))]}


def _by_size(points) -> dict:
    """``{size: (computes, metric values)}`` as arrays."""
    out: dict = {}
    for s, c, y in points:
        out.setdefault(s, ([], []))
        out[s][0].append(c)
        out[s][1].append(y)
    return {s: (np.asarray(c, float), np.asarray(y, float)) for s, (c, y) in out.items()}


def _ratio_trend(a, b) -> dict:
    sa, sb = _by_size(a), _by_size(b)
    shared = [s for s in sb if s in sa]
    if len(shared) < MIN_SIZES:
        return _undecided(f"ratio_trend needs >= {MIN_SIZES} sizes both sides ran; found {len(shared)} "
                          f"({', '.join(shared) or 'none'})")
    few = [s for s in shared if min(len(sa[s][1]), len(sb[s][1])) < 2]
    if few:
        return _undecided(f"size {few[0]} has one run on a side: no seeds to resample for a CI")
    x = np.log10([sb[s][0].mean() for s in shared])

    def slope(means_a, means_b):
        return float(np.polyfit(x, np.asarray(means_a) / np.asarray(means_b), 1)[0])

    rng = np.random.default_rng(0)

    def resampled(values):
        return rng.choice(values, size=values.size, replace=True).mean()

    refits = [slope([resampled(sa[s][1]) for s in shared], [resampled(sb[s][1]) for s in shared])
              for _ in range(N_BOOT)]
    ratios = [{"size": s, "ratio": float(sa[s][1].mean() / sb[s][1].mean())} for s in shared]
    return {"estimate": slope([sa[s][1].mean() for s in shared], [sb[s][1].mean() for s in shared]),
            "ci": percentile_interval(refits), "ratios": ratios}
