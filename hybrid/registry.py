"""Registers the hybrid path with the experiment runner: terrain SP(k) and digit-addition tasks, their models, and
the ``hybrid_solver`` hook (solver time per epoch, examples seen).

The only hybrid module that imports ``experiments``. Models and tasks follow Vlastelica et al., "Differentiation of
Blackbox Combinatorial Solvers" (ICLR 2020) and, for digit addition, Manhaeve et al., "DeepProbLog" (NeurIPS 2018).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import ConfigError, Task, at_least, positive, register_hook, register_model, register_task
from hybrid import backbones
from hybrid.metrics import path_metrics
from hybrid.models import HybridShortestPath, NeuralShortestPath, solve
from hybrid.tasks import digit_addition as DA
from hybrid.tasks.terrain import make_splits

# ------------------------------------------------------------------------------------------------ terrain SP(k)


@dataclasses.dataclass
class TerrainConfig:
    """Terrain SP(k): k x k tiles of ``tile_px`` pixels; split sizes; ``data_seed`` fixes every split."""

    k: int = 12
    train_size: int = 1000
    val_size: int = 200
    test_size: int = 1000
    tile_px: int = 4
    noise: float = 0.08
    data_seed: int = 0

    def __post_init__(self):
        at_least(self, k=2, tile_px=2, train_size=1, test_size=1, val_size=0, noise=0.0)


def terrain_loss(model, batch, key, train):
    """``model.loss`` plus, at evaluation, the path metrics (exact_match, cost_match, regret...) and solver calls."""
    loss, aux = model.loss(batch, key, train)
    metrics = {"solver_calls": jnp.float32(aux["solver_calls"])}
    if not train:
        metrics.update(path_metrics(aux["pred"], batch["path"], batch["costs"], batch["opt_cost"]))
    return loss, metrics


@register_task("terrain_sp", config=TerrainConfig, doc="terrain shortest path SP(k): tile images -> optimal path")
def terrain_task(cfg, *, key):
    """Train on the train split; evaluate on the test split (the val split is drawn, so the test maps do not depend
    on ``val_size``, but no run reads it)."""
    splits = make_splits(jax.random.key(cfg.data_seed), cfg.k, cfg.train_size, cfg.val_size, cfg.test_size,
                         cfg.tile_px, cfg.noise)
    fields = ("images", "path", "costs", "opt_cost")
    pick = lambda s: {f: splits[s][f] for f in fields}
    return Task(
        name="terrain_sp",
        train_data=pick("train"),
        eval_data=pick("test"),
        loss=terrain_loss,
        spec={"k": cfg.k, "tile_px": cfg.tile_px, "input_shape": splits["train"]["images"].shape[1:]},
        examples_per_epoch=cfg.train_size,
        counts=("solver_calls",),
    )


@dataclasses.dataclass
class HybridSPConfig:
    """ResNet stem -> k x k costs -> grid shortest path, trained through ``estimator``."""

    estimator: Literal["blackbox", "identity", "perturbed"] = "blackbox"
    lam: float = 20.0
    projection: Literal["none", "normalize"] = "normalize"
    n_samples: int = 8
    sigma: float = 1.0
    noise: Literal["gumbel", "normal"] = "normal"
    width: int = 32
    blocks: int = 1
    norm: Literal["group", "batch", "none"] = "group"

    def __post_init__(self):
        positive(self, "lam", "sigma")
        at_least(self, n_samples=1, width=1, blocks=0)


@dataclasses.dataclass
class NeuralSPConfig:
    """The pure-neural baseline: ResNet stem -> k x k path logits through ``head``: ``mlp`` (an MLP over the whole
    map, ``hidden`` units) or ``recurrent`` (a shared residual conv block iterated ``iterations`` times with the
    input recalled, ``hidden`` channels; ``pool`` adds a 3x3 max-pool of the state). ``pos_weight`` weighs the
    path cells in the per-cell BCE."""

    width: int = 64
    blocks: int = 2
    hidden: int = 512
    norm: Literal["group", "batch", "none"] = "group"
    head: Literal["mlp", "recurrent"] = "mlp"
    iterations: int = 20
    pool: bool = False
    pos_weight: float = 1.0

    def __post_init__(self):
        positive(self, "pos_weight")
        at_least(self, width=1, hidden=1, blocks=0, iterations=1)


def _k(task):
    if "k" not in task.spec:
        raise ConfigError(f"data.name: {task.name!r} gives no grid size; use a shortest-path task (terrain_sp)")
    return task.spec["k"]


@register_model("hybrid_sp", config=HybridSPConfig, hooks=("hybrid_solver",),
                doc="CNN -> costs -> shortest-path solver (blackbox / identity / perturbed gradients)")
def _hybrid_sp(cfg, *, task, rngs):
    return HybridShortestPath(_k(task), estimator=cfg.estimator, lam=cfg.lam, projection=cfg.projection,
                              n_samples=cfg.n_samples, sigma=cfg.sigma, noise=cfg.noise, width=cfg.width,
                              blocks=cfg.blocks, norm=cfg.norm, in_channels=task.spec["input_shape"][-1], rngs=rngs)


@register_model("neural_sp", config=NeuralSPConfig, hooks=("hybrid_solver",),
                doc="pure-neural baseline: CNN + MLP or recurrent conv head -> k x k path mask (sigmoid, BCE)")
def _neural_sp(cfg, *, task, rngs):
    return NeuralShortestPath(_k(task), width=cfg.width, blocks=cfg.blocks, hidden=cfg.hidden, norm=cfg.norm,
                              in_channels=task.spec["input_shape"][-1], head=cfg.head, iterations=cfg.iterations,
                              pool=cfg.pool, pos_weight=cfg.pos_weight, rngs=rngs)


_SOLVE = jax.jit(solve)


def _train_batch_size(config) -> int:
    train = getattr(config, "train", None)
    return int(getattr(train, "batch_size", 0) or 0)


@register_hook("hybrid_solver", doc="solver calls and measured solver time per training epoch; examples seen")
def solver_hook(ctx) -> dict[str, float]:
    """Measures the jitted solver on one evaluation batch of the model's predicted costs (compile excluded) and
    scales it to one training epoch: ``examples_per_epoch * solver calls per training example``."""
    model = ctx.model
    out = {"examples_seen": float(ctx.step * _train_batch_size(ctx.config))}
    if not isinstance(model, HybridShortestPath) or not ctx.eval_batches:
        out.update(solver_calls_per_epoch=0.0, solver_time_per_epoch_s=0.0)
        return out
    calls_per_example = {"blackbox": 2, "identity": 1, "perturbed": model.n_samples}[model.estimator]
    costs = jax.block_until_ready(jax.jit(lambda m, x: m(x))(model, ctx.eval_batches[0]["images"]))
    jax.block_until_ready(_SOLVE(costs))
    reps, t0 = 3, time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(_SOLVE(costs))
    per_map = (time.perf_counter() - t0) / reps / costs.shape[0]
    epoch = ctx.task.examples_per_epoch or 0
    out.update(solver_calls_per_epoch=float(epoch * calls_per_example),
               solver_time_per_epoch_s=float(per_map * epoch * calls_per_example),
               solver_time_per_map_ms=float(per_map * 1e3))
    return out


# ------------------------------------------------------------------------------------------------ digit addition


@dataclasses.dataclass
class DigitAdditionConfig:
    """Two ``n_digits``-digit numbers of bundled 8x8 digit images -> their sum; trained from the sum only."""

    n_digits: int = 1
    eval_size: int = 1000
    test_fraction: float = 0.3
    data_seed: int = 0

    def __post_init__(self):
        at_least(self, n_digits=1, eval_size=1)
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction: {self.test_fraction!r} is not allowed; use a number in (0, 1)")


def digit_addition_loss(model, batch, key, train):
    """``-log P(sum)`` (exact marginal over digit values); eval metrics: sum_accuracy, digit_accuracy."""
    logits = model(batch["images"])                                       # [B, 2, N, 10]
    logp = jax.nn.log_softmax(logits, -1)
    loss = -DA.sum_log_likelihood(logp[:, 0], logp[:, 1], batch["sum_digits"]).mean()
    if train:
        return loss, {}
    guess = jnp.argmax(logits, -1)
    pred_sum = DA.add_digits(guess[:, 0], guess[:, 1])
    return loss, {"sum_accuracy": jnp.all(pred_sum == batch["sum_digits"], -1).mean(),
                  "digit_accuracy": (guess == batch["digits"]).mean()}


@register_task("digit_addition", config=DigitAdditionConfig,
               doc="N-digit addition of bundled 8x8 digit images, trained from the sum only")
def digit_addition_task(cfg, *, key):
    """Train images and test images come from disjoint pools; the eval set is fixed by ``data_seed``."""
    tr_x, tr_y = DA.load_pool("train", cfg.test_fraction, cfg.data_seed)
    te_x, te_y = DA.load_pool("test", cfg.test_fraction, cfg.data_seed)
    n = cfg.n_digits
    eval_data = jax.tree.map(np.asarray, DA.sample_examples(te_x, te_y, jax.random.key(cfg.data_seed),
                                                            cfg.eval_size, n))

    def sample(data, k, batch_size):
        ex = DA.sample_examples(data["images"], data["labels"], k, batch_size, n)
        return {"images": ex["images"], "sum_digits": ex["sum_digits"]}          # the digits stay hidden

    return Task(name="digit_addition", train_data={"images": tr_x, "labels": tr_y}, eval_data=eval_data,
                loss=digit_addition_loss, sample=sample,
                spec={"n_digits": n, "image_shape": tr_x.shape[1:], "num_classes": 10},
                examples_per_epoch=len(tr_y) // (2 * n))


@dataclasses.dataclass
class DigitPerceptionConfig:
    """MLP digit classifier applied to every image."""

    hidden: list[int] = dataclasses.field(default_factory=lambda: [128])

    def __post_init__(self):
        at_least(self, hidden=1)


class DigitPerception(nnx.Module):
    """``[..., 8, 8]`` images -> ``[..., 10]`` digit logits (an MLP on each image)."""

    def __init__(self, pixels: int, hidden, *, rngs: nnx.Rngs):
        self.mlp = backbones.MLP(pixels, hidden, 10, rngs=rngs)
        self.pixels = pixels

    def __call__(self, images):
        lead = images.shape[:-2]
        return self.mlp(images.reshape(-1, self.pixels)).reshape(*lead, 10)


@register_model("digit_perception", config=DigitPerceptionConfig,
                doc="MLP digit classifier for digit_addition (exact symbolic addition on top)")
def _digit_perception(cfg, *, task, rngs):
    if "image_shape" not in task.spec:
        raise ConfigError(f"data.name: {task.name!r} gives no image shape; use digit_addition")
    return DigitPerception(int(np.prod(task.spec["image_shape"])), cfg.hidden, rngs=rngs)


@dataclasses.dataclass
class MLPConfig:
    """The generic classifier on flattened inputs (the quickstart's model): hidden widths and activation."""

    hidden: list[int] = dataclasses.field(default_factory=lambda: [128])
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"

    def __post_init__(self):
        at_least(self, hidden=1)


@register_model("mlp", config=MLPConfig, doc="MLP classifier on flattened inputs (any task with input_shape)")
def _mlp(cfg, *, task, rngs):
    if "input_shape" not in task.spec or "num_classes" not in task.spec:
        raise ConfigError(f"model.name: 'mlp' needs a classification task (input_shape, num_classes); "
                          f"{task.name!r} gives neither")
    in_features = int(np.prod(task.spec["input_shape"]))
    return backbones.MLP(in_features, cfg.hidden, task.spec["num_classes"], activation=cfg.activation, rngs=rngs)
