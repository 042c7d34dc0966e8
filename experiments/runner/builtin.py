"""The runner's own registrations: optax optimizers by name, and a generic task and models.

The generic task is image classification on scikit-learn's bundled digits (1,797 8×8 images, no download), with a
small CNN; the quickstart's MLP (``model.name = "mlp"``) is ``hybrid.backbones.MLP``, registered by the hybrid glue
module, so the toolkit has one MLP. The quantum path reuses the digits task for its digits experiments.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits as sk_load

from experiments.runner.fields import at_least
from experiments.runner.registry import register_model, register_optimizer, register_task
from experiments.runner.task import Task

# ------------------------------------------------------------------------------------------------ optimizers


@dataclasses.dataclass
class AdamConfig:
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


@dataclasses.dataclass
class SgdConfig:
    momentum: float = 0.0
    nesterov: bool = False


@dataclasses.dataclass
class LionConfig:
    b1: float = 0.9
    b2: float = 0.99


def _coupled_decay(tx, weight_decay):
    """L2 added to the gradient (coupled), for optimizers without a decoupled weight-decay term."""
    return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx


@register_optimizer("adam", config=AdamConfig, doc="optax.adam (weight_decay: coupled L2)")
def _adam(cfg, *, learning_rate, weight_decay):
    return _coupled_decay(optax.adam(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps), weight_decay)


@register_optimizer("adamw", config=AdamConfig, doc="optax.adamw (decoupled weight decay)")
def _adamw(cfg, *, learning_rate, weight_decay):
    return optax.adamw(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=weight_decay)


@register_optimizer("sgd", config=SgdConfig, doc="optax.sgd with optional (Nesterov) momentum")
def _sgd(cfg, *, learning_rate, weight_decay):
    tx = optax.sgd(learning_rate, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
    return _coupled_decay(tx, weight_decay)


@register_optimizer("lion", config=LionConfig, doc="optax.lion (decoupled weight decay)")
def _lion(cfg, *, learning_rate, weight_decay):
    return optax.lion(learning_rate, b1=cfg.b1, b2=cfg.b2, weight_decay=weight_decay)


@register_optimizer("rmsprop", doc="optax.rmsprop")
def _rmsprop(cfg, *, learning_rate, weight_decay):
    return _coupled_decay(optax.rmsprop(learning_rate), weight_decay)


@register_optimizer("adafactor", doc="optax.adafactor")
def _adafactor(cfg, *, learning_rate, weight_decay):
    return optax.adafactor(learning_rate, weight_decay_rate=weight_decay or None)


# ----------------------------------------------------------------------------------------------- digits task


@dataclasses.dataclass
class DigitsConfig:
    """scikit-learn's bundled 8×8 digits; ``downscale`` 2 averages 2×2 blocks (4×4 images)."""

    val_fraction: float = 0.25
    downscale: Literal[1, 2, 4] = 1
    split_seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: {self.val_fraction} is not allowed; must be in (0, 1)")


def load_digits(downscale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[1797, 8/d, 8/d, 1]`` in [0, 1] and labels ``[1797]`` from scikit-learn's bundled copy."""
    data = sk_load()
    x = (data.images / 16.0).astype(np.float32)
    if downscale > 1:
        s = 8 // downscale
        x = x.reshape(-1, s, downscale, s, downscale).mean(axis=(2, 4))
    return x[..., None], data.target.astype(np.int32)


def classification_loss(model, batch, key, train):
    """Softmax cross-entropy of ``model(batch['x'])`` against integer ``batch['y']``; metrics: loss, accuracy."""
    logits = model(batch["x"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    accuracy = (jnp.argmax(logits, -1) == batch["y"]).mean()
    return loss, {"loss": loss, "accuracy": accuracy}


@register_task("digits", config=DigitsConfig, doc="sklearn's bundled 8x8 digits, 10 classes")
def digits_task(cfg, *, key):
    x, y = load_digits(cfg.downscale)
    order = np.random.default_rng(cfg.split_seed).permutation(len(y))
    n_val = int(round(len(y) * cfg.val_fraction))
    val, tr = order[:n_val], order[n_val:]
    return Task(
        name="digits",
        train_data={"x": x[tr], "y": y[tr]},
        eval_data={"x": x[val], "y": y[val]},
        loss=classification_loss,
        spec={"input_shape": x.shape[1:], "num_classes": 10},
        examples_per_epoch=len(tr),
    )


# ---------------------------------------------------------------------------------------------------- models

class CNN(nnx.Module):
    """A small CNN ``[B, H, W, C] -> [B, out]``: 3×3 convolutions with ReLU, global average pooling, an MLP head."""

    def __init__(self, in_channels: int, channels, hidden: int, out_features: int, *, rngs: nnx.Rngs):
        sizes = [in_channels, *channels]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.hidden = nnx.Linear(sizes[-1], hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, out_features, rngs=rngs)

    def __call__(self, x):
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.head(jax.nn.relu(self.hidden(x.mean(axis=(1, 2)))))


@dataclasses.dataclass
class CNNConfig:
    channels: list[int] = dataclasses.field(default_factory=lambda: [16, 32])
    hidden: int = 64

    def __post_init__(self):
        at_least(self, channels=1, hidden=1)


@register_model("cnn", config=CNNConfig, doc="small CNN classifier on [H, W, C] images")
def _cnn(cfg, *, task, rngs):
    shape = task.spec["input_shape"]
    return CNN(shape[-1], cfg.channels, cfg.hidden, task.spec["num_classes"], rngs=rngs)
