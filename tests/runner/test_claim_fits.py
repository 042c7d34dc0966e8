"""Claim conditions on fitted quantities (experiments.claims.fits): α, compute multipliers, α's change, bad files.

No training: the runs are dicts shaped like ``report.load_runs``'s, with losses drawn from known laws."""

import json
import math

import numpy as np
import pytest

from experiments import ConfigError
from experiments.analysis import PowerLaw
from experiments.claims import describe_condition, judge, load_claim, load_claim_runs
from experiments.claims import fits as claim_fits

DENSE = PowerLaw(E=1.5, log_A=math.log(30.0), alpha=0.3)
COMPUTE = np.logspace(9, 13, 5)
ALPHA = {"a": {"variant": "dense"}, "fit": "alpha", "compute": "train_flops", "metric": "bits_per_char", "op": ">=",
         "threshold": 0.05}


@pytest.fixture(autouse=True)
def fewer_refits(monkeypatch):
    monkeypatch.setattr(claim_fits, "N_BOOT", 60)  # 2,000 in claims; 60 keeps the file fast


def _runs(variant, law, compute=COMPUTE, gain=1.0, seeds=3, noise=3e-4, rng_seed=1):
    """``seeds`` runs per size; each run's loss is ``law(gain · compute)`` times small multiplicative noise."""
    rng = np.random.default_rng(rng_seed)
    return [{"variant": variant, "dir": f"/fake/{variant}-{i}-{s}", "flat": {"seed": s, "model.name": "lm",
                                                                            "model.width": 16 * 2 ** i},
             "values": {"train_flops": float(c), "bits_per_char": float(law(gain * c)) * math.exp(
                 noise * rng.standard_normal())}} for i, c in enumerate(compute) for s in range(seeds)]


def _multiplier(a="moe"):
    return {"a": {"variant": a}, "b": {"variant": "dense"}, "fit": "multiplier", "metric": "bits_per_char",
            "compute": "train_flops", "op": ">=", "threshold": 2.0}


def test_alpha_ci_holds_the_true_exponent_and_decides_by_the_threshold():
    runs = _runs("dense", DENSE)
    r = judge(ALPHA, runs)
    lo, hi = r["ci"]
    assert lo <= 0.3 <= hi and hi - lo < 0.05 and r["n"] == (15, 0), r
    assert r["state"] == "holds"
    assert judge(dict(ALPHA, threshold=lo - 0.01), runs)["state"] == "holds"
    assert judge(dict(ALPHA, threshold=hi + 0.01), runs)["state"] == "fails"
    assert describe_condition(ALPHA) == "fitted α of bits_per_char against train_flops for dense >= 0.05"
    few = judge(ALPHA, _runs("dense", DENSE, compute=COMPUTE[:4]))  # 3 parameters need 5 sizes
    assert few["state"] == "undecided" and "cannot decide at this size" in few["note"] and ">= 5 sizes" in few["note"]
    assert math.isnan(few["estimate"])
    assert judge(ALPHA, [])["state"] == "missing"


def test_dense_against_its_own_fit_is_worth_one():
    runs = _runs("dense", DENSE)
    r = judge(dict(_multiplier("dense"), threshold=1.0), runs)
    assert r["estimate"] == pytest.approx(1.0, rel=0.02)
    assert [m["size"] for m in r["multipliers"]] == [f"width={16 * 2 ** i}" for i in range(5)]


def test_a_lever_reaching_dense_loss_at_a_quarter_of_the_compute_is_worth_four():
    runs = _runs("dense", DENSE) + _runs("moe", DENSE, compute=COMPUTE / 4, gain=4.0, rng_seed=2)
    r = judge(_multiplier(), runs)
    assert r["estimate"] == pytest.approx(4.0, rel=0.1) and r["state"] == "holds", r
    assert r["ci"][0] <= r["estimate"] <= r["ci"][1] and len(r["multipliers"]) == 5
    assert describe_condition(_multiplier()) == ("compute multiplier of moe against the dense fit (bits_per_char, "
                                        "train_flops) >= 2.0")


def test_a_lever_outside_the_baselines_measured_range_is_extrapolated_not_judged():
    runs = _runs("dense", DENSE) + _runs("moe", lambda c: 0.95 * DENSE.E, compute=COMPUTE / 4)  # below the floor
    r = judge(_multiplier(), runs)
    assert r["state"] == "extrapolated" and "outside the baseline's measured range" in r["note"]
    assert all(math.isinf(m["multiplier"]) for m in r["multipliers"])
    beyond = _runs("dense", DENSE) + _runs("moe", DENSE, compute=COMPUTE[-1:] * 4)  # past the largest dense run
    r = judge(dict(_multiplier(), threshold=0.5), beyond)  # a number is reported, but no verdict from it
    assert r["state"] == "extrapolated" and math.isfinite(r["estimate"]) and "measured range" in r["note"]


def test_alpha_change_sees_an_exponent_flatten():
    def bent(c):  # a pure power law steeper below 1e11 (α = 0.4) than above (α = 0.1); 1e11 is the median size
        return 2.0 * (c / 1e11) ** (-0.4 if c < 1e11 else -0.1)

    cond = dict(ALPHA, fit="alpha_change", op="<=", threshold=0.0)
    r = judge(cond, _runs("dense", bent, compute=np.logspace(9, 13, 7)))  # 4 sizes a half, the median in both
    assert r["estimate"] == pytest.approx(-0.3, abs=0.01) and r["ci"][1] < 0 and r["state"] == "holds", r
    assert [h["sizes"] for h in r["halves"]] == [4, 4] and r["halves"][0]["slope"] == pytest.approx(0.4, abs=0.01)
    few = judge(cond, _runs("dense", bent, compute=np.logspace(9, 13, 6)))
    assert few["state"] == "undecided" and "cannot decide at this size" in few["note"]


