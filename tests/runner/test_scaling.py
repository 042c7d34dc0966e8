"""Scaling fits: a known power law recovered from noisy points within its parametric-bootstrap interval;
multipliers; a family with too few sizes is not fitted."""

import math

import numpy as np
import pytest

from experiments.analysis import PowerLaw, compute_multiplier, fit_power_law, local_exponents, parametric_fit

TRUE = PowerLaw(E=1.6, log_A=math.log(40.0), alpha=0.15)
SIZES = np.logspace(9, 13, 6)


def _points(noise=0.01, seeds=3, law=TRUE):
    rng = np.random.default_rng(0)
    return [(i, c, float(law(c)) * math.exp(noise * rng.standard_normal())) for i, c in enumerate(SIZES)
            for _ in range(seeds)]


def test_exact_points_give_the_exact_law():
    fit = fit_power_law(SIZES, TRUE(SIZES))
    assert fit.alpha == pytest.approx(0.15, rel=1e-3) and fit.E == pytest.approx(1.6, rel=1e-3)
    assert fit.A == pytest.approx(40.0, rel=1e-2)


def test_noisy_points_recover_the_law_within_the_parametric_bootstrap_interval():
    boot = parametric_fit(_points(), n_boot=40, seed=0)
    for name, true in (("alpha", TRUE.alpha), ("E", TRUE.E), ("log_A", TRUE.log_A)):
        lo, hi = boot.ci(name)
        assert lo <= true <= hi, (name, lo, true, hi)
    assert boot.ci("alpha")[1] - boot.ci("alpha")[0] < 0.1  # informative, not everything


def test_multiplier_is_one_on_the_dense_curve_and_measures_a_shift():
    fit = fit_power_law(SIZES, TRUE(SIZES))
    for c in SIZES:
        assert compute_multiplier(fit, c, float(fit(c)))["multiplier"] == pytest.approx(1.0, rel=1e-9)
    # A lever that reaches at C the loss dense reaches at 4C is worth 4x.
    assert compute_multiplier(fit, 1e10, float(fit(4e10)))["multiplier"] == pytest.approx(4.0, rel=1e-9)
    below = compute_multiplier(fit, 1e10, fit.E * 0.99)
    assert below["below_floor"] and math.isnan(below["multiplier"]) and "floor" in below["note"]
    boot = parametric_fit(_points(), n_boot=20)
    m = compute_multiplier(boot, 1e11, float(TRUE(4e11)))  # from noisy points: near 4, with an interval
    assert m["ci"][0] <= m["multiplier"] <= m["ci"][1] and abs(m["multiplier"] - 4.0) < 0.6


def test_local_exponent_flattens_when_the_law_bends():
    c = np.logspace(8, 14, 12)
    bent = np.where(c < 1e11, 1.6 + 40 * c ** -0.2, 1.6 + 40 * 1e11 ** -0.2 * (c / 1e11) ** -0.05)
    local = local_exponents(c, bent)
    assert local["alpha_lower"] > local["alpha_upper"] + 0.05


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match="compute, loss"):
        fit_power_law([1.0, 2.0], [1.0, 0.5])


def _fake_runs(root, ffn, gain):
    """Runs of 5 widths x 2 seeds whose loss follows TRUE at ``gain`` times their compute."""
    import json

    rng = np.random.default_rng(1)
    for width in (16, 32, 64, 128, 256):
        for seed in (0, 1):
            d = root / f"{ffn}-{width}-{seed}"
            d.mkdir(parents=True)
            flops, steps = 1e6 * width ** 2, 1000
            loss = float(TRUE(gain * flops * steps)) * math.exp(0.002 * rng.standard_normal())
            (d / "config.json").write_text(json.dumps({"seed": seed, "model": {"name": "lm", "ffn": ffn,
                                                                                "width": width}}))
            (d / "summary.json").write_text(json.dumps({"status": "finished", "steps": steps, "flops_per_step": flops,
                                                        "final": {"bits_per_char": loss}}))
            (d / "metrics.jsonl").write_text("")


