"""Table cells: how every report writes a number and an interval ("estimate [low, high]").

One home for the formatting all sections share (compare, post-stage tables, fronts, scaling, claims), so a cell reads
the same everywhere and a change of interval method (``experiments.analysis.stats``) reaches every table at once.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.analysis import stats


def number(x) -> str:
    """Four significant figures; scientific outside [1e-3, 1e5); ``n/a`` for None or NaN, ``not reached`` for inf."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "not reached"
    a = abs(x)
    return f"{x:.4g}" if (a == 0 or 1e-3 <= a < 1e5) else f"{x:.3e}"


def interval(estimate, low, high) -> str:
    """``"estimate [low, high]"``."""
    return f"{number(estimate)} [{number(low)}, {number(high)}]"


def compact(estimate, low, high) -> str:
    """``interval``, or the estimate alone where there is no interval (one seed) or it has no width."""
    if math.isnan(low) or math.isnan(high) or low == high == estimate:
        return number(estimate)
    return interval(estimate, low, high)


def mean_cell(values) -> str:
    """The mean of ``values`` (seeds) with its 95% interval."""
    return interval(*stats.mean_ci(values))


def median_cell(values) -> str:
    """The median of ``values`` (censored runs as inf) with its 95% bootstrap interval."""
    return interval(*stats.bootstrap_ci(values, statistic=np.median))
