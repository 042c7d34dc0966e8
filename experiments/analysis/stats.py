"""Statistics for comparisons over seeds: intervals that cover at 3-5 seeds, and time-to-target with censoring.

Means, differences and ratios of means get t intervals, which cover what they claim at any n >= 2 for normal
data (Student 1908; Welch 1947 with Satterthwaite's degrees of freedom for two arms of unequal variance):

* ``mean_ci(x)``: the mean with a Student-t interval.
* ``difference_ci(a, b, paired=)``: mean(a) − mean(b). Unpaired: Welch. Paired (the arms share seeds, so the same
  batches; or a post-training stage and its own run): a t interval on the per-seed differences.
* ``ratio_ci(a, b, paired=)``: a ratio of means. Unpaired: Welch on the log ratio (the delta method's standard
  error of log mean(a) − log mean(b), Satterthwaite df). Paired: a t interval on the log per-seed ratios, so the
  estimate is their geometric mean.

All three take 1-D sequences (NaNs dropped) or arrays ``[..., n]`` (intervals along the last axis, for coverage
simulations); fewer than two values give ``(estimate, nan, nan)``: no interval. The coverage at n = 3, 5 and 10, on
normal and log-normal data, is checked by simulation in ``tests/runner/test_stats.py``.

A percentile bootstrap over n seeds is no substitute: at n = 3 it is [min, max] of the three and covers about 75%.
It stays only for medians to a target, where censored runs (``inf``) rule out a t interval, and it says when n is too
small to trust (``bootstrap_note``; Efron & Tibshirani 1993, ch. 13). Time-to-target: the target is fixed in the
config before any run (``train.target_metric``, ``target_value``, ``target_mode``); a run that never reaches it is
*censored* and counts as ``inf``, so medians stay defined while fewer than half the runs are censored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.special import stdtrit

LEVEL = 0.95
MIN_BOOTSTRAP_N = 8  # below this a percentile bootstrap's interval is a few order statistics


def _clean(x) -> np.ndarray:
    """1-D input without NaN/None; arrays of more dimensions as they are."""
    if isinstance(x, np.ndarray) and x.ndim > 1:
        return x.astype(float)
    return np.asarray([v for v in x if v is not None and not (isinstance(v, float) and math.isnan(v))], float)


def _t_interval(est, se, df, level: float):
    """``(est, est − q·se, est + q·se)`` with q the t quantile at ``df``; NaN bounds where df < 1."""
    est, se, df = np.asarray(est, float), np.asarray(se, float), np.asarray(df, float)
    with np.errstate(invalid="ignore"):
        q = np.where(df >= 1, stdtrit(np.maximum(df, 1), 0.5 + level / 2), np.nan)
    return _out(est, est - q * se, est + q * se)


def _out(est, lo, hi):
    if np.ndim(est) == 0:
        return float(est), float(lo), float(hi)
    return est, lo, hi


def _mean_se_df(x: np.ndarray):
    n = x.shape[-1]
    if n < 2:
        return x.mean(-1) if n else np.float64(math.nan), np.nan, 0
    return x.mean(-1), x.std(-1, ddof=1) / math.sqrt(n), n - 1


def mean_ci(x, level: float = LEVEL):
    """``(mean, low, high)``: a Student-t interval for the mean of ``x`` (n − 1 degrees of freedom)."""
    return _t_interval(*_mean_se_df(_clean(x)), level)


def _welch(va, na, vb, nb):
    """The Welch standard error and Satterthwaite df from each arm's squared standard error ``va``/``vb``."""
    se2 = va + vb
    with np.errstate(invalid="ignore", divide="ignore"):
        df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return np.sqrt(se2), np.where(se2 > 0, df, na + nb - 2)


def _pair(a, b, paired: bool):
    a, b = _clean(a), _clean(b)
    if paired and a.shape != b.shape:
        raise ValueError(f"paired: the arms have {a.shape[-1]} and {b.shape[-1]} values; paired arms share seeds")
    return a, b


def difference_ci(a, b, *, paired: bool = False, level: float = LEVEL):
    """``(mean(a) − mean(b), low, high)``: Welch's interval, or the paired t interval on ``a − b`` per seed."""
    a, b = _pair(a, b, paired)
    if paired:
        return mean_ci(a - b, level)
    na, nb = a.shape[-1], b.shape[-1]
    est = a.mean(-1) - b.mean(-1) if na and nb else math.nan
    if min(na, nb) < 2:
        return _out(np.asarray(est), np.nan, np.nan)
    se, df = _welch(a.var(-1, ddof=1) / na, na, b.var(-1, ddof=1) / nb, nb)
    return _t_interval(est, se, df, level)


def ratio_ci(a, b, *, paired: bool = False, level: float = LEVEL):
    """``(mean(a) / mean(b), low, high)`` for positive values: Welch on the log ratio (delta-method standard errors
    of each log mean, Satterthwaite df), or, paired, the t interval on log(a / b) per seed, exponentiated (its
    estimate is the geometric mean of the per-seed ratios)."""
    a, b = _pair(a, b, paired)
    if paired:
        return tuple(np.exp(v) if np.ndim(v) else math.exp(v) for v in mean_ci(np.log(a / b), level))
    na, nb = a.shape[-1], b.shape[-1]
    if min(na, nb) < 2:
        est = a.mean(-1) / b.mean(-1) if na and nb else math.nan
        return _out(np.asarray(est), np.nan, np.nan)
    ma, mb = a.mean(-1), b.mean(-1)
    va = a.var(-1, ddof=1) / (na * ma**2)
    vb = b.var(-1, ddof=1) / (nb * mb**2)
    se, df = _welch(va, na, vb, nb)
    est, lo, hi = _t_interval(np.log(ma / mb), se, df, level)
    return _out(np.exp(est), np.exp(lo), np.exp(hi))