def test_compare_fits_each_group_and_states_the_multiplier(tmp_path):
    from experiments import compare

    _fake_runs(tmp_path / "runs", "dense", 1.0)
    _fake_runs(tmp_path / "runs", "moe", 2.0)
    report = compare([tmp_path / "runs"], tmp_path / "rep", scaling=[("train_flops", "bits_per_char")],
                     baseline="dense", n_boot=30).read_text()
    assert "## Scaling: bits_per_char against train_flops" in report
    fit_row = next(line for line in report.splitlines() if line.startswith("| model.ffn=dense | 5 | 10 |"))
    assert float(fit_row.split("|")[4].split()[0]) == pytest.approx(0.15, abs=0.03)  # alpha
    moe = [line for line in report.splitlines() if line.startswith("| model.ffn=moe | width=")]
    multipliers = [float(line.split("|")[5].split(": ")[-1].split()[0]) for line in moe]
    assert len(multipliers) == 5 and all(m == pytest.approx(2.0, rel=0.15) for m in multipliers)
    assert sum("extrapolated" in line for line in moe) == 1  # the largest moe run is past the largest dense one
    assert (tmp_path / "rep" / "scaling_bits_per_char_vs_train_flops.png").exists()
    few = compare([tmp_path / "runs" / d for d in ("dense-16-0", "dense-16-1", "dense-32-0", "dense-32-1")],
                  tmp_path / "few", scaling=[("train_flops", "bits_per_char")], n_boot=5).read_text()
    assert "Cannot fit at this size" in few and "2 sizes" in few
    assert (tmp_path / "few" / "scaling_bits_per_char_vs_train_flops.png").exists()   # the points, drawn unfitted


def test_log_axis_minor_labels_only_at_two_and_five():
    from experiments.reports import two_and_five

    assert [two_and_five(x) for x in (2e12, 3e12, 5e12, 7e12, 2e-3)] == ["2e12", "", "5e12", "", "2e-3"]


def test_the_pure_power_law_exponent_is_the_log_log_slope_with_its_ci():
    """With no floor (E = 0) the exponent is the log-log slope: exact on exact points, close on noisy ones (with a CI),
    and below the floored fit's α when a floor bends the curve (the form Kaplan et al. 2020 quote)."""
    from experiments.analysis import loglog_slope

    pure = PowerLaw(E=0.0, log_A=math.log(40.0), alpha=0.07)
    assert loglog_slope(SIZES, pure(SIZES)) == pytest.approx(0.07, rel=1e-9)
    boot = parametric_fit(_points(noise=0.005, law=pure), n_boot=40, seed=0)
    lo, hi = boot.ci("slope")
    assert lo <= boot.slope <= hi and 0 < hi - lo < 0.01 and boot.slope == pytest.approx(0.07, abs=1e-3)
    floored = parametric_fit(_points(noise=0.0), n_boot=5, seed=0)
    assert 0 < floored.slope < floored.fit.alpha


def test_a_fit_is_computed_once_per_input_and_read_back_from_disk(tmp_path, monkeypatch):
    """The report asks for the same bootstrap fit in several places; it is remembered per input, in memory and in
    the folder ``use_folder`` names, and equal to a fresh computation."""
    from experiments.analysis import fit_cache, scaling

    calls = []
    real = scaling._parametric_fit
    monkeypatch.setattr(scaling, "_parametric_fit", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(fit_cache, "_memory", {})
    fit_cache.use_folder(tmp_path)
    try:
        first = parametric_fit(_points(), n_boot=20, seed=0)
        assert parametric_fit(_points(), n_boot=20, seed=0) is first and len(calls) == 1
        other = parametric_fit(_points(), n_boot=20, seed=1)  # another seed: other replicates
        assert len(calls) == 2 and other.ci("alpha") != first.ci("alpha")
        fit_cache._memory.clear()  # a new process: read from disk, not refitted
        again = parametric_fit(_points(), n_boot=20, seed=0)
        assert len(calls) == 2 and again.fit == first.fit and again.ci("alpha") == first.ci("alpha")
        assert len(list(tmp_path.glob("power-*.pkl"))) == 2
    finally:
        fit_cache.use_folder(None)
    fresh = real(_points(), 20, 0)
    assert fresh.fit == first.fit and fresh.ci("E") == first.ci("E")
