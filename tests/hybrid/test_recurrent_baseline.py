"""The recurrent pure-neural baseline (``neural_sp`` with ``head = "recurrent"``): shapes, config, and that it learns
the path mask on a small terrain task (loss falls, held-out cell accuracy rises above the untrained model's)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import ConfigError
from experiments.runner import build_dataclass
from hybrid.backbones import MatmulConv
from tests.hybrid.test_models import build, train


@pytest.fixture(scope="module")
def task():
    entry, cfg = build("task", "terrain_sp", k=6, train_size=512, val_size=0, test_size=128)
    return entry.factory(cfg, key=jax.random.key(0))


def test_matmul_conv_equals_lax_conv():
    conv = MatmulConv(5, 7, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 4, 5))
    ref = jax.lax.conv_general_dilated(x, conv.kernel[...], (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv.bias[...]
    np.testing.assert_allclose(conv(x), ref, rtol=1e-5, atol=1e-5)


def test_recurrent_head_shapes_and_config(task):
    entry, cfg = build("model", "neural_sp", head="recurrent", width=8, blocks=0, hidden=8, iterations=3)
    model = entry.factory(cfg, task=task, rngs=nnx.Rngs(0))
    images = jnp.asarray(task.eval_data["images"][:4])
    assert model(images).shape == (4, 6, 6)
    assert set(np.unique(np.asarray(model.predict(images)))) <= {0.0, 1.0}
    assert entry.config().head == "mlp"                        # the old MLP baseline stays the default
    with pytest.raises(ConfigError, match="model.head: 'cnn' is not allowed"):
        build_dataclass("model", entry.config, {"head": "cnn"})
    with pytest.raises(ConfigError, match="model.iterations: 0 is not allowed"):
        build_dataclass("model", entry.config, {"iterations": 0})


def test_recurrent_baseline_learns_path_cells(task):
    entry, cfg = build("model", "neural_sp", head="recurrent", width=8, blocks=0, hidden=16, iterations=6,
                       pos_weight=3.0)
    model = entry.factory(cfg, task=task, rngs=nnx.Rngs(0))
    data = jax.tree.map(jnp.asarray, task.eval_data)

    def cell_accuracy(m):
        return float(jnp.mean(m.predict(data["images"]) == data["path"]))

    before = cell_accuracy(model)
    model, losses = train(task, model, 300, lr=3e-3, batch_size=32)
    after = cell_accuracy(model)
    assert float(losses[-30:].mean()) < 0.7 * float(losses[:30].mean())
    all_off = 1.0 - float(data["path"].mean())                  # the accuracy of predicting no path at all
    # measured here: cell accuracy 0.765 -> 0.904, predicting no path 0.80
    assert after > all_off + 0.05 and after > before + 0.1, (before, after, all_off)