# ------------------------------------------------------------------------------------ bootstrap (medians only)


def percentile_interval(values, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaNs dropped; ``inf`` kept, so a bound may be unbounded)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2], method="lower" if np.isinf(v).any() else "linear")
    return float(lo), float(hi)


def bootstrap_note(n: int) -> str | None:
    """Why a bootstrap interval over ``n`` seeds should not be read as 95%, or None."""
    if n < MIN_BOOTSTRAP_N:
        return (f"{n} seeds are too few for a bootstrap interval (it is a few order statistics; "
                f">= {MIN_BOOTSTRAP_N} needed): read it as the range, not a 95% interval")
    return None


def bootstrap_ci(values, statistic=np.median, level: float = LEVEL, n_boot: int = 2000, seed: int = 0):
    """``(estimate, low, high)`` of ``statistic`` with a percentile-bootstrap interval, for medians to a target
    (``inf`` values are censored runs and stay in). One value gives that value as its interval."""
    x = _clean(values)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    est = float(statistic(x))
    if x.size == 1:
        return (est, est, est)
    rng = np.random.default_rng(seed)
    return (est, *percentile_interval(statistic(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1), level))


def median_ratio_ci(a, b, level: float = LEVEL, n_boot: int = 2000, seed: int = 0):
    """``(median(a) / median(b), low, high)``, each arm resampled independently; ``inf`` entries are censored runs
    (a ratio with an infinite numerator is ``inf``, with an infinite denominator 0, with both undefined)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan, math.nan)

    def ratio(sa, sb):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.asarray(sa, float) / np.asarray(sb, float)
        return np.where(np.isinf(sa) & np.isinf(sb), np.nan, r)

    est = float(ratio(np.median(a), np.median(b)))
    rng = np.random.default_rng(seed)
    boots = ratio(np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1),
                  np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1))
    return (est, *percentile_interval(boots, level))


def median_difference_ci(a, b, level: float = LEVEL, n_boot: int = 2000, seed: int = 0):
    """``(median(a) − median(b), low, high)``, each arm resampled independently."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    boots = (np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
             - np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1))
    return (float(np.median(a) - np.median(b)), *percentile_interval(boots, level))


# ------------------------------------------------------------------------------------------------ time to target


def time_to_target(steps, values, target: float, mode: str = "max") -> float:
    """The first ``steps[i]`` at which ``values[i]`` reaches ``target`` (>= for max, <= for min); ``inf`` if never."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode: {mode!r} is not allowed; use 'max' or 'min'")
    for s, v in zip(steps, values):
        if v is not None and not math.isnan(v) and (v >= target if mode == "max" else v <= target):
            return float(s)
    return math.inf


COUNTED = ("loss_evals", "grad_evals")  # folded into forward_evals / backward_evals below


def epochs_to_target(run_dir: str | Path, metric: str | None = None, target: float | None = None,
                     mode: str | None = None) -> dict:
    """Per run: steps, epochs and evaluations at the first eval reaching the target.

    The target defaults to the run's own config (``train.target_*``). ``forward_evals`` / ``backward_evals`` =
    the runner's one value-and-grad per step plus the optimizer's ``loss_evals`` / ``grad_evals``; every other
    ``*_evals`` counter the run logged is reported under its own name.
    Censored runs (never reached) report ``inf`` for each and ``censored: True``.
    """
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    train = cfg.get("train", {})
    metric = metric or train.get("target_metric")
    target = train.get("target_value") if target is None else target
    mode = mode or train.get("target_mode", "max")
    if not metric:
        raise ValueError(f"{run_dir}: no target metric; set train.target_metric in the config or pass metric=")
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [e for e in events if e.get("split") == "eval" and metric in e]
    counters = sorted({k for e in evals for k in e if k.endswith("_evals") and k not in COUNTED})
    step = time_to_target([e["step"] for e in evals], [e[metric] for e in evals], target, mode)
    out = {"metric": metric, "target": target, "step": step, "censored": math.isinf(step), "epoch": math.inf,
           "forward_evals": math.inf, "backward_evals": math.inf, **{k: math.inf for k in counters}}
    if not math.isinf(step):
        event = next(e for e in evals if e["step"] == step)
        out["epoch"] = event.get("epoch") if event.get("epoch") is not None else math.inf
        out["forward_evals"] = step + event.get("loss_evals", 0)
        out["backward_evals"] = step + event.get("grad_evals", 0)
        out.update({k: event.get(k, 0) for k in counters})
    return out


def to_target_key(metric: str) -> str | None:
    """The ``epochs_to_target`` field a claim metric names: ``steps_to_target`` → ``step``, ``epochs_to_target``
    → ``epoch``, ``X_evals_to_target`` → ``X_evals``; None for any other metric."""
    if not metric.endswith("_to_target"):
        return None
    key = metric[: -len("_to_target")]
    return {"steps": "step", "epochs": "epoch"}.get(key, key if key.endswith("_evals") else None)
