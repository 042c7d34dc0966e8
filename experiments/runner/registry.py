"""Names → models, tasks, optimizers and metric hooks. Model paths register themselves here.

The runner knows nothing path-specific. Each path ships one glue module (``spiking/registry.py`` ...) that
imports this module and calls the ``register_*`` functions; the runner finds the glue modules through the
``beyondscale.plugins`` entry-point group declared in ``pyproject.toml`` (plus any module named in the
``BEYONDSCALE_PLUGINS`` environment variable, comma separated) and imports no path directly.

Factories:
  task:      ``factory(cfg, *, key) -> experiments.Task``
  model:     ``factory(cfg, *, task, rngs) -> nnx.Module``
  optimizer: ``factory(cfg, *, learning_rate, weight_decay[, key][, model]) -> optax.GradientTransformation``
             (declare ``key`` to get a PRNG key derived from the run's seed, ``model`` to get the NNX model)
  hook:      ``fn(ctx: HookContext) -> {name: float}``, called at every evaluation and at the end.
  transform: ``fn(cfg, model, task, *, key) -> nnx.Module``, a post-training stage (pruning, quantisation...):
             returns a transformed copy of the trained model, never changes ``model`` in place. Configs list
             stages as ``[[post]]`` tables (``name`` + the transform's fields; a list value is a grid).

``cfg`` is an instance of the dataclass given as ``config=`` at registration (its fields are the keys allowed
in the config file's section, typed and validated by ``experiments.runner.config``), or ``None`` when none was given.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import os
from typing import Any, Callable

from experiments.errors import ConfigError
from experiments.runner.fields import build_dataclass

PLUGIN_GROUP = "beyondscale.plugins"


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    config: type | None = None
    hooks: tuple[str, ...] = ()
    doc: str = ""
    counters: tuple[str, ...] = ()  # optimizer state fields the runner sums and logs (besides ``*_evals``)


@dataclasses.dataclass
class HookContext:
    """What a metric hook sees: the merged model, the task, the resolved config, the optimizer state, the step
    and the evaluation batches (already on the device)."""

    model: Any
    task: Any
    config: Any
    opt_state: Any
    params: Any
    step: int
    eval_batches: list[Any]
    final: bool = False


_TABLES: dict[str, dict[str, Entry]] = {"model": {}, "task": {}, "optimizer": {}, "hook": {}, "transform": {}}


def _register(kind: str, name: str, factory, config, hooks, doc, counters=()):
    def add(fn):
        text = doc if doc is not None else (fn.__doc__ or "").strip().splitlines()[0:1]
        text = text if isinstance(text, str) else (text[0] if text else "")
        _TABLES[kind][name] = Entry(kind, name, fn, config, tuple(hooks), text, tuple(counters))
        return fn

    return add(factory) if factory is not None else add


def register_model(name: str, factory=None, *, config: type | None = None, hooks=(), doc: str | None = None):
    """Register a model factory ``(cfg, *, task, rngs) -> nnx.Module``; usable as a decorator."""
    return _register("model", name, factory, config, hooks, doc)


def register_task(name: str, factory=None, *, config: type | None = None, hooks=(), doc: str | None = None):
    """Register a task factory ``(cfg, *, key) -> Task``; usable as a decorator."""
    return _register("task", name, factory, config, hooks, doc)


def register_optimizer(name: str, factory=None, *, config: type | None = None, hooks=(), counters=(),
                       doc: str | None = None):
    """Register an optimizer factory ``(cfg, *, learning_rate, weight_decay) -> GradientTransformation``.
    ``counters``: names of fields of its state (NamedTuples) that count events (accepted jumps, say); the runner
    logs their sums at every evaluation, as it does every ``*_evals`` field."""
    return _register("optimizer", name, factory, config, hooks, doc, counters)


def register_hook(name: str, fn=None, *, doc: str | None = None):
    """Register a metric hook ``fn(ctx: HookContext) -> {name: float}``; usable as a decorator."""
    return _register("hook", name, fn, None, (), doc)


def register_transform(name: str, fn=None, *, config: type | None = None, hooks=(), doc: str | None = None):
    """Register a post-training transform ``fn(cfg, model, task, *, key) -> model`` (a transformed copy)."""
    return _register("transform", name, fn, config, hooks, doc)


def get(kind: str, name: str) -> Entry:
    """The entry ``name`` of ``kind`` ('model', 'task', 'optimizer', 'hook'), or a ConfigError naming the choices."""
    load_plugins()
    table = _TABLES[kind]
    if name not in table:
        key = {"task": "data.name", "model": "model.name", "optimizer": "optimizer.name",
               "transform": "post.name"}.get(kind, "hooks")
        raise ConfigError(f"{key}: unknown {kind} {name!r}; registered: {', '.join(sorted(table)) or 'none'}")
    return table[name]


def names(kind: str) -> list[str]:
    load_plugins()
    return sorted(_TABLES[kind])


def counter_names() -> tuple[str, ...]:
    """Every counter field a registered optimizer declares (a wrapping optimizer's inner state is walked too)."""
    load_plugins()
    return tuple(dict.fromkeys(c for e in _TABLES["optimizer"].values() for c in e.counters))


def entries(kind: str) -> list[Entry]:
    load_plugins()
    return [_TABLES[kind][n] for n in sorted(_TABLES[kind])]


def build_optimizer(name: str, cfg=None, *, learning_rate, weight_decay: float = 0.0, key=None, model=None):
    """Build a registered optimizer by name (wrapping optimizers such as ``tunneling`` use this for ``inner``).

    ``cfg`` may be None, a dict of that optimizer's fields, or its config dataclass instance. ``key`` reaches
    factories that declare a ``key`` parameter (stochastic optimizers); the runner derives it from the run's seed.
    ``model`` (the NNX model being trained) reaches factories that declare a ``model`` parameter: an optimizer that
    needs something from the model (a layer's metric, a label tree of which parameters it owns) asks for it.
    """
    entry = get("optimizer", name)
    if entry.config is not None and not dataclasses.is_dataclass(cfg):
        cfg = build_dataclass(f"optimizer {name!r}", entry.config, cfg or {})
    kwargs = {"learning_rate": learning_rate, "weight_decay": weight_decay}
    if "key" in inspect.signature(entry.factory).parameters:
        if key is None:
            raise ConfigError(f"optimizer {name!r} is stochastic and needs a key; pass key=jax.random.key(seed)")
        kwargs["key"] = key
    if "model" in inspect.signature(entry.factory).parameters:
        if model is None:
            raise ConfigError(f"optimizer {name!r} needs the model it trains; pass model=...")
        kwargs["model"] = model
    return entry.factory(cfg, **kwargs)


_loaded = False


def load_plugins() -> None:
    """Import the runner's built-ins and every glue module of the plugin group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    modules = ["experiments.runner.builtin"]
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        modules.append(ep.value)
    modules += [m.strip() for m in os.environ.get("BEYONDSCALE_PLUGINS", "").split(",") if m.strip()]
    for module in dict.fromkeys(modules):
        importlib.import_module(module)
