"""What a run is made of before its first step: the task, the split model, the replicated state, the eval batches.

The NNX model is split once into a graph definition and three states: its ``Param`` leaves (trained), its
``Frozen`` leaves (a restored teacher: read inside the step, never differentiated, never checkpointed) and the rest
(BatchNorm statistics, RNG counters, routing biases...: carried through the step and checkpointed).

The mesh is the config's ``[mesh]`` (``experiments.runner.mesh``: axes data, fsdp, tensor, expert; default every
device on ``data``). Batches are split over (data, fsdp, expert). On a pure data-parallel mesh everything is
replicated: the model is made once and copied to every device, as each device holds all of it anyway. On any other
mesh the state is created already sharded: the model is first built abstractly (``nnx.eval_shape``: shapes and the
parameters' logical axis names, no arrays), the rules give every parameter its sharding, and one jitted function
with those ``out_shardings`` creates the parameters, then another the optimizer state (sharded like the
parameters: ``mesh.like_params``), so no device ever holds a full copy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments.errors import ConfigError
from experiments.runner import metrics as M
from experiments.runner import registry
from experiments.runner.config import Config
from experiments.runner.mesh import batch_divisor, batch_spec, like_params, make_mesh, sharded_mesh, state_shardings


class Frozen(nnx.Variable):
    """A variable the runner never trains: not differentiated, not in the optimizer state, not checkpointed (a
    restored teacher's weights: its run folder is the record). It stays on the device and is read inside the step."""


def frozen(module):
    """``module`` (a copy) with every ``Param`` turned into ``Frozen``: a finished run used as a fixed part of a
    new model (``frozen(load_run(teacher_dir)[0])``)."""
    module = nnx.clone(module)
    nodes = dict(nnx.iter_graph(module))
    for path, node in nodes.items():
        if isinstance(node, nnx.Param):
            parent, name = nodes[path[:-1]], path[-1]
            if isinstance(name, int):
                parent[name] = Frozen(node.get_value())
            else:
                setattr(parent, name, Frozen(node.get_value()))
    return module


@dataclasses.dataclass
class Built:
    """A run ready to train: ``state`` is the donated pytree ``{params, rest, opt_state, step, key}``."""

    task: Any
    tx: Any
    graphdef: Any
    state: dict
    frozen: Any
    train_data: Any
    eval_batches: list
    eval_key: jax.Array
    batch_sharding: NamedSharding
    replicated: NamedSharding
    eval_step: Any = None
    hooks: list = dataclasses.field(default_factory=list)  # resolve_hooks(config): once per run
    shardings: Any = None  # NamedShardings of ``state``, leaf for leaf (the step's out_shardings)


def replicate(tree, sharding):
    """Global arrays replicated over the mesh (works on one host and across hosts)."""
    def put(x):
        if jax.process_count() > 1 and isinstance(x, jax.Array) and x.is_fully_addressable:
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):  # several hosts: each builds its shards from its copy
                return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
            x = np.asarray(x)
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if isinstance(x, jax.Array) and (jnp.issubdtype(x.dtype, jax.dtypes.prng_key) or x.is_fully_addressable):
            return jax.device_put(x, sharding)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def _buffer(x):
    """What identifies ``x``'s memory: its first local shard's buffer pointer (two Array objects may share one),
    else the object itself."""
    try:
        return ("ptr", x.addressable_shards[0].data.unsafe_buffer_pointer())
    except Exception:  # noqa: BLE001 - typed keys and some backends have no pointer to give
        return ("id", id(x))


def unalias(tree):
    """``tree`` with any buffer that appears in two leaves copied, so the whole tree can be donated (an optimizer
    state may hold one zeros array twice; after ``device_put`` the two are distinct objects over one buffer)."""
    seen = set()

    def fresh(x):
        if not isinstance(x, jax.Array):
            return x
        if _buffer(x) in seen:
            x = jnp.array(x, copy=True)
        seen.add(_buffer(x))
        return x

    return jax.tree.map(fresh, tree)


def split(model):
    """``(graphdef, params, frozen, rest)`` of an NNX model."""
    return nnx.split(model, nnx.Param, Frozen, ...)


def merge(graphdef, params, frozen, rest, *, train: bool):
    """The model back from its parts, in train or eval mode (fresh Variables at this trace level)."""
    model = nnx.merge(graphdef, params, frozen, rest, copy=True)
    model.train() if train else model.eval()
    return model


