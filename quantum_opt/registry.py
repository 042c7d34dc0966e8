"""Registers the quantum_opt path with the experiment runner (the only module here that imports ``experiments``).

Optimizers: ``tunneling`` (``quantum_opt.transforms.tunneling.tunneling`` around any registered optimizer named by
``inner``; with inner="adam" it is the "QAdam" of the claim), ``sam`` (optax.contrib.sam, counting its extra
gradient evaluations), ``pgd`` (perturbed gradient descent, Jin et al. 2017). Their random keys come from the
runner (derived from the run's seed) folded with the optimizer's own ``seed`` field, so every seed of a sweep draws
different jumps while the same seed repeats exactly.
Task: ``landscape`` (double well or Rastrigin, ``quantum_opt.tasks``) with the model ``point``.
Models: ``quantum_mlp`` / ``classical_twin_mlp`` (``quantum_opt.layers.HybridMLP``) for the runner's ``digits``.
Hook: ``quantum_opt_jumps`` reports accepted jumps / perturbations found in the optimizer state.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from experiments.errors import ConfigError
from experiments.registry import build_optimizer, register_hook, register_model, register_optimizer, register_task
from experiments.task import Task
from quantum_opt import tasks

# quantum_opt.layers and quantum_opt.transforms import PennyLane (about 3 s), so the factories import them when a
# config asks for them, not when the runner loads its plugins.


def _config_error(section: str, err: ValueError) -> ConfigError:
    return ConfigError(f"{section}.{err}")


@dataclasses.dataclass
class TunnelingConfig:
    inner: str = "adam"
    sampler: str = "quantum"
    rule: str = "window"
    window: int = 20
    threshold: float = 1e-3
    n_qubits: int = 4
    directions: str = "random"
    step_sizes: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    shots: int = 1
    layers: int = 8
    total_time: float = 12.0
    accept: str = "improve"
    seed: int = 0


@dataclasses.dataclass
class SamConfig:
    inner: str = "adam"
    rho: float = 0.05
    sync_period: int = 2


@dataclasses.dataclass
class PgdConfig:
    inner: str = "sgd"
    radius: float = 0.5
    threshold: float = 1e-3
    cooldown: int = 20
    seed: int = 0


@register_hook("quantum_opt_jumps", doc="accepted tunneling jumps / PGD perturbations in the optimizer state")
def jumps_hook(ctx) -> dict[str, float]:
    out = {}

    def visit(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name in ("jumps", "perturbations"):
                if name in node._fields:
                    out[name] = out.get(name, 0.0) + float(getattr(node, name))
        if isinstance(node, (tuple, list)):
            for child in node:
                visit(child)

    visit(ctx.opt_state)
    return out


@register_optimizer("tunneling", config=TunnelingConfig, hooks=("quantum_opt_jumps",),
                    doc="inner optimizer + plateau jumps picked by a quantum annealing circuit or a classical twin")
def _tunneling(cfg, *, learning_rate, weight_decay, key):
    from quantum_opt.transforms.tunneling import tunneling

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay, key=key)
    try:
        tx = tunneling(inner, sampler=cfg.sampler, rule=cfg.rule, window=cfg.window, threshold=cfg.threshold,
                         n_qubits=cfg.n_qubits, directions=cfg.directions, step_sizes=tuple(cfg.step_sizes),
                         shots=cfg.shots, layers=cfg.layers, total_time=cfg.total_time, accept=cfg.accept,
                         key=jax.random.fold_in(key, cfg.seed))
    except ValueError as err:
        raise _config_error("optimizer", err) from None
    return tx


@register_optimizer("sam", config=SamConfig, doc="optax.contrib.sam (opaque mode) around an inner optimizer")
def _sam(cfg, *, learning_rate, weight_decay):
    from quantum_opt.transforms.tunneling import sam

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay)
    try:
        return sam(inner, rho=cfg.rho, sync_period=cfg.sync_period)
    except ValueError as err:
        raise _config_error("optimizer", err) from None


@register_optimizer("pgd", config=PgdConfig, hooks=("quantum_opt_jumps",),
                    doc="perturbed gradient descent (Jin et al. 2017) around an inner optimizer")
def _pgd(cfg, *, learning_rate, weight_decay, key):
    from quantum_opt.transforms.tunneling import perturbed

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay, key=key)
    try:
        tx = perturbed(inner, radius=cfg.radius, threshold=cfg.threshold, cooldown=cfg.cooldown,
                         key=jax.random.fold_in(key, cfg.seed))
    except ValueError as err:
        raise _config_error("optimizer", err) from None
    return tx


@dataclasses.dataclass
class LandscapeConfig:
    kind: str = "double_well"
    dim: int = 2
    tilt: float = 0.3
    tol: float = 0.1
    start: float = 1.0
    noise: float = 0.1


@register_task("landscape", config=LandscapeConfig, doc="double-well or Rastrigin loss on a point (model: point)")
def _landscape(cfg, *, key):
    del key
    if cfg.kind not in tasks.LANDSCAPES:
        raise ConfigError(f"data.kind: got {cfg.kind!r}; allowed: {', '.join(tasks.LANDSCAPES)}")
    if cfg.dim < 1:
        raise ConfigError(f"data.dim: got {cfg.dim!r}; allowed: an int >= 1")
    x_star, f_star = tasks.global_minimum(cfg.kind, cfg.dim, cfg.tilt)
    dummy = {"i": np.zeros((1, 1), np.float32)}  # the loss reads no data; one row = one "example" per step
    return Task(name="landscape", train_data=dummy, eval_data=dummy,
                loss=tasks.landscape_loss(cfg.kind, cfg.dim, cfg.tilt, cfg.tol),
                spec={"dim": cfg.dim, "start": cfg.start, "noise": cfg.noise, "minimum": f_star,
                      "argmin": x_star.tolist()},
                examples_per_epoch=1, target_metric=("gap", "min"))


@register_model("point", doc="a trainable point (nnx.Param [dim]) for the landscape task")
def _point(cfg, *, task, rngs):
    if "dim" not in task.spec:
        raise ConfigError(f"model.name: 'point' needs the landscape task; got data.name {task.name!r}")
    return tasks.PointModel(task.spec["dim"], task.spec["start"], task.spec["noise"], rngs=rngs)


@dataclasses.dataclass
class HybridConfig:
    n_qubits: int = 4
    n_layers: int = 2
    ansatz: str = "reuploading"
    device: str = "default.qubit"


def _hybrid(kind):
    def factory(cfg, *, task, rngs):
        from quantum_opt import layers

        if "input_shape" not in task.spec or "num_classes" not in task.spec:
            raise ConfigError(f"model.name: needs a classification task (input_shape, num_classes); got {task.name!r}")
        try:
            return layers.HybridMLP(int(np.prod(task.spec["input_shape"])), task.spec["num_classes"], kind=kind,
                                    n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, ansatz=cfg.ansatz,
                                    device=cfg.device, rngs=rngs)
        except ValueError as err:
            raise _config_error("model", err) from None

    return factory


register_model("quantum_mlp", _hybrid("quantum"), config=HybridConfig,
               doc="Linear -> quantum layer (QNode, angle-encoded / re-uploaded) -> Linear")
register_model("classical_twin_mlp", _hybrid("classical"), config=HybridConfig,
               doc="quantum_mlp with the quantum layer replaced by a tanh MLP of equal parameter count")
