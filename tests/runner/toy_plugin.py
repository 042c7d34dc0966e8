"""A test plugin (loaded through BEYONDSCALE_PLUGINS): a pruning-like post-training transform and a model that
carries a finished run as a frozen teacher. Nothing here is shipped."""

import dataclasses

import jax.numpy as jnp
from flax import nnx

import experiments
from hybrid.backbones import MLP


@dataclasses.dataclass
class ToyPruneConfig:
    sparsity: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity: {self.sparsity} is not allowed; use 0 <= sparsity < 1")


def toy_prune(cfg, model, task, *, key):
    """Zero the smallest-magnitude ``sparsity`` share of every Linear kernel (one threshold per matrix)."""
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Linear):
            w = node.kernel.get_value()
            cut = jnp.quantile(jnp.abs(w), cfg.sparsity)
            node.kernel.set_value(jnp.where(jnp.abs(w) < cut, 0.0, w) if cfg.sparsity else w)
    model.post_info = {"sparsity": cfg.sparsity}  # a plain dict: the graph definition is no longer hashable
    return model


class Residual(nnx.Module):
    """A student that learns a correction on top of a frozen teacher: ``teacher(x) + student(x)``."""

    def __init__(self, teacher, student):
        self.teacher, self.student = teacher, student

    def __call__(self, x):
        return self.teacher(x) + self.student(x)


@dataclasses.dataclass
class ResidualConfig:
    teacher: str = ""
    hidden: list[int] = dataclasses.field(default_factory=lambda: [16])


def residual(cfg, *, task, rngs):
    teacher, _ = experiments.load_run(cfg.teacher, key="model.teacher")
    student = MLP(64, cfg.hidden, 10, rngs=rngs)
    return Residual(experiments.frozen(teacher), student)


experiments.register_transform("toy_prune", toy_prune, config=ToyPruneConfig)
experiments.register_model("toy_residual", residual, config=ResidualConfig)
