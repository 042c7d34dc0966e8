"""Optimizers by name with schedules, clipping and weight decay; extra args and counters for registered ones."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import experiments
from experiments import load_config
from experiments.runner import make_optimizer, make_schedule, optimizer_counters, registry

from .helpers import QUICKSTART, TINY


def test_schedules_follow_their_names():
    cfg = load_config(QUICKSTART, ["optimizer.schedule='warmup_cosine'", "optimizer.warmup_steps=10",
                                   "optimizer.learning_rate=0.1", "train.steps=110"])
    sched = make_schedule(cfg.optimizer, cfg.train.steps)
    assert float(sched(0)) == 0.0 and float(sched(10)) == pytest.approx(0.1)
    assert float(sched(60)) == pytest.approx(0.05, rel=1e-3) and float(sched(110)) == pytest.approx(0.0, abs=1e-7)
    lin = make_schedule(load_config(QUICKSTART, ["optimizer.schedule='linear'"]).optimizer, 100)
    assert float(lin(50)) == pytest.approx(5e-4)
    assert make_schedule(load_config(QUICKSTART, ["optimizer.schedule='constant'"]).optimizer, 100) == 1e-3


def test_clipping_and_weight_decay_act_on_the_update():
    params = {"w": jnp.ones(4)}
    grads = {"w": jnp.full(4, 100.0)}
    sgd = load_config(QUICKSTART, ["optimizer.name=sgd", "optimizer.learning_rate=1", "optimizer.clip_norm=1"])
    tx = make_optimizer(sgd)
    upd, _ = tx.update(grads, tx.init(params), params)
    assert float(jnp.linalg.norm(upd["w"])) == pytest.approx(1.0, rel=1e-5)
    wd = load_config(QUICKSTART, ["optimizer.name=adamw", "optimizer.weight_decay=0.5", "optimizer.learning_rate=1"])
    tx = make_optimizer(wd)
    zero = {"w": jnp.zeros(4)}
    upd, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(upd["w"], -0.5 * np.ones(4), rtol=1e-6)  # decoupled decay: -lr * wd * w


class CountingState(NamedTuple):
    inner: optax.OptState
    loss_evals: jax.Array
    max_gap: jax.Array


def _counting_sgd(cfg, *, learning_rate, weight_decay):
    """SGD that calls value_fn once a step and records |value_fn(params) - value| (must be 0: same batch)."""
    inner = optax.sgd(learning_rate)

    def init(params):
        return CountingState(inner.init(params), jnp.int32(0), jnp.float32(0))

    def update(grads, state, params, *, value, value_fn, grad_fn, **_):
        gap = jnp.abs(value_fn(params) - value)
        g2 = grad_fn(params)
        gap = jnp.maximum(gap, optax.tree.norm(optax.tree.sub(g2, grads)))
        upd, inner_state = inner.update(grads, state.inner, params)
        return upd, CountingState(inner_state, state.loss_evals + 1, jnp.maximum(state.max_gap, gap))

    return optax.GradientTransformationExtraArgs(init, update)


def test_registered_optimizer_gets_value_fn_on_the_same_batch_and_its_counters_are_reported(tmp_path):
    registry.register_optimizer("counting_sgd_test", _counting_sgd)
    registry.register_hook("gap_test", lambda ctx: {"value_fn_gap": float(ctx.opt_state.max_gap),
                                                    "hook_step": ctx.step, "hook_final": ctx.final})
    cfg = load_config(QUICKSTART, TINY + ["optimizer.name=counting_sgd_test", "optimizer.learning_rate=0.1",
                                          "hooks=['gap_test']"])
    result = experiments.run(cfg, tmp_path, quiet=True)
    final = result.summary["final"]
    assert final["loss_evals"] == 40 and final["hook_step"] == 40 and final["hook_final"] is True
    assert final["value_fn_gap"] < 1e-5  # value_fn and grad_fn see the step's own batch
    assert list(result.eval["loss_evals"]) == [0, 20, 40]


def test_optimizer_counters_walk_nested_states():
    s = (optax.EmptyState(), CountingState(optax.EmptyState(), jnp.int32(3), jnp.float32(0)),
         {"x": CountingState(optax.EmptyState(), jnp.int32(4), jnp.float32(0))})
    assert optimizer_counters(s) == {"loss_evals": 7}


def test_a_state_holding_one_buffer_twice_is_donated_and_a_failed_build_writes_nothing(tmp_path):
    def shared_zeros(cfg, *, learning_rate, weight_decay):
        inner = optax.sgd(0.1)

        def init(params):
            z = jnp.zeros(())
            return (z, z, inner.init(params))  # one buffer, two leaves

        def update(g, state, params=None):
            u, s = inner.update(g, state[2], params)
            return u, (state[0] + 1, state[1] + 2, s)

        return optax.GradientTransformation(init, update)

    registry.register_optimizer("shared_zeros_test", shared_zeros)
    result = experiments.run(load_config(QUICKSTART, TINY + ["optimizer.name=shared_zeros_test"]), tmp_path / "a",
                             quiet=True)
    assert result.summary["final"]["accuracy"] > 0.3

    def broken(cfg, *, learning_rate, weight_decay):
        raise experiments.ConfigError("optimizer.name: broken_test cannot train this model")

    registry.register_optimizer("broken_test", broken)
    with pytest.raises(experiments.ConfigError, match="broken_test"):
        experiments.run(load_config(QUICKSTART, TINY + ["optimizer.name=broken_test"]), tmp_path / "b", quiet=True)
    assert not (tmp_path / "b").exists()  # nothing written: the corrected config may use the same workdir
