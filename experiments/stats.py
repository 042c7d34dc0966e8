"""Statistics for comparisons: bootstrap confidence intervals and time-to-target with censoring.

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13). Time-to-target: the target is fixed in the config before any
run (``train.target_metric``, ``target_value``, ``target_mode``); a run that never reaches it is *censored* and
counts as ``inf`` — slower than any run that did — so medians and their ratios stay defined while fewer than half the
runs are censored, and become ``inf`` (reported as "not reached") past that, instead of silently dropping failures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def bootstrap_ci(values, statistic=np.mean, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """``(estimate, low, high)`` of ``statistic`` over ``values`` with a percentile-bootstrap interval.

    With one value the interval is that value; NaNs are dropped; ``inf`` values are kept (censored runs).
    """
    x = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    est = float(statistic(x))
    if x.size == 1:
        return (est, est, est)
    rng = np.random.default_rng(seed)
    boots = statistic(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], method="lower")
    return (est, float(lo), float(hi))


def ratio_ci(a, b, statistic=np.median, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """``(ratio, low, high)`` of ``statistic(a) / statistic(b)``, each group resampled independently.

    ``inf`` entries are censored runs; a ratio with an infinite numerator or denominator is ``inf`` or 0.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan, math.nan)

    def ratio(sa, sb):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.asarray(sa, float) / np.asarray(sb, float)
        return np.where(np.isinf(sa) & np.isinf(sb), np.nan, r)

    est = float(ratio(statistic(a), statistic(b)))
    rng = np.random.default_rng(seed)
    ra = statistic(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    rb = statistic(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    boots = ratio(ra, rb)
    boots = boots[~np.isnan(boots)]
    if boots.size == 0:
        return (est, math.nan, math.nan)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], method="lower")
    return (est, float(lo), float(hi))


def difference_ci(a, b, statistic=np.mean, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """``(difference, low, high)`` of ``statistic(a) - statistic(b)``, each group resampled independently."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan, math.nan)
    est = float(statistic(a) - statistic(b))
    rng = np.random.default_rng(seed)
    boots = (statistic(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
             - statistic(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1))
    boots = boots[~np.isnan(boots)]
    if boots.size == 0:
        return (est, math.nan, math.nan)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], method="lower")
    return (est, float(lo), float(hi))


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
