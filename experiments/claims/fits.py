"""Claim conditions on fitted quantities: a power-law exponent, its change over the compute range, a compute multiplier.

A condition with ``fit = ...`` (instead of ``compare``) tests a quantity fitted to side a's runs::

    { a = { variant = "dense" }, fit = "alpha", compute = "train_flops_6nd", metric = "bits_per_char", op = ">=",
      threshold = 0.05 }

Points: one per run of a side, ``(size, values[compute], values[metric])``; ``compute`` defaults to
``"train_flops_6nd"`` (6 · active parameters · tokens, as Kaplan et al. and Clark et al. count; XLA's count,
``train_flops``, is in every table beside it). A run's size is its values of the numeric config fields (seed aside)
that differ among the side's runs (``analysis.families``). Every size needs >= 2 runs.

Intervals come from a parametric bootstrap (``scaling.parametric_fit``): each size's mean is drawn from its Student-t
sampling distribution (mean ± standard error × t with runs − 1 degrees of freedom), ``N_BOOT`` = 2,000 times, and the
quantity is refitted from three starts each time; the interval is the 2.5/97.5 percentiles at the claim's level
(Bonferroni over its cases). Resampling 3 seeds instead gives [min, max] of each size and covers far less.

A fit needs at least its parameters + 2 sizes, else the condition says it "cannot decide at this size": 5 for the
floored law L = E + A·C^(−α) (``alpha``, ``E``, and the baseline of ``multiplier``), 4 for a slope (``ratio_trend``,
and each half of ``alpha_change``, which compares the pure power law's exponent, E = 0, of the two halves).

- ``fit = "alpha"`` (or ``"E"``): the full fit's value.
- ``fit = "multiplier"``: side b is the baseline fit; each of side a's sizes gives (mean compute, mean loss), and
  the estimate is the geometric mean over those sizes of ``fit.compute_for(loss) / compute`` (> 1: side a needs
  less compute); both sides' means are drawn in each replicate. A mean loss of side a outside the range of the
  baseline's measured size means is **extrapolated**: the condition reports the number but gives no verdict.
- ``fit = "alpha_change"``: the log-log slope's exponent on the upper half of the compute range minus that on the
  lower half (sizes split at the median of their mean compute; each half >= 4 sizes). Negative: the law flattens.
- ``fit = "frontier_change"``: Hoffmann et al.'s L(N, D) = E + A/N^α + B/D^β fitted to a grid of model sizes ×
  token budgets (``params`` = "active_params" and ``tokens`` = "train_tokens" name the values; >= 7 cells), and the
  local exponent −d log L*/d log C of its compute-optimal frontier at the geometric middles of the upper and lower
  halves of the measured 6ND, upper minus lower (``analysis.chinchilla``). Negative: the law flattens; E is fitted
  free of sign (reported beside it), so the frontier may also steepen, and the test can fail.
- ``fit = "ratio_trend"``: how side a's metric over side b's changes as the model grows: per shared size the ratio of
  the mean metrics, and the least-squares slope of that ratio against log10 of b's mean compute.

``estimate`` returns ``estimate``, ``ci`` and ``n`` (runs with both values on side a, side b), plus ``state`` only
when it is decided here (missing / undecided / extrapolated) and ``note`` where relevant; ``claims.judge`` decides
holds / fails / undecided from the interval exactly as for the other conditions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from experiments.analysis import chinchilla, scaling
from experiments.analysis.folders import families, points
from experiments.analysis.stats import percentile_interval

FITS = ("alpha", "E", "multiplier", "alpha_change", "ratio_trend", "frontier_change")
PAIRED = ("multiplier", "ratio_trend")  # fits of side a against side b
N_BOOT = 2000
LAW_SIZES = scaling.LAW_SIZES  # the floored law's 3 parameters + 2
SLOPE_SIZES = 4  # a slope's 2 parameters + 2
DEFAULT_COMPUTE = "train_flops_6nd"


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
    if not isinstance(cond.get("compute", DEFAULT_COMPUTE), str):
        return f"compute {cond['compute']!r} is not allowed; name a value such as 'train_flops_6nd'"
    return None


def describe(cond: dict, a: str, b: str = "") -> str:
    """A readable line for a fit condition; ``a`` and ``b`` label the sides."""
    metric, compute, fit = cond["metric"], cond.get("compute", DEFAULT_COMPUTE), cond["fit"]
    if fit == "multiplier":
        expr = f"compute multiplier of {a} against the {b} fit ({metric}, {compute})"
    elif fit == "ratio_trend":
        expr = f"change of {a}'s {metric} over {b}'s per tenfold {compute} of {b}"
    elif fit == "alpha_change":
        expr = f"change in the log-log exponent α (upper minus lower half of {compute}) of {metric} for {a}"
    elif fit == "frontier_change":
        expr = (f"change in the local exponent of {a}'s compute-optimal {metric} (L(N, D) fit; upper minus lower "
                "half of 6ND)")
    else:
        expr = f"fitted {'α' if fit == 'alpha' else fit} of {metric} against {compute} for {a}"
    return f"{expr} {cond['op']} {cond['threshold']}"


def estimate(cond: dict, a_runs: list[dict], b_runs: list[dict], level: float = 0.95) -> dict:
    """The fitted quantity of ``cond`` from side a's (and b's) runs, with its interval at ``level``; never raises on
    bad points."""
    compute, metric = cond.get("compute", DEFAULT_COMPUTE), cond["metric"]
    a, b = _side_points(a_runs, compute, metric), _side_points(b_runs, compute, metric)
    try:
        if cond["fit"] == "frontier_change":  # its own values: params, tokens, metric
            out = _frontier_change(a_runs, cond, level)
        elif not a or (cond["fit"] in PAIRED and not b):
            out = _undecided(f"no run of side {'b' if a else 'a'} has numeric {compute} and {metric}", "missing")
        elif cond["fit"] == "multiplier":
            out = _multiplier(a, b, level)
        elif cond["fit"] == "ratio_trend":
            out = _ratio_trend(a, b, level)
        elif cond["fit"] == "alpha_change":
            out = _alpha_change(a, level)
        else:
            out = _fitted(a, cond["fit"], level)
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


def _too_few(points, need: int, what: str) -> str | None:
    """Why ``points`` cannot give ``what`` an interval, or None."""
    counts: dict = {}
    for s, _, _ in points:
        counts[s] = counts.get(s, 0) + 1
    if len(counts) < need:
        return (f"cannot decide at this size: {what} needs >= {need} sizes (its parameters + 2); found "
                f"{len(counts)} ({', '.join(map(str, counts))})")
    single = [s for s, k in counts.items() if k < 2]
    return f"size {single[0]} has one run: no standard error for an interval" if single else None


def _interval(values, level: float) -> tuple[float, float]:
    return percentile_interval(values, level)


def _fitted(points, name: str, level: float) -> dict:
    why = _too_few(points, LAW_SIZES, "the fit L = E + A·C^(−α)")
    if why:
        return _undecided(why)
    boot = scaling.parametric_fit(points, n_boot=N_BOOT)
    return {"estimate": getattr(boot.fit, name), "ci": _interval([getattr(f, name) for f in boot.fits], level)}


def _ratio(fit: scaling.PowerLaw, compute, loss) -> np.ndarray:
    """Baseline compute reaching each ``loss`` over its ``compute``; ``inf`` at or below the floor."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        gap = np.asarray(loss, float) - fit.E
        logs = (fit.log_A - np.log(np.where(gap > 0, gap, np.nan))) / fit.alpha - np.log(compute)
        return np.where(gap > 0, np.exp(np.minimum(logs, 700)), np.inf)