def build(config: Config, make_tx, devices=None) -> Built:
    """The task, the model (split), the optimizer ``make_tx(model)`` and its state, and the evaluation batches, on
    the config's mesh over ``devices`` (default: every device)."""
    mesh = make_mesh(config.mesh, devices)
    n_batch, tc = batch_divisor(mesh), config.train
    if (tc.batch_size // tc.grad_accum) % n_batch:
        raise ConfigError(f"train.batch_size: {tc.batch_size} is not allowed with grad_accum {tc.grad_accum} on a "
                          f"mesh splitting the batch {n_batch} ways; use a multiple of {n_batch * tc.grad_accum}")
    replicated = NamedSharding(mesh, P())
    data_key, model_key, train_key, eval_key = jax.random.split(jax.random.key(config.seed), 4)
    task = registry.get("task", config.data.name).factory(config.data.cfg, key=data_key)
    factory = registry.get("model", config.model.name).factory
    make_model = lambda: factory(config.model.cfg, task=task, rngs=nnx.Rngs(model_key))
    if sharded_mesh(mesh):
        graphdef, params, frozen, rest, shardings, tx, opt_state = _create_sharded(make_model, make_tx, mesh,
                                                                                   config.mesh.all_rules())
    else:
        model = make_model()
        graphdef, params, frozen, rest = split(model)
        tx = make_tx(model)
        opt_state, shardings = tx.init(params), None
    # The key rides in the state (not baked into the program), so every seed of a sweep compiles to the same
    # executable and the persistent compilation cache serves all but the first.
    state = {"params": params, "rest": rest, "opt_state": opt_state, "step": jnp.int32(0), "key": train_key}
    if shardings is None:
        state = replicate(state, replicated)
        shardings = jax.tree.map(lambda _: replicated, state)
    else:
        state = {**state, "step": replicate(state["step"], replicated), "key": replicate(state["key"], replicated)}
        shardings = {**shardings, "step": replicated, "key": replicated}
    state = unalias(state)  # donation needs one buffer per leaf
    return Built(task, tx, graphdef, state, replicate(frozen, replicated), replicate(task.train_data, replicated),
                 eval_batches(task, config, replicated), eval_key, NamedSharding(mesh, batch_spec(mesh)), replicated,
                 make_eval_step(graphdef, task.loss), resolve_hooks(config), shardings)


def sharded_init(make_model, mesh, rules):
    """``(graphdef, init, shardings)``: ``init()`` (jitted, no arguments) makes the model's ``(params, frozen,
    rest)`` with ``shardings`` (its ``out_shardings``: the parameters by their logical names and ``rules``, the
    rest replicated). Shapes and names come from an abstract model (``nnx.eval_shape``), so no array is made
    before ``init`` runs, and each device then makes only its shards."""
    replicated = NamedSharding(mesh, P())
    graphdef, params_a, frozen_a, rest_a = split(nnx.eval_shape(make_model))
    shardings = (state_shardings(params_a, mesh, rules), jax.tree.map(lambda _: replicated, frozen_a),
                 jax.tree.map(lambda _: replicated, rest_a))
    return graphdef, jax.jit(lambda: split(make_model())[1:], out_shardings=shardings), shardings


def _create_sharded(make_model, make_tx, mesh, rules):
    """The model's parts and optimizer state created sharded: ``(graphdef, params, frozen, rest, shardings of
    {params, rest, opt_state}, tx, opt_state)``: ``sharded_init``, then the optimizer state by a jitted
    ``tx.init`` whose ``out_shardings`` follow the parameters'."""
    replicated = NamedSharding(mesh, P())
    graphdef, init, (param_sh, _, rest_sh) = sharded_init(make_model, mesh, rules)
    with jax.set_mesh(mesh):
        params, frozen, rest = init()
        tx = make_tx(merge(graphdef, params, frozen, rest, train=True))
        opt_sh = like_params(jax.eval_shape(tx.init, params), params, param_sh, replicated)
        opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
    return graphdef, params, frozen, rest, {"params": param_sh, "rest": rest_sh, "opt_state": opt_sh}, tx, opt_state


def eval_batches(task, config: Config, sharding) -> list:
    batches = task.eval_batches(task.eval_data, config.train.eval_batch_size)
    if config.train.max_eval_batches:
        batches = batches[: config.train.max_eval_batches]
    return [replicate(b, sharding) for b in batches]


def resolve_hooks(config: Config) -> list:
    """The metric hook functions of a run, looked up once: those its task, model and optimizer declare, then the
    config's own."""
    names = []
    for kind, name in (("task", config.data.name), ("model", config.model.name), ("optimizer", config.optimizer.name)):
        names += registry.get(kind, name).hooks
    return [registry.get("hook", name).factory for name in dict.fromkeys(names + list(config.hooks))]


def make_eval_step(graphdef, loss):
    """The jitted ``(params, frozen, rest, batch, key) -> metrics`` of one model structure (compiled once; a
    closure rather than a static argument, since a graph definition need not be hashable)."""
    @jax.jit
    def eval_step(params, frozen, rest, batch, key):
        return loss(merge(graphdef, params, frozen, rest, train=False), batch, key, False)[1]

    return eval_step


def evaluate(model, task, config: Config, batches: list, key, *, step: int, final: bool = False,
             opt_state=None, eval_step=None, hooks=None) -> dict:
    """The task's metrics over ``batches`` (means weighted by batch size; the task's ``counts`` summed), then every
    hook's, then the optimizer's counters. ``model`` is any NNX model the task accepts (trained or transformed);
    ``eval_step`` (from ``make_eval_step``) reuses a compiled evaluation of the same structure; ``hooks`` (from
    ``resolve_hooks``, as ``Built.hooks`` holds them) saves looking the hooks up again."""
    graphdef, params, frozen, rest = split(model)
    eval_step = eval_step or make_eval_step(graphdef, task.loss)
    totals, count = {}, 0
    for i, batch in enumerate(batches):
        n = jax.tree.leaves(batch)[0].shape[0]
        out = eval_step(params, frozen, rest, batch, jax.random.fold_in(key, i))
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + float(v) * (1 if k in task.counts else n)
        count += n
    result = {k: v if k in task.counts else v / max(count, 1) for k, v in totals.items()}
    hooks = resolve_hooks(config) if hooks is None else hooks
    if hooks:
        model.eval()
        ctx = registry.HookContext(model, task, config, opt_state, params, step, batches, final)
        for hook in hooks:
            result.update(M.to_builtin(hook(ctx)))
    if opt_state is not None:
        result.update(M.optimizer_counters(opt_state, registry.counter_names()))
    return result
