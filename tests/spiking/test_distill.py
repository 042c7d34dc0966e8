"""Distillation: kd_loss against a NumPy formula, α = 0 is cross-entropy, no gradient reaches the teacher, the
teacher-quality and timing metrics, and the registered model's config errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spiking.distill import Distill, kd_loss
from spiking.lm import DenseLM

KW = {"width": 16, "depth": 1, "heads": 2, "seq_len": 16}


def _np_kd(s, t, y, alpha, temp, direction):
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    ls, lt = log_softmax(s / temp), log_softmax(t / temp)
    kl = (np.exp(lt) * (lt - ls)).sum(-1) if direction == "forward" else (np.exp(ls) * (ls - lt)).sum(-1)
    ce = -np.take_along_axis(log_softmax(s), y[..., None], -1)[..., 0]
    return float(np.mean(alpha * temp ** 2 * kl + (1 - alpha) * ce))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_kd_loss_equals_numpy_formula(direction):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(3, 5, 7)) * 2, rng.normal(size=(3, 5, 7)) * 2
    y = rng.integers(0, 7, size=(3, 5))
    for alpha, temp in ((0.3, 2.0), (1.0, 0.5), (0.0, 4.0)):
        got = float(kd_loss(jnp.asarray(s), jnp.asarray(t), jnp.asarray(y), alpha=alpha, temperature=temp,
                            direction=direction))
        assert got == pytest.approx(_np_kd(s, t, y, alpha, temp, direction), rel=1e-5)
    assert float(kd_loss(jnp.asarray(s), jnp.asarray(s), jnp.asarray(y), alpha=1.0, temperature=3.0)) == \
        pytest.approx(0.0, abs=1e-6)  # a student equal to its teacher has no soft loss


def test_alpha_zero_is_plain_cross_entropy():
    import optax

    s, t = jax.random.normal(jax.random.key(0), (2, 4, 9)), jax.random.normal(jax.random.key(1), (2, 4, 9))
    y = jax.random.randint(jax.random.key(2), (2, 4), 0, 9)
    ce = optax.softmax_cross_entropy_with_integer_labels(s, y).mean()
    assert float(kd_loss(s, t, y, alpha=0.0, temperature=2.0)) == pytest.approx(float(ce), rel=1e-6)


@pytest.fixture(scope="module")
def pair():
    teacher = DenseLM(**KW, rngs=nnx.Rngs(1))
    return Distill(DenseLM(**KW, rngs=nnx.Rngs(0)), teacher, alpha=0.7, temperature=2.0)


def test_no_gradient_reaches_the_teacher(pair):
    from spiking.registry import lm_loss

    tokens = jax.random.randint(jax.random.key(3), (2, 17), 0, 256)
    graphdef, params, rest = nnx.split(pair, nnx.Param, ...)

    def objective(p):
        return lm_loss(nnx.merge(graphdef, p, rest), {"tokens": tokens}, None, True)

    (loss, metrics), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(params)
    assert float(loss) == pytest.approx(float(metrics["kd_loss"]))
    assert float(metrics["kd_loss"]) != pytest.approx(float(metrics["loss"]))  # the teacher is in the objective
    teacher = jax.tree.leaves(grads["teacher"])
    student = jax.tree.leaves(grads["student"])
    assert teacher and all(float(jnp.abs(g).max()) == 0.0 for g in teacher)
    assert sum(float(jnp.abs(g).sum()) for g in student) > 0
    out = jax.jit(lambda p: nnx.merge(graphdef, p, rest)(tokens[:, :-1]))(params)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jax.jit(
        lambda p: nnx.merge(graphdef, p, rest).student(tokens[:, :-1]))(params)))  # it runs as the student


def test_teacher_quality_kept_and_times(pair):
    from spiking.registry import measure_distill

    batches = [{"tokens": jax.random.randint(jax.random.key(4), (2, 17), 0, 256)}]
    out = measure_distill(pair, batches, unigram_bits=4.7)
    kept = (4.7 - out["student_bits_per_char"]) / (4.7 - out["teacher_bits_per_char"])
    assert out["teacher_quality_kept"] == pytest.approx(kept)
    assert out["student_s_per_token"] > 0 and out["teacher_s_per_token"] > 0
    assert math.isfinite(out["student_vs_teacher_time"])


def test_registered_distill_config_errors(tmp_path):
    from experiments.errors import ConfigError
    from spiking.registry import DistillConfig, distill

    with pytest.raises(ValueError, match="^teacher: ''"):
        DistillConfig()
    with pytest.raises(ValueError, match="^alpha: 2.0"):
        DistillConfig(teacher="x", alpha=2.0)
    with pytest.raises(ConfigError, match="model.teacher"):
        distill(DistillConfig(teacher=str(tmp_path / "missing")), task=None, rngs=nnx.Rngs(0))