def _geomean(ratios) -> float:
    r = np.asarray(ratios, float)
    return math.inf if np.isinf(r).any() else float(np.exp(np.mean(np.log(r))))


def _multiplier(a, b, level: float) -> dict:
    why = _too_few(b, LAW_SIZES, "the baseline's fit (side b)") or _too_few(a, 1, "side a")
    if why:
        return _undecided(why)
    ma, mb = scaling.size_means(a), scaling.size_means(b)
    boot = scaling.parametric_fit(b, n_boot=N_BOOT)
    per_size = [{"size": s, "compute": float(c), "loss": float(y), "multiplier": float(_ratio(boot.fit, c, y))}
                for s, c, y in zip(ma.names, ma.compute, ma.loss)]
    lo, hi = float(mb.loss.min()), float(mb.loss.max())
    draws_a = scaling.draw_means(ma, N_BOOT, np.random.default_rng(1))
    refits = [_geomean(_ratio(f, ma.compute, d)) for f, d in zip(boot.fits, draws_a)]
    out = {"estimate": _geomean([m["multiplier"] for m in per_size]), "ci": _interval(refits, level),
           "multipliers": per_size}
    outside = [m for m in per_size if not lo <= m["loss"] <= hi]
    if outside:
        out.update(state="extrapolated", note=f"extrapolated, no verdict: side a's mean loss {outside[0]['loss']:.4g} "
                   f"at {outside[0]['size']} lies outside the baseline's measured range [{lo:.4g}, {hi:.4g}]")
    return out


