"""Landscapes against scipy, the registered optimizers/tasks through the runner, errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from experiments import ConfigError, build_optimizer, from_dict, run
from quantum_opt import tasks


def test_global_minima_match_scipy():
    x_star, f_star = tasks.global_minimum("double_well", 3, tilt=0.3)
    res = scipy.optimize.minimize_scalar(lambda x: (x ** 2 - 1) ** 2 + 0.3 * x, bounds=(-2, 0), method="bounded")
    np.testing.assert_allclose(x_star, res.x, atol=1e-4)
    np.testing.assert_allclose(f_star, 3 * res.fun, atol=1e-6)
    np.testing.assert_allclose(float(tasks.double_well(jnp.asarray(x_star, jnp.float32), 0.3)), f_star, atol=1e-5)
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-2, 2, 201), jnp.linspace(-2, 2, 201)), -1).reshape(-1, 2)
    assert float(tasks.rastrigin(grid).min()) == pytest.approx(0.0, abs=1e-5)
    assert float(jnp.linalg.norm(jax.grad(tasks.rastrigin)(jnp.zeros(4)))) < 1e-6


def _config(optimizer, steps=200, kind="double_well"):
    return from_dict({
        "seed": 0, "data": {"name": "landscape", "kind": kind, "dim": 2},
        "model": {"name": "point"}, "optimizer": {"learning_rate": 0.02, "schedule": "constant", **optimizer},
        "train": {"steps": steps, "batch_size": 1, "eval_every": steps, "log_every": steps, "steps_per_call": 50},
    })


def _run(tmp_path, name, optimizer, steps=200, kind="double_well"):
    return run(_config(optimizer, steps, kind), tmp_path / name, quiet=True).eval.iloc[-1]


def test_runner_tunneling_escapes_where_adam_stays(tmp_path):
    adam = _run(tmp_path, "adam", {"name": "adam"})
    tun = _run(tmp_path, "tun", {"name": "tunneling", "sampler": "argmin", "step_sizes": [0.5, 1.0, 1.5, 2.0]})
    assert adam["gap"] > 0.5  # stuck in the shallow well (gap ~ 1.2 from both coordinates)
    assert tun["gap"] < adam["gap"] - 0.5 and tun["jumps"] >= 1
    assert tun["loss_evals"] > 0 and tun["loss_evals"] % 16 == 0 and tun["circuit_evals"] == 0
    sam = _run(tmp_path, "sam", {"name": "sam", "inner": "adam"}, steps=50)
    assert sam["grad_evals"] == 50  # one extra gradient per step


def test_bad_config():
    # choices are Literal annotations and bounds live in __post_init__: the loader names the dotted key
    with pytest.raises(ConfigError, match="optimizer.sampler: 'grover' is not allowed"):
        _config({"name": "tunneling", "sampler": "grover"})
    with pytest.raises(ConfigError, match="needs a key"):
        build_optimizer("tunneling", {}, learning_rate=0.1)
    with pytest.raises(ConfigError, match="optimizer.rho: -1.0 is not allowed"):
        _config({"name": "sam", "rho": -1.0})
    with pytest.raises(ValueError, match="kind"):
        tasks.global_minimum("himmelblau", 2)
