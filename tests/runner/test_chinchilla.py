"""L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, approach 3): exact recovery, the compute-optimal frontier, its
local exponent, and the claim condition that asks whether it flattens."""

import math

import numpy as np
import pytest

from experiments.analysis.chinchilla import Law, fit_law
from experiments.claims import fits as claim_fits
from experiments.claims import judge

HOFFMANN = Law(E=1.69, log_A=math.log(406.4), alpha=0.34, log_B=math.log(410.7), beta=0.28)  # their fitted law
N, D = np.meshgrid([1e6, 3e6, 1e7], [1e7, 3e7, 1e8])
N, D = N.ravel(), D.ravel()


def test_exact_cells_give_the_exact_law():
    fit = fit_law(N, D, HOFFMANN(N, D))
    for name in ("E", "log_A", "alpha", "log_B", "beta"):
        assert getattr(fit, name) == pytest.approx(getattr(HOFFMANN, name), rel=1e-3), name
    with pytest.raises(ValueError, match="n, d, loss"):
        fit_law(N[:4], D[:4], HOFFMANN(N[:4], D[:4]))


def test_the_frontier_is_the_minimum_at_fixed_compute_and_its_exponent_is_the_log_slope():
    c = 1e15
    n, d, loss = HOFFMANN.optimal(c)
    assert n * d * 6 == pytest.approx(c)
    for k in (0.5, 0.8, 1.25, 2.0):  # any other split of the same compute is worse
        assert HOFFMANN(n * k, d / k) > loss
    slope = -(math.log(HOFFMANN.optimal(c * 1.1)[2]) - math.log(HOFFMANN.optimal(c / 1.1)[2])) / (2 * math.log(1.1))
    assert HOFFMANN.local_exponent(c) == pytest.approx(slope, rel=1e-3)
    assert HOFFMANN.local_exponent(1e20) < HOFFMANN.local_exponent(1e15)  # a floor: the law flattens


def _runs(seeds=2, noise=0.002, law=HOFFMANN):
    rng = np.random.default_rng(0)
    return [{"variant": "dense", "dir": f"/fake/{i}-{s}", "flat": {"seed": s, "model.width": int(n / 1e4),
                                                                    "train.steps": int(d / 1e5)},
             "values": {"active_params": float(n), "train_tokens": float(d),
                        "bits_per_char": float(law(n, d)) + noise * rng.standard_normal()}}
            for i, (n, d) in enumerate(zip(N, D)) for s in range(seeds)]


def test_frontier_change_sees_the_flattening_and_needs_seven_cells(monkeypatch):
    monkeypatch.setattr(claim_fits, "N_BOOT", 8)
    cond = {"a": {"variant": "dense"}, "fit": "frontier_change", "metric": "bits_per_char", "op": "<=",
            "threshold": 0.0}
    r = judge(cond, _runs())
    c = 6 * N * D
    lo, hi = np.exp(np.quantile(np.log(c), [0.25, 0.75]))
    true = HOFFMANN.local_exponent(hi) - HOFFMANN.local_exponent(lo)
    assert r["estimate"] == pytest.approx(true, abs=0.01) and r["ci"][0] <= r["estimate"] <= r["ci"][1], r
    assert [h["half"] for h in r["halves"]] == ["lower", "upper"]
    few = judge(cond, [run for run in _runs() if run["values"]["train_tokens"] < 1e8])  # 6 cells
    assert few["state"] == "undecided" and "cannot decide at this size" in few["note"] and ">= 7 sizes" in few["note"]


def test_e_is_free_of_sign_so_the_frontier_can_steepen_and_the_test_can_fail(monkeypatch):
    """With E = exp(e) > 0 the frontier flattens whatever the cells say; E is fitted free, so cells of a law with
    E < 0 (its curvature the other way) give a steepening frontier and a positive change, whole interval."""
    steep = Law(E=-0.6, log_A=HOFFMANN.log_A, alpha=0.34, log_B=HOFFMANN.log_B, beta=0.28)
    fit = fit_law(N, D, steep(N, D))
    assert fit.E == pytest.approx(-0.6, abs=1e-3) and fit.alpha == pytest.approx(0.34, rel=1e-3)
    monkeypatch.setattr(claim_fits, "N_BOOT", 8)
    cond = {"a": {"variant": "dense"}, "fit": "frontier_change", "metric": "bits_per_char", "op": "<=",
            "threshold": 0.0}
    r = judge(cond, _runs(law=steep))
    assert r["estimate"] > 0 and r["ci"][0] > 0 and r["state"] == "fails", r
    (floor,) = r["parts"]
    assert floor["estimate"] == pytest.approx(-0.6, abs=0.05) and floor["ci"][1] < 0
