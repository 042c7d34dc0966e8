"""Gradient estimators: directions on cases whose answer is known, analytic / finite-difference parity."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.stats import norm

from hybrid import gradients as G

# Four "paths" over six cells: a linear combinatorial problem whose argmin we can enumerate.
PATHS = jnp.array([[1, 1, 0, 0, 0, 1],
                   [1, 0, 1, 0, 0, 1],
                   [1, 0, 0, 1, 1, 1],
                   [0, 1, 1, 1, 0, 0]], jnp.float32)


def path_solver(w):
    """[B, 6] costs -> [B, 6] the cheapest of PATHS (ties to the lowest index)."""
    return PATHS[jnp.argmin(w @ PATHS.T, axis=-1)]


def onehot_argmin(w):
    """[B, n] -> [B, n] one-hot argmin."""
    return jax.nn.one_hot(jnp.argmin(w, axis=-1), w.shape[-1])


def hamming(y, t):
    return jnp.mean(y * (1 - t) + (1 - y) * t)


W0 = jnp.array([[1.0, 2.0, 3.0, 1.5, 1.5, 1.0]])   # cheapest: PATHS[0] (cost 4), target PATHS[2] (cost 5)
TARGET = PATHS[2][None]


@pytest.mark.parametrize("name", ["blackbox", "identity"])
def test_gradient_points_toward_target_and_descent_reaches_it(name):
    est = G.make_estimator(name, path_solver, lam=5.0)
    loss = lambda w: hamming(est(w), TARGET)
    g = jax.grad(loss)(W0)[0]
    assert float(jnp.abs(g).sum()) > 0
    # dL/dw > 0 on target cells the solver misses (a dearer cell is picked less): descent makes them cheaper;
    # dL/dw < 0 on cells the solver picks outside the target: descent makes them dearer
    assert float(g[3]) > 0 and float(g[4]) > 0
    assert float(g[1]) < 0
    step = jax.jit(lambda w: w - 0.5 * jax.grad(loss)(w))
    w = W0
    for _ in range(50):
        w = step(w)
    np.testing.assert_array_equal(np.asarray(path_solver(w)), np.asarray(TARGET))


def test_blackbox_is_the_gradient_of_the_interpolated_objective():
    """Vlastelica et al. 2020, eq. 5: for L(y) = <a, y>, f_λ(w) = L(y_λ(w)) − <w, y(w) − y_λ(w)> / λ with
    y_λ(w) = y(w + λa) is piecewise affine in w, and the estimator's gradient is its gradient. Checked against a
    central finite difference of f_λ, built from the solver alone."""
    lam = 3.0
    a = jnp.array([0.3, -1.0, 0.5, -2.0, -2.0, 0.1])

    def f_lam(w):
        y, y_lam = path_solver(w[None])[0], path_solver((w + lam * a)[None])[0]
        return float(a @ y_lam - w @ (y - y_lam) / lam)

    eps = 1e-2
    numeric = np.array([(f_lam(W0[0] + eps * e) - f_lam(W0[0] - eps * e)) / (2 * eps) for e in np.eye(6)])
    _, vjp = jax.vjp(G.blackbox(path_solver, lam), W0)
    (got,) = vjp(a[None])
    np.testing.assert_allclose(np.asarray(got)[0], numeric, atol=1e-4)
    assert np.abs(numeric).sum() > 0  # the two solutions differ here: a gradient that is not zero


def test_blackbox_solves_its_step_on_floored_costs():
    """The step ``w + lam * dL/dy`` lowers the costs of cells the loss wants on the path; on a grid where it drives
    one below 0, the jitted shortest-path solver returns a mask without the source (no path), so the estimate is
    garbage. With ``clip_min`` the second solve sees ``max(w + lam * dL/dy, clip_min)``: the gradient equals
    ``-(y(w) - y(w'))/lam`` on those floored costs, a valid path difference."""
    from hybrid.planners import grid_shortest_path

    def solve(w):
        return grid_shortest_path(w)[0]

    w = jnp.full((1, 6, 6), 0.5)
    route = (jnp.array([0, 0, 0, 0, 1, 2, 3, 4]), jnp.array([1, 2, 3, 4, 5, 5, 5, 5]))
    a = jnp.zeros((1, 6, 6)).at[0, route[0], route[1]].set(-1.0)  # the loss wants the top row, then the right column
    lam, floor = 2.0, 1e-3                                          # 0.5 - 2 * 1 < 0 there
    (got,) = jax.jit(jax.vjp(G.blackbox(solve, lam, clip_min=floor), w)[1])(a)
    y, y_lam = solve(w), solve(jnp.maximum(w + lam * a, floor))
    np.testing.assert_allclose(np.asarray(got), np.asarray(-(y - y_lam) / lam), atol=1e-6)
    assert float(y_lam[0, 0, 0]) == 1.0 and bool(jnp.all(y_lam[0][route] == 1.0))  # a real path, the cheap route
    y_raw = jax.jit(solve)(w + lam * a)                                   # unfloored: no source, not a path
    assert float(y_raw[0, 0, 0]) == 0.0


def test_identity_projection_removes_scale_component():
    f = G.identity(path_solver, "normalize")
    g = jax.grad(lambda w: jnp.sum(f(w) * jnp.arange(6.0)))(W0)
    # the projected gradient is orthogonal to w: rescaling all costs changes nothing
    assert abs(float(jnp.sum(g * W0))) < 1e-5
    g_plain = jax.grad(lambda w: jnp.sum(G.identity(path_solver, "none")(w) * jnp.arange(6.0)))(W0)
    np.testing.assert_allclose(np.asarray(g_plain), -np.arange(6.0)[None], atol=1e-6)


def test_perturbed_normal_matches_analytic_two_option_argmin():
    sigma = 0.7
    w = jnp.array([[0.2, 0.5]])
    f = G.perturbed(onehot_argmin, n_samples=200_000, sigma=sigma, noise="normal")
    key = jax.random.key(0)
    y = f(w, key)
    d = (w[0, 1] - w[0, 0]) / (sigma * jnp.sqrt(2.0))
    np.testing.assert_allclose(float(y[0, 0]), float(norm.cdf(d)), atol=5e-3)
    jac = jax.jit(jax.grad(lambda u: f(u, key)[0, 0]))(w)[0]
    dp = float(norm.pdf(d) / (sigma * jnp.sqrt(2.0)))
    np.testing.assert_allclose(np.asarray(jac), [-dp, dp], atol=0.03)


def test_perturbed_gumbel_matches_finite_difference_and_optax():
    sigma, n = 1.0, 100_000
    w = jnp.array([[0.1, 0.4, 0.9]])
    key = jax.random.key(1)
    f = G.perturbed(onehot_argmin, n_samples=n, sigma=sigma, noise="gumbel")
    jac = np.asarray(jax.jit(jax.jacrev(lambda u: f(u, key)[0]))(w)[:, 0, :])      # [3 out, 3 in]
    # finite differences with common random numbers
    z = jax.random.gumbel(jax.random.key(7), (n, 3))
    mean_y = jax.jit(lambda u: onehot_argmin(u[None] + sigma * z).mean(0))
    h = 0.05
    fd = np.stack([(mean_y(w[0] + h * e) - mean_y(w[0] - h * e)) / (2 * h) for e in jnp.eye(3)], axis=1)
    np.testing.assert_allclose(jac, fd, atol=0.04)
    # optax.perturbations' score-function estimator of the same smoothed map agrees
    ref = optax.perturbations.make_perturbed_fun(lambda u: onehot_argmin(u[None])[0], n, sigma,
                                                 optax.perturbations.Gumbel())
    ref_jac = np.asarray(jax.jit(jax.jacrev(lambda u: ref(key, u)))(w[0]))
    np.testing.assert_allclose(jac, ref_jac, atol=0.04)
    assert np.all(np.diag(jac) < 0)                     # raising a cost lowers its own choice probability


def test_fenchel_young_gradient_and_learning():
    fy = G.fenchel_young_loss(path_solver, n_samples=64, sigma=0.5, noise="normal")
    key = jax.random.key(2)
    loss, g = jax.value_and_grad(lambda w: fy(w, TARGET, key).mean())(W0)
    assert float(loss) > 0
    # gradient = y_true - E[y(w + sZ)]: positive on target-only cells, negative on cells only the solver picks
    assert float(g[0, 3]) > 0 and float(g[0, 1]) < 0
    step = jax.jit(lambda w, k: w - 0.3 * jax.grad(lambda u: fy(u, TARGET, k).mean())(w))
    w = W0
    for i in range(60):
        w = step(w, jax.random.key(i))
    np.testing.assert_array_equal(np.asarray(path_solver(w)), np.asarray(TARGET))


def test_bad_arguments_raise_one_line_value_errors():
    with pytest.raises(ValueError, match="estimator: got 'magic'"):
        G.make_estimator("magic", path_solver)
    with pytest.raises(ValueError, match="lam: got -1"):
        G.blackbox(path_solver, -1)
    with pytest.raises(ValueError, match="noise: got 'cauchy'"):
        G.perturbed(path_solver, noise="cauchy")
    with pytest.raises(ValueError, match="projection: got 'l1'"):
        G.identity(path_solver, "l1")