def _trend(op="<=", threshold=0.0):
    return {"a": {"variant": "spiking"}, "b": {"variant": "dense"}, "fit": "ratio_trend", "metric": "bits_per_char",
            "compute": "train_flops", "op": op, "threshold": threshold}


def test_ratio_trend_is_the_slope_of_the_ratio_per_decade_of_compute():
    """A tax of 1.2 at 1e9 FLOPs falling 0.02 per decade: the slope (NumPy's polyfit of the size ratios) is found,
    its CI holds it, and a tax that does not change is no trend."""
    tax = {float(c): 1.2 - 0.02 * (math.log10(c) - 9) for c in COMPUTE}
    runs = _runs("dense", DENSE, seeds=8, noise=3e-3) + [dict(r, variant="spiking", dir=r["dir"] + "s", values={
        **r["values"], "bits_per_char": r["values"]["bits_per_char"] * tax[r["values"]["train_flops"]]})
        for r in _runs("dense", DENSE, seeds=8, noise=3e-3, rng_seed=5)]
    r = judge(_trend(), runs)
    expected = np.polyfit(np.log10(COMPUTE), [m["ratio"] for m in r["ratios"]], 1)[0]
    assert r["estimate"] == pytest.approx(expected) == pytest.approx(-0.02, abs=2e-3)
    assert r["ci"][0] <= -0.02 <= r["ci"][1] and r["ci"][1] < 0 and r["state"] == "holds", r
    assert [m["size"] for m in r["ratios"]] == [f"width={16 * 2 ** i}" for i in range(5)]
    flat = _runs("dense", DENSE, seeds=8, noise=3e-3) + [dict(r, variant="spiking", dir=r["dir"] + "s")
                                                for r in _runs("dense", DENSE, seeds=8, noise=3e-3, rng_seed=5)]
    assert judge(_trend(), flat)["state"] == "undecided"
    assert describe_condition(_trend()) == ("change of spiking's bits_per_char over dense's per tenfold train_flops of dense "
                                   "<= 0.0")
    few = judge(_trend(), runs[:16] + [r for r in runs if r["variant"] == "spiking"])
    assert few["state"] == "undecided" and ">= 4 sizes both sides ran" in few["note"]


def test_a_rate_tuned_per_width_neither_splits_sizes_nor_labels_groups(tmp_path):
    """Per-width tuning gives the widest dense arm another rate: read from run folders with the tuned field as a
    setting, the trend still pairs all five widths (without it, width 256 splits in two and the sides share four
    sizes, one without a second run)."""
    claim_runs = []
    for r in _runs("dense", DENSE) + [dict(r, variant="spiking") for r in _runs("dense", DENSE, rng_seed=5)]:
        d = tmp_path / f"{r['variant']}-{r['flat']['model.width']}-{r['flat']['seed']}"
        d.mkdir()
        wide = r["variant"] == "dense" and r["flat"]["model.width"] == 256
        config = {"seed": r["flat"]["seed"], "model": {"name": "lm", "width": r["flat"]["model.width"]},
                  "optimizer": {"learning_rate": 3e-3 if wide else 6e-3}}
        (d / "config.json").write_text(json.dumps(config))
        (d / "summary.json").write_text(json.dumps({"steps": 1, "final": r["values"]}))
        claim_runs.append((r["variant"], d))
    runs = load_claim_runs(claim_runs, ["optimizer.learning_rate"])
    assert {r["setting"]["optimizer.learning_rate"] for r in runs} == {3e-3, 6e-3}
    r = judge(_trend(), runs)
    assert [m["size"] for m in r["ratios"]] == [f"width={16 * 2 ** i}" for i in range(5)], r
    split = judge(_trend(), load_claim_runs(claim_runs))
    assert "width=256" not in [m["size"] for m in split.get("ratios", [])], split


@pytest.mark.parametrize("cond, message", [
    ('fit = "beta"', "fit 'beta' is not allowed; use one of alpha, E, multiplier, alpha_change, ratio_trend"),
    ('fit = "ratio_trend"', "needs b = { variant = ... }"),
    ('fit = "multiplier"', "needs b = { variant = ... }"),
    ('fit = "alpha", compare = "ratio", b = { variant = "b" }', "cannot be given together"),
], ids=["unknown fit", "ratio_trend without b", "multiplier without b", "fit with compare"])
def test_bad_fit_conditions_are_refused_in_one_line(tmp_path, cond, message):
    bad = tmp_path / "bad.toml"
    bad.write_text('[claim]\nid = 9\ntitle = "t"\nstatement = "s"\nsource = "s"\nexperiment = "x.toml"\n'
                   f'[[claim.cases]]\nconditions = [{{ a = {{ variant = "a" }}, {cond}, metric = "m", op = ">=", '
                   'threshold = 1 }]\n')
    with pytest.raises(ConfigError) as err:
        load_claim(bad)
    assert str(err.value).startswith(f"{bad}: ") and message in str(err.value) and "\n" not in str(err.value)
