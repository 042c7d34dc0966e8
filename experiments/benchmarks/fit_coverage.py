"""Coverage of the claims' fitted intervals at the claims' own designs: does a 95% interval hold the truth 95% of
the time at 5 seeds a size?

The claims judge fitted quantities (``experiments.claims.fits``) by a parametric bootstrap: each size's mean drawn
from its Student-t sampling distribution, the fit redone on every draw, percentile intervals. Nothing guarantees
that such intervals cover for a nonlinear fit at 4-9 sizes, so this command simulates it. Each design draws
``--replicates`` synthetic experiments from a known truth, shaped like the cpu size's runs (compute, number of
sizes, seeds and per-run noise as measured), runs them through ``fits.estimate`` exactly as a claim does, and counts
how often the interval holds the true value. Printed per design: coverage, its binomial 95% interval, the median
interval width. ``--boot`` refits per interval (the claims use 2,000; fewer keeps this command to minutes).

Designs (per-run noise: a relative standard deviation of 0.4% in bits/char, as the cpu runs' seeds spread):
- ``multiplier`` (claim 4): a dense law at 5 sizes over a decade of compute (E 1.72, α 0.5 as measured), an MoE at 3
  sizes inside the dense range reaching the dense loss of 1.3x its compute: true multiplier 1.3.
- ``ratio_trend`` (claim 1b): spiking over dense at 4 sizes, the ratio falling by 0.05 per tenfold compute.
- ``alpha`` (claim 10's L(C) form): the exponent of the dense law from 5 sizes.
- ``frontier_change`` (claim 10): L(N, D) on 3 sizes x 3 budgets; the frontier's local exponent, upper half minus
  lower half of the measured 6ND.

    python experiments/benchmarks/fit_coverage.py [--replicates 200] [--boot 400] [--design multiplier ...]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from experiments.analysis import PowerLaw
from experiments.analysis.chinchilla import Law
from experiments.claims import fits

NOISE = 0.004  # relative per-run spread of bits/char across seeds at the cpu size
SEEDS = 5
DENSE = PowerLaw(E=1.72, log_A=math.log(0.295) + 0.5 * math.log(1e13), alpha=0.5)  # 2.26 to 1.88 bits/char
DENSE_C = np.logspace(12.45, 13.55, 5)  # widths 64-256 at 1.6 M tokens: 2.9e12 to 3.4e13 6ND
MOE_C = DENSE_C[1:4]  # the MoE's losses, those of 1.3x this compute on the dense law, lie inside its range
GAIN, SLOPE = 1.3, -0.05
CHIN = Law(E=1.3, log_A=math.log(29.0), alpha=0.35, log_B=math.log(69.0), beta=0.38)  # about 2.0 bits/char
CELLS = [(n, d) for n in (1.2e5, 2.1e5, 4.6e5) for d in (0.82e6, 1.64e6, 3.28e6)]


def _runs(variant, sizes, loss_of, rng, key="train_flops"):
    """Synthetic run dicts as ``load_runs`` gives them: ``SEEDS`` per size, lognormal noise on the loss."""
    return [{"variant": variant, "dir": f"/sim/{variant}-{i}-{s}",
             "flat": {"seed": s, "model.name": variant, "model.width": i},
             "values": {**vals, "bits_per_char": float(loss_of(**vals)) * math.exp(NOISE * rng.standard_normal())}}
            for i, vals in enumerate(sizes) for s in range(SEEDS)]


def _flops(cs):
    return [{"train_flops": float(c)} for c in cs]


def multiplier(rng):
    dense = _runs("dense", _flops(DENSE_C), lambda train_flops: DENSE(train_flops), rng)
    moe = _runs("moe", _flops(MOE_C), lambda train_flops: DENSE(GAIN * train_flops), rng)
    cond = {"fit": "multiplier", "metric": "bits_per_char", "compute": "train_flops"}
    return fits.estimate(cond, moe, dense), GAIN


def ratio_trend(rng):
    cs = DENSE_C[1:]
    ratio = lambda c: 1.12 + SLOPE * (math.log10(c) - 13.0)  # noqa: E731
    dense = _runs("dense", _flops(cs), lambda train_flops: DENSE(train_flops), rng)
    spiking = [dict(r, variant="spiking", values={**r["values"], "bits_per_char": float(
        DENSE(r["values"]["train_flops"]) * ratio(r["values"]["train_flops"])) * math.exp(
        NOISE * rng.standard_normal())}) for r in dense]
    cond = {"fit": "ratio_trend", "metric": "bits_per_char", "compute": "train_flops"}
    return fits.estimate(cond, spiking, dense), SLOPE


def alpha(rng):
    dense = _runs("dense", _flops(DENSE_C), lambda train_flops: DENSE(train_flops), rng)
    return fits.estimate({"fit": "alpha", "metric": "bits_per_char", "compute": "train_flops"}, dense, []), DENSE.alpha


def frontier_change(rng):
    sizes = [{"active_params": n, "train_tokens": d} for n, d in CELLS]
    runs = _runs("dense", sizes, lambda active_params, train_tokens: CHIN(active_params, train_tokens), rng)
    n, d = np.array(CELLS).T
    lo, hi = np.exp(np.quantile(np.log(6 * n * d), [0.25, 0.75]))
    truth = CHIN.local_exponent(hi) - CHIN.local_exponent(lo)
    return fits.estimate({"fit": "frontier_change", "metric": "bits_per_char"}, runs, []), truth


DESIGNS = {f.__name__: f for f in (multiplier, ratio_trend, alpha, frontier_change)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--boot", type=int, default=400)
    parser.add_argument("--design", action="append", choices=sorted(DESIGNS))
    args = parser.parse_args()
    if args.replicates < 1 or args.boot < 20:
        parser.error(f"--replicates {args.replicates} / --boot {args.boot}: give >= 1 replicate and >= 20 refits")
    fits.N_BOOT = args.boot
    print(f"{args.replicates} replicates a design, {args.boot} refits an interval, {SEEDS} seeds a size, "
          f"per-run noise {NOISE:.1%}")
    for name in args.design or DESIGNS:
        rng, hits, widths, t0 = np.random.default_rng(0), 0, [], time.perf_counter()
        for _ in range(args.replicates):
            out, truth = DESIGNS[name](rng)
            lo, hi = out["ci"]
            hits += bool(lo <= truth <= hi)
            widths.append(hi - lo)
        k, n = hits, args.replicates
        p = k / n
        half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
        print(f"{name:16s} truth {truth:+.4f}  coverage {p:.3f} [{max(p - half, 0):.3f}, {min(p + half, 1):.3f}] "
              f"({k}/{n})  median width {np.median(widths):.4f}  {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
