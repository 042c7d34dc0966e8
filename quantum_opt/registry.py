"""Registers the quantum_opt path with the experiment runner (the only module here that imports ``experiments``).

Optimizers: ``tunneling`` (``quantum_opt.transforms.tunneling.tunneling`` around any registered optimizer named by
``inner``; with inner="adam" it is the "QAdam" of the claim), ``sam`` (optax.contrib.sam, counting its extra
gradient evaluations), ``pgd`` (perturbed gradient descent, Jin et al. 2017), ``qng`` / ``qng_adam`` (quantum
natural gradient, Stokes et al. 2020, on the parameters the model's quantum layers own, the registered optimizer
``rest`` — sgd / adam — on the others, through ``optax.partition``; the metric comes from the layers' own circuits,
``quantum_opt.layers``), ``spsa`` (Spall 1998; two loss evaluations a step, counted). Their random keys come from
the runner (derived from the run's seed) folded with the optimizer's own ``seed`` field, so every seed of a sweep
draws different jumps (probe inputs, SPSA directions) while the same seed repeats exactly.
Task: ``landscape`` (double well or Rastrigin, ``quantum_opt.tasks``) with the model ``point``.
Models: ``quantum_mlp`` / ``classical_twin_mlp`` (``quantum_opt.layers.HybridMLP``) for the runner's ``digits``.
Counters: ``tunneling`` and ``pgd`` declare ``jumps`` / ``perturbations``, which the runner sums from the optimizer
state and logs at every evaluation.

Every config dataclass declares its choices as ``Literal`` and its bounds in ``__post_init__`` (the loader reports a
bad value as one line naming the dotted key); the factories only build.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import numpy as np

from experiments import (
    ConfigError,
    Task,
    at_least,
    build_optimizer,
    names,
    positive,
    register_model,
    register_optimizer,
    register_task,
)
from quantum_opt import tasks

# quantum_opt.layers imports PennyLane (about 3 s; its ansätze are recorded in PennyLane), so the factories import the
# quantum modules when a config asks for them, not when the runner loads its plugins.


def _registered(field: str, name: str) -> None:
    if name not in names("optimizer"):
        raise ValueError(f"{field}: {name!r} is not allowed; use a registered optimizer: {', '.join(names('optimizer'))}")


@dataclasses.dataclass
class TunnelingConfig:
    inner: str = "adam"
    sampler: Literal["quantum", "argmin", "anneal", "random"] = "quantum"
    rule: Literal["window", "small_grad"] = "window"
    window: int = 20
    threshold: float = 1e-3
    n_qubits: int = 4
    directions: Literal["random", "momentum", "curvature"] = "random"
    step_sizes: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0])
    shots: int = 1
    layers: int = 8
    total_time: float = 12.0
    accept: Literal["improve", "always"] = "improve"
    seed: int = 0

    def __post_init__(self):
        _registered("inner", self.inner)
        at_least(self, window=1, shots=1, layers=1)
        positive(self, "total_time")
        if not 1 <= self.n_qubits <= 12:
            raise ValueError(f"n_qubits: {self.n_qubits} is not allowed; use an integer in 1..12")
        if not self.step_sizes or 2 ** self.n_qubits % len(self.step_sizes):
            raise ValueError(f"step_sizes: {self.step_sizes} is not allowed; use 1..{2 ** self.n_qubits} sizes whose "
                             f"count divides 2^n_qubits = {2 ** self.n_qubits}")


@dataclasses.dataclass
class SamConfig:
    inner: str = "adam"
    rho: float = 0.05
    sync_period: int = 2

    def __post_init__(self):
        _registered("inner", self.inner)
        positive(self, "rho")
        at_least(self, sync_period=2)


@dataclasses.dataclass
class PgdConfig:
    inner: str = "sgd"
    radius: float = 0.5
    threshold: float = 1e-3
    cooldown: int = 20
    seed: int = 0

    def __post_init__(self):
        _registered("inner", self.inner)
        positive(self, "radius")
        at_least(self, cooldown=0)


@dataclasses.dataclass
class QNGConfig:
    """``rest``: the registered optimizer of every parameter no quantum layer owns (sgd: the natural gradient of a
    flat metric); ``metric``: the Fubini–Study metric or its approximation (PennyLane's ``approx``; "block-diag" is
    PennyLane's default); ``regularization``: ε of (g + εI)^-1 (PennyLane's ``lam``); ``probe_inputs``: the K layer
    inputs the metric is averaged over (angles drawn from [-π, π) with the run's key); ``qng_lr_scale``: QNG's
    learning rate (and schedule) is ``optimizer.learning_rate`` times this, the rest's is not scaled. Counters:
    ``metric_evals`` (one a step) and ``circuit_evals`` (one state-and-Jacobian simulation per probe input and
    quantum layer). ``optimizer.weight_decay`` reaches ``rest`` only."""

    rest: str = "sgd"
    metric: Literal["block-diag", "full", "diag"] = "block-diag"
    regularization: float = 1e-3
    probe_inputs: int = 16
    qng_lr_scale: float = 1.0
    seed: int = 0

    def __post_init__(self):
        _registered("rest", self.rest)
        at_least(self, regularization=0)
        positive(self, "qng_lr_scale")
        if not 1 <= self.probe_inputs <= 4096:
            raise ValueError(f"probe_inputs: {self.probe_inputs} is not allowed; use an integer in 1..4096")


@dataclasses.dataclass
class QNGAdamConfig(QNGConfig):
    rest: str = "adam"


@dataclasses.dataclass
class SpsaConfig:
    """Spall's gains a_k = learning_rate / (stability + k + 1)^alpha (a schedule replaces them), c_k = perturbation /
    (k + 1)^gamma."""

    perturbation: float = 0.1
    alpha: float = 0.602
    gamma: float = 0.101
    stability: float = 0.0
    seed: int = 0

    def __post_init__(self):
        positive(self, "perturbation")
        at_least(self, alpha=0, gamma=0, stability=0)


@register_optimizer("tunneling", config=TunnelingConfig, counters=("jumps",),
                    doc="inner optimizer + plateau jumps picked by a quantum annealing circuit or a classical twin")
def _tunneling(cfg, *, learning_rate, weight_decay, key):
    from quantum_opt.transforms.tunneling import tunneling

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay, key=key)
    return tunneling(inner, key=jax.random.fold_in(key, cfg.seed), sampler=cfg.sampler, rule=cfg.rule,
                     window=cfg.window, threshold=cfg.threshold, n_qubits=cfg.n_qubits, directions=cfg.directions,
                     step_sizes=tuple(cfg.step_sizes), shots=cfg.shots, layers=cfg.layers,
                     total_time=cfg.total_time, accept=cfg.accept)


@register_optimizer("sam", config=SamConfig, doc="optax.contrib.sam (opaque mode) around an inner optimizer")
def _sam(cfg, *, learning_rate, weight_decay):
    from quantum_opt.transforms.tunneling import sam

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay)
    return sam(inner, rho=cfg.rho, sync_period=cfg.sync_period)


@register_optimizer("pgd", config=PgdConfig, counters=("perturbations",),
                    doc="perturbed gradient descent (Jin et al. 2017) around an inner optimizer")
def _pgd(cfg, *, learning_rate, weight_decay, key):
    from quantum_opt.transforms.tunneling import perturbed

    inner = build_optimizer(cfg.inner, None, learning_rate=learning_rate, weight_decay=weight_decay, key=key)
    return perturbed(inner, key=jax.random.fold_in(key, cfg.seed), radius=cfg.radius, threshold=cfg.threshold,
                     cooldown=cfg.cooldown)


def _qng_factory(name: str):
    def factory(cfg, *, learning_rate, weight_decay, key, model):
        import optax

        from quantum_opt import layers
        from quantum_opt.transforms.qng import qng

        owned = layers.quantum_layers(model)
        if not owned:
            raise ConfigError(f"optimizer.name: {name!r} is not allowed for {type(model).__name__}, which has no "
                              "quantum layer (quantum_opt.layers.QuantumLayer); use a model with one")
        key = jax.random.fold_in(key, cfg.seed)
        inputs = layers.probe_inputs(model, key, cfg.probe_inputs)
        scale = cfg.qng_lr_scale
        lr = (lambda step: scale * learning_rate(step)) if callable(learning_rate) else scale * learning_rate
        natural = qng(lr, metric_fn=layers.model_metric_fn(model, cfg.metric), metric_data=inputs,
                      regularization=cfg.regularization, circuits_per_metric=cfg.probe_inputs * len(owned))
        rest = build_optimizer(cfg.rest, None, learning_rate=learning_rate, weight_decay=weight_decay,
                               key=jax.random.fold_in(key, 1), model=model)
        return optax.partition({"quantum": natural, "rest": rest}, layers.param_labels(model))

    return factory


register_optimizer("qng", _qng_factory("qng"), config=QNGConfig,
                   doc="quantum natural gradient on the quantum layers' weights, `rest` (sgd) on the others")
register_optimizer("qng_adam", _qng_factory("qng_adam"), config=QNGAdamConfig,
                   doc="quantum natural gradient on the quantum layers' weights, `rest` (adam) on the others")


@register_optimizer("spsa", config=SpsaConfig, doc="SPSA (Spall 1998): two loss evaluations a step, no gradient")
def _spsa(cfg, *, learning_rate, weight_decay, key):
    from quantum_opt.transforms.spsa import spsa

    if weight_decay:
        raise ConfigError(f"optimizer.weight_decay: {weight_decay} is not allowed with spsa; use 0 (SPSA estimates "
                          "the loss's own gradient)")
    return spsa(learning_rate, key=jax.random.fold_in(key, cfg.seed), perturbation=cfg.perturbation,
                alpha=cfg.alpha, gamma=cfg.gamma, stability=cfg.stability)


@dataclasses.dataclass
class LandscapeConfig:
    kind: Literal["double_well", "rastrigin"] = "double_well"
    dim: int = 2
    tilt: float = 0.3
    tol: float = 0.1
    start: float = 1.0
    noise: float = 0.1

    def __post_init__(self):
        at_least(self, dim=1)
        at_least(self, noise=0)


@register_task("landscape", config=LandscapeConfig, doc="double-well or Rastrigin loss on a point (model: point)")
def _landscape(cfg, *, key):
    del key
    x_star, f_star = tasks.global_minimum(cfg.kind, cfg.dim, cfg.tilt)
    dummy = {"i": np.zeros((1, 1), np.float32)}  # the loss reads no data; one row = one "example" per step
    return Task(name="landscape", train_data=dummy, eval_data=dummy,
                loss=tasks.landscape_loss(cfg.kind, cfg.dim, cfg.tilt, cfg.tol),
                spec={"dim": cfg.dim, "start": cfg.start, "noise": cfg.noise, "minimum": f_star,
                      "argmin": x_star.tolist()},
                examples_per_epoch=1)


@register_model("point", doc="a trainable point (nnx.Param [dim]) for the landscape task")
def _point(cfg, *, task, rngs):
    if "dim" not in task.spec:
        raise ConfigError(f"model.name: 'point' needs the landscape task; got data.name {task.name!r}")
    return tasks.PointModel(task.spec["dim"], task.spec["start"], task.spec["noise"], rngs=rngs)


@dataclasses.dataclass
class HybridConfig:
    n_qubits: int = 4
    n_layers: int = 2
    ansatz: Literal["hardware_efficient", "strongly_entangling", "reuploading"] = "reuploading"
    device: Literal["simulator", "default.qubit", "lightning.qubit"] = "simulator"

    def __post_init__(self):
        at_least(self, n_qubits=1, n_layers=1)


def _hybrid(kind):
    def factory(cfg, *, task, rngs):
        from quantum_opt import layers

        if "input_shape" not in task.spec or "num_classes" not in task.spec:
            raise ConfigError(f"model.name: needs a classification task (input_shape, num_classes); got {task.name!r}")
        return layers.HybridMLP(int(np.prod(task.spec["input_shape"])), task.spec["num_classes"], kind=kind,
                                n_qubits=cfg.n_qubits, n_layers=cfg.n_layers, ansatz=cfg.ansatz, device=cfg.device,
                                rngs=rngs)

    return factory


register_model("quantum_mlp", _hybrid("quantum"), config=HybridConfig,
               doc="Linear -> quantum layer (circuit on the JAX simulator, angle-encoded / re-uploaded) -> Linear")
register_model("classical_twin_mlp", _hybrid("classical"), config=HybridConfig,
               doc="quantum_mlp with the quantum layer replaced by a tanh MLP of equal parameter count")
