"""The batched Levenberg–Marquardt fits (``experiments.analysis.lm_fit``) against scipy's L-BFGS-B on the same Huber
loss: on noisy bootstrap-like replicates of both laws, every batched fit reaches scipy's minimum or a lower one."""

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from experiments.analysis import lm_fit
from experiments.analysis.chinchilla import Law, fit_laws
from experiments.analysis.scaling import HUBER_DELTA, PowerLaw, fit_power_laws


def _huber(r):
    a = np.abs(r)
    return float(np.sum(np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))))


def _scipy_best(loss, starts, bounds):
    """The lowest Huber loss scipy's L-BFGS-B (numerical gradients) reaches from ``starts``."""
    best = math.inf
    for s in starts:
        res = minimize(loss, np.array(s, float), method="L-BFGS-B", bounds=bounds)
        best = min(best, res.fun)
    return best


def test_the_power_law_fits_reach_scipys_minimum():
    truth = PowerLaw(E=1.7, log_A=math.log(30.0), alpha=0.2)
    c = np.logspace(12, 14, 5)
    rng = np.random.default_rng(0)
    losses = truth(c) * np.exp(0.004 * rng.standard_normal((3, 5)))
    fits = fit_power_laws(c, losses)
    x = np.log(c) - np.mean(np.log(c))
    for fit, y in zip(fits, losses):
        ours = _huber(np.log(fit(c)) - np.log(y))
        def loss(t, y=y):
            return _huber(np.logaddexp(t[0], t[1] - t[2] * x) - np.log(y))
        starts = [(math.log(f * y.min() + 1e-6 * y.min()), math.log(y.mean()), al)
                  for f, al in itertools.product((0.0, 0.5, 0.9), (0.05, 0.3, 1.0))]
        ref = _scipy_best(loss, starts, [(None, None), (None, None), (1e-4, 10.0)])
        assert ours <= ref * (1 + 1e-6) + 1e-12, (ours, ref)


def test_the_chinchilla_fits_reach_scipys_minimum_including_a_negative_floor():
    n, d = (v.ravel() for v in np.meshgrid([2e5, 5e5, 1.2e6], [3e6, 6e6, 1.2e7]))
    rng = np.random.default_rng(1)
    truths = [Law(E=0.9, log_A=3.0, alpha=0.35, log_B=4.0, beta=0.38), Law(E=-0.4, log_A=1.0, alpha=0.1,
                                                                          log_B=4.0, beta=0.3)]
    losses = np.concatenate([t(n, d) * (1 + 0.002 * rng.standard_normal((1, 9))) for t in truths])
    fits = fit_laws(n, d, losses)
    ln, ld = np.log(n) - np.mean(np.log(n)), np.log(d) - np.mean(np.log(d))
    for fit, y in zip(fits, losses):
        ours = _huber(np.log(fit(n, d)) - np.log(y))
        def loss(t, y=y):
            pred = t[0] + np.exp(t[1] - t[2] * ln) + np.exp(t[3] - t[4] * ld)
            return _huber(np.log(pred) - np.log(y)) if np.all(pred > 0) else 1e6
        starts = [(f * y.min(), math.log(0.3 * y.min()), al, math.log(0.3 * y.min()), be)
                  for f, al, be in itertools.product((0.3, 0.8), (0.15, 0.6), (0.15, 0.6))]
        ref = _scipy_best(loss, starts, [(None, None), (None, None), (1e-3, 5.0), (None, None), (1e-3, 5.0)])
        assert ours <= ref * (1 + 1e-6) + 1e-12, (ours, ref)


def test_a_step_that_leaves_the_domain_is_rejected_and_bounds_hold():
    """log(θ) has a residual only for θ > 0; from θ = 4 toward a target of 1e-3 every step stays positive, and a
    bound at 0.5 stops it there."""
    def residuals(theta):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(theta) - math.log(1e-3), (1.0 / theta)[:, :, None]
    theta, loss = lm_fit.minimise(residuals, np.array([[4.0], [4.0]]), delta=1.0, lower=[0.0], upper=[np.inf])
    assert np.all(theta > 0) and theta[0, 0] == pytest.approx(1e-3, rel=1e-6) and loss[0] < 1e-12
    bounded, _ = lm_fit.minimise(residuals, np.array([[4.0]]), delta=1.0, lower=[0.5], upper=[np.inf])
    assert bounded[0, 0] == 0.5


def test_a_parameter_the_loss_does_not_see_neither_breaks_nor_moves_the_fit():
    """A second parameter with no effect (its Jacobian column zero), at and away from an exact fit, over many
    iterations: no error from the damped system (its damping has a floor, a singular one falls back to the
    pseudo-inverse), the first parameter fitted, the second left where it started."""
    def residuals(theta):
        return theta[:, :1] - 2.0, np.stack([np.ones((len(theta), 1)), np.zeros((len(theta), 1))], axis=-1)
    theta, loss = lm_fit.minimise(residuals, np.array([[2.0, 7.0], [0.0, 7.0]]), delta=10.0, lower=[-np.inf] * 2,
                                  upper=[np.inf] * 2, iters=2000)
    assert np.array_equal(theta, [[2.0, 7.0], [2.0, 7.0]]) and np.all(loss == 0.0)