def _slope(x, y) -> np.ndarray:
    """Least-squares slopes of each row of ``y [R, S]`` (or one row) on ``x [S]``."""
    x = np.asarray(x, float) - np.mean(x)
    y = np.atleast_2d(np.asarray(y, float))
    return (y - y.mean(-1, keepdims=True)) @ x / (x @ x)


def _alpha_change(points, level: float) -> dict:
    why = _too_few(points, 2 * SLOPE_SIZES - 1, "the change of α over two halves")
    if why:
        return _undecided(why)
    m = scaling.size_means(points)
    mid = float(np.median(m.compute))
    lower, upper = m.compute <= mid, m.compute >= mid
    if min(lower.sum(), upper.sum()) < SLOPE_SIZES:
        return _undecided(f"cannot decide at this size: each half of the compute range needs >= {SLOPE_SIZES} "
                          f"sizes; found {lower.sum()} at or below the median {mid:.4g} and {upper.sum()} at or above")
    x, draws = np.log(m.compute), np.log(scaling.draw_means(m, N_BOOT, np.random.default_rng(0)))
    change = lambda y: -_slope(x[upper], y[..., upper]) + _slope(x[lower], y[..., lower])  # noqa: E731
    halves = [{"half": name, "sizes": int(part.sum()), "slope": float(-_slope(x[part], np.log(m.loss[part]))[0]),
               "slope_ci": _interval(-_slope(x[part], draws[:, part]), level)}
              for name, part in (("lower", lower), ("upper", upper))]
    return {"estimate": float(change(np.log(m.loss))[0]), "ci": _interval(change(draws), level), "halves": halves}


def _ratio_trend(a, b, level: float) -> dict:
    ma, mb = scaling.size_means(a), scaling.size_means(b)
    shared = [s for s in mb.names if s in ma.names]
    if len(shared) < SLOPE_SIZES:
        return _undecided(f"cannot decide at this size: ratio_trend needs >= {SLOPE_SIZES} sizes both sides ran "
                          f"(a slope's parameters + 2); found {len(shared)} ({', '.join(map(str, shared)) or 'none'})")
    ia, ib = [ma.names.index(s) for s in shared], [mb.names.index(s) for s in shared]
    x = np.log10(mb.compute[ib])
    da = scaling.draw_means(ma, N_BOOT, np.random.default_rng(0))[:, ia]
    db = scaling.draw_means(mb, N_BOOT, np.random.default_rng(1))[:, ib]
    ratios = ma.loss[ia] / mb.loss[ib]
    return {"estimate": float(_slope(x, ratios)[0]), "ci": _interval(_slope(x, da / db), level),
            "ratios": [{"size": s, "ratio": float(r)} for s, r in zip(shared, ratios)]}


def _frontier_change(runs: list[dict], cond: dict, level: float) -> dict:
    """The local exponent of the compute-optimal frontier of an L(N, D) fit (``analysis.chinchilla``) at the
    geometric middles of the upper and lower halves of the measured 6ND, upper minus lower: negative, it flattens."""
    n_key, d_key, metric = cond.get("params", "active_params"), cond.get("tokens", "train_tokens"), cond["metric"]
    fams, _ = families(runs)
    pts = [(f"{fam}, {size}" if len(fams) > 1 else size, r["values"][n_key], r["values"][d_key], r["values"][metric])
           for fam, sizes in fams.items() for size, rs in sizes.items() for r in rs
           if all(isinstance(r["values"].get(k), (int, float)) for k in (n_key, d_key, metric))]
    why = _too_few([(c, 0, y) for c, _, _, y in pts], chinchilla.CELLS, "the fit L(N, D) = E + A/N^α + B/D^β")
    if why:
        return _undecided(why)
    full, fits, (n, d, _) = chinchilla.parametric_law(pts, n_boot=N_BOOT)
    lo, hi = np.exp(np.quantile(np.log(6 * n * d), [0.25, 0.75]))
    change = [f.local_exponent(hi) - f.local_exponent(lo) for f in fits]
    return {"estimate": full.local_exponent(hi) - full.local_exponent(lo), "ci": _interval(change, level),
            "halves": [{"half": name, "sizes": int(len(n) // 2), "slope": full.local_exponent(c),
                        "slope_ci": _interval([f.local_exponent(c) for f in fits], level),
                        "what": f"the frontier's local exponent at 6ND = {c:.3g}"}
                       for name, c in (("lower", lo), ("upper", hi))],
            "parts": [{"what": "E, the fitted floor (free of sign: below 0 the frontier steepens)",
                       "estimate": full.E, "ci": _interval([f.E for f in fits], level)}],
            "law": dataclasses.asdict(full)}
