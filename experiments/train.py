"""The one training loop shared by every model path.

The NNX model is split once into a graph definition, its parameters and the rest of its state; a pure step
(draw a batch on the device, value-and-grad, optax update) is jitted with the state donated and scanned over
``steps_per_call`` steps per host call (``nnx.jit`` would walk the object graph in Python on every call). The batch is
sharded over the ``data`` axis of a mesh of every visible device; parameters are replicated. The batch of step ``s``
is drawn with ``fold_in(key, s)``, so a resumed run, a run with another ``steps_per_call`` and a run on more devices
see the same batches. Checkpoints (orbax) every ``checkpoint_every`` steps and at the end; a NaN/Inf loss stops the
run naming the step and keeps the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from experiments import metrics as M
from experiments import registry
from experiments.checkpoint import Checkpointer
from experiments.distributed import setup_distributed
from experiments.config import Config, load_config
from experiments.errors import ConfigError, TrainingDiverged


@dataclasses.dataclass
class RunResult:
    """A finished run: its directory, config and summary; ``metrics`` is every logged event as a DataFrame."""

    workdir: Path
    config: Config
    summary: dict

    @property
    def metrics(self):
        import pandas as pd

        return pd.DataFrame(M.read_events(self.workdir / "metrics.jsonl"))

    @property
    def eval(self):
        df = self.metrics
        return df[df["split"] == "eval"].dropna(axis=1, how="all").reset_index(drop=True)

    @property
    def train(self):
        df = self.metrics
        return df[df["split"] == "train"].dropna(axis=1, how="all").reset_index(drop=True)


def make_schedule(opt, steps: int):
    """The learning-rate schedule named by ``optimizer.schedule``."""
    lr, warm = opt.learning_rate, min(opt.warmup_steps, steps)
    if opt.schedule == "constant":
        if not warm:
            return lr
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm])
    if opt.schedule == "linear":
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), optax.linear_schedule(lr, 0.0, steps - warm)],
                                    [warm])
    return optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(steps, warm + 1), end_value=0.0)


def build_optimizer(config: Config, steps: int | None = None, key: jax.Array | None = None, model=None):
    """The optax transformation for ``config.optimizer``: the registered optimizer, its schedule, clipping.

    A factory that takes a ``key`` argument (a stochastic optimizer) gets one derived from the run's seed."""
    opt = config.optimizer
    key = jax.random.fold_in(jax.random.key(config.seed), 1000) if key is None else key
    tx = registry.build_optimizer(opt.name, config.optimizer_cfg, key=key,
                                  learning_rate=make_schedule(opt, steps or config.train.steps),
                                  weight_decay=opt.weight_decay, model=model)
    if opt.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
    return tx


def enable_compilation_cache() -> None:
    """Persist compiled programs across processes (sweeps, resumed runs, tests) unless the user chose otherwise:
    ``JAX_COMPILATION_CACHE_DIR`` names the folder (default ``~/.cache/beyondscale/jax``); ``=0`` in
    ``BEYONDSCALE_COMPILATION_CACHE`` turns it off."""
    if os.environ.get("BEYONDSCALE_COMPILATION_CACHE") == "0" or jax.config.jax_compilation_cache_dir:
        return
    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.expanduser("~/.cache/beyondscale/jax")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _replicate(tree, sharding):
    """Global arrays replicated over the mesh (works on one host and across hosts)."""
    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if isinstance(x, jax.Array) and (jnp.issubdtype(x.dtype, jax.dtypes.prng_key) or x.is_fully_addressable):
            return jax.device_put(x, sharding)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def _unalias(tree):
    """``tree`` with any buffer that appears in two leaves copied, so the whole tree can be donated."""
    seen = set()

    def fresh(x):
        if isinstance(x, jax.Array) and id(x) in seen:
            return jnp.array(x, copy=True)
        seen.add(id(x))
        return x

    return jax.tree.map(fresh, tree)


def _progress(total: int, initial: int, quiet: bool):
    """A tqdm bar in a terminal or a notebook; None when quiet or when output is not a terminal."""
    in_notebook = "ipykernel" in sys.modules
    if quiet or jax.process_index() != 0 or not (in_notebook or sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _hook_names(config: Config) -> list[str]:
    names = []
    for kind, name in (("task", config.data.name), ("model", config.model.name), ("optimizer", config.optimizer.name)):
        names += registry.get(kind, name).hooks
    return list(dict.fromkeys(names + list(config.hooks)))


def _reached(value: float, config: Config) -> bool:
    t = config.train
    return value >= t.target_value if t.target_mode == "max" else value <= t.target_value


def run(config: Config | str, workdir: str | Path | None = None, *, overrides=(), quiet: bool = False,
        overwrite: bool = False) -> RunResult:
    """Train ``config`` (a Config or a config file path) in ``workdir``; resume an unfinished run found there."""
    if not isinstance(config, Config):
        config = load_config(config, overrides)
    elif overrides:
        raise ConfigError("overrides: give them with a config file path, or apply them before validating")
    workdir = Path(workdir or Path("runs") / Path(config.source or "run").stem)
    setup_distributed()
    enable_compilation_cache()
    main = jax.process_index() == 0
    tc = config.train
    if os.path.exists(workdir / "summary.json") and not overwrite:
        raise ConfigError(f"--workdir: {str(workdir)!r} holds a finished run; choose a new workdir "
                          "(or pass --overwrite to replace it)")
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
        old = workdir / "config.json"
        if old.exists() and not overwrite and json.loads(old.read_text()) != config.to_dict():
            raise ConfigError(f"--workdir: {str(workdir)!r} holds an unfinished run of a different config; "
                              "choose a new workdir (or pass --overwrite)")
        if overwrite:
            for name in ("summary.json", "metrics.jsonl"):
                (workdir / name).unlink(missing_ok=True)
            import shutil

            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
        M.write_json(old, config.to_dict())

    n_dev = jax.device_count()
    if tc.batch_size % n_dev:
        raise ConfigError(f"train.batch_size: {tc.batch_size} is not allowed on {n_dev} devices; "
                          f"use a multiple of {n_dev}")
    mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

    root = jax.random.key(config.seed)
    data_key, model_key, train_key, eval_key = jax.random.split(root, 4)
    task = registry.get("task", config.data.name).factory(config.data.cfg, key=data_key)
    model = registry.get("model", config.model.name).factory(config.model.cfg, task=task,
                                                             rngs=nnx.Rngs(model_key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = build_optimizer(config, model=model)
    extra_args = isinstance(tx, optax.GradientTransformationExtraArgs)
    # The key rides in the state (not baked into the program), so every seed of a sweep compiles to the same
    # executable and the persistent compilation cache serves all but the first.
    state = _replicate({"params": params, "rest": rest, "opt_state": tx.init(params), "step": jnp.int32(0),
                        "key": train_key}, replicated)
    state = _unalias(state)  # donation needs one buffer per leaf; an optimizer state may share one between two
    train_data = _replicate(task.train_data, replicated)
    eval_batches = task.eval_batches(task.eval_data, tc.eval_batch_size)
    if tc.max_eval_batches:
        eval_batches = eval_batches[: tc.max_eval_batches]
    eval_batches = [_replicate(b, replicated) for b in eval_batches]

    def model_loss(p, rest, batch, key, train):
        m = nnx.merge(graphdef, p, rest, copy=True)  # fresh Variables at this trace level (BatchNorm writes)
        m.train() if train else m.eval()
        loss, metrics = task.loss(m, batch, key, train)
        return loss, (metrics, nnx.split(m, nnx.Param, ...)[2])

    def one_step(state, data):
        step = state["step"]
        batch_key, loss_key = jax.random.split(jax.random.fold_in(state["key"], step))
        batch = task.sample(data, batch_key, tc.batch_size)
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), batch)
        (loss, (metrics, rest)), grads = jax.value_and_grad(model_loss, has_aux=True)(
            state["params"], state["rest"], batch, loss_key, True)
        if extra_args:
            def value_fn(p):
                return model_loss(p, state["rest"], batch, loss_key, True)[0]

            updates, opt_state = tx.update(grads, state["opt_state"], state["params"], value=loss,
                                           value_fn=value_fn, grad_fn=jax.grad(value_fn))
        else:
            updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new = {"params": optax.apply_updates(state["params"], updates), "rest": rest, "opt_state": opt_state,
               "step": step + 1, "key": state["key"]}
        return new, {"loss": loss, **{k: v for k, v in metrics.items() if k != "loss"}}

    compiled: dict[Any, Any] = {}  # n -> jitted n-step function; plus compile time and FLOPs per step

    def step_fn(n: int):
        """The jitted, state-donating function running ``n`` steps (a plain step when n is 1)."""
        if n not in compiled:
            def multi(state, data):
                if n == 1:
                    state, out = one_step(state, data)
                    return state, jax.tree.map(lambda x: x[None], out)
                return jax.lax.scan(lambda s, _: one_step(s, data), state, None, length=n)

            compiled[n] = jax.jit(multi, donate_argnums=0)
            if "flops_per_step" not in compiled:  # XLA counts a loop body once: analyse one un-scanned step
                compiled["flops_per_step"] = M.compiled_flops(jax.jit(one_step).lower(state, train_data))
        return compiled[n]

    def call(n: int, state):
        """One host call of ``n`` steps; the first call of each ``n`` (trace + compile + run) is timed apart."""
        fresh = n not in compiled
        t0 = time.perf_counter()
        state, out = step_fn(n)(state, train_data)
        if fresh:
            jax.block_until_ready(out)
            compiled["compile_time"] = compiled.get("compile_time", 0.0) + time.perf_counter() - t0
        return state, out, fresh

    @jax.jit
    def eval_step(params, rest, batch, key):
        return model_loss(params, rest, batch, key, False)[1][0]

    def evaluate(state, step: int, final: bool = False) -> dict:
        totals, count = {}, 0
        for i, batch in enumerate(eval_batches):
            n = jax.tree.leaves(batch)[0].shape[0]
            out = eval_step(state["params"], state["rest"], batch, jax.random.fold_in(eval_key, i))
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count += n
        result = {k: v / max(count, 1) for k, v in totals.items()}
        hooks = _hook_names(config)
        if hooks:
            m = nnx.merge(graphdef, state["params"], state["rest"])
            m.eval()
            ctx = registry.HookContext(m, task, config, state["opt_state"], state["params"], step, eval_batches, final)
            for name in hooks:
                result.update(M.to_builtin(registry.get("hook", name).factory(ctx)))
        result.update(M.optimizer_counters(state["opt_state"]))
        return result

    writer = M.MetricsWriter(workdir / "metrics.jsonl", enabled=main)
    ckpt = Checkpointer(workdir)
    start = ckpt.latest_step()
    if start is not None:
        state = ckpt.restore(state, start)
        writer.truncate_after(start)
    else:
        start = 0
        writer.reset()

    def epoch_of(step: int):
        return step * tc.batch_size / task.examples_per_epoch if task.examples_per_epoch else None

    bar = _progress(tc.steps, start, quiet)
    t_start, step, reached_at, train_time = time.time(), start, None, 0.0
    pending: list[tuple[int, int, dict]] = []  # calls dispatched but not yet read back: (first step, n, outputs)

    def flush():
        """Read back the pending losses (one host sync), stop on NaN/Inf naming the step, log every log_every."""
        for first, n, out in pending:
            values = {k: np.asarray(v) for k, v in out.items()}
            bad = np.flatnonzero(~np.isfinite(values["loss"]))
            if bad.size:
                at = first + int(bad[0]) + 1
                writer.write({"step": at, "split": "train", "wall_time": time.time() - t_start, "event": "diverged",
                              "loss": float(values["loss"][bad[0]])})
                raise TrainingDiverged(f"loss is {values['loss'][bad[0]]} at step {at}; run stopped; last good "
                                       f"checkpoint: step {ckpt.latest_step()} in {workdir / 'checkpoints'}")
            for i in range(n):
                s = first + i + 1
                if s % tc.log_every == 0 or s == tc.steps:
                    writer.write({"step": s, "split": "train", "epoch": epoch_of(s),
                                  "wall_time": time.time() - t_start, **{k: float(v[i]) for k, v in values.items()}})
            if bar is not None:
                bar.update(n)
                bar.set_postfix(loss=f"{values['loss'][-1]:.4f}")
        pending.clear()

    try:
        if start == 0 and tc.eval_every:
            writer.write({"step": 0, "split": "eval", "epoch": 0.0, "wall_time": 0.0, **evaluate(state, 0)})
        while step < tc.steps:
            marks = [tc.steps] + [(step // e + 1) * e for e in (tc.eval_every, tc.checkpoint_every, tc.log_every) if e]
            n = min(tc.steps_per_call, min(marks) - step)
            t0 = time.perf_counter()
            state, out, fresh = call(n, state)  # asynchronous: the host goes on while the device works
            pending.append((step, n, out))
            step += n
            due_eval = bool(tc.eval_every) and step % tc.eval_every == 0 and step < tc.steps
            due_ckpt = bool(tc.checkpoint_every) and step % tc.checkpoint_every == 0
            if step % tc.log_every == 0 or step == tc.steps or due_eval or due_ckpt:
                flush()  # waits for the device inside the timed region, so evaluation is not charged for training
            if not fresh:
                train_time += time.perf_counter() - t0
            if due_eval:
                result = evaluate(state, step)
                writer.write({"step": step, "split": "eval", "epoch": epoch_of(step),
                              "wall_time": time.time() - t_start, **result})
                if tc.target_metric and reached_at is None and _reached(result.get(tc.target_metric, np.nan), config):
                    reached_at = step
                    if tc.stop_at_target:
                        break
            if due_ckpt:
                ckpt.save(step, state)
        flush()
    finally:
        if bar is not None:
            bar.close()

    final = evaluate(state, step, final=True)
    writer.write({"step": step, "split": "eval", "epoch": epoch_of(step), "wall_time": time.time() - t_start,
                  **final})
    ckpt.save(step, state)
    ckpt.close()
    summary = _summary(config, final, state, step, step - start, train_time, compiled, reached_at)
    if main:
        M.write_json(workdir / "summary.json", summary)
    return RunResult(workdir, config, summary)


def _summary(config, final, state, step, trained, train_time, compiled, reached_at) -> dict:
    """``step_time_s``: host wall time of the training loop (dispatch and read-back, not compile, evaluation or
    checkpoints) over the steps trained in this process."""
    tc = config.train
    timed = trained - sum(n for n in compiled if isinstance(n, int))  # first calls are compile time
    per_step = train_time / timed if timed > 0 else None
    flops_per_step = compiled.get("flops_per_step")
    return {
        "status": "finished",
        "steps": step,
        "final": final,
        "param_count": M.param_count(state["params"]),
        "flops_per_step": flops_per_step,
        "flops_per_example": flops_per_step / tc.batch_size if flops_per_step else None,
        "step_time_s": per_step,
        "examples_per_s": tc.batch_size / per_step if per_step else None,
        "compile_time_s": compiled.get("compile_time"),
        "peak_memory_bytes": M.peak_memory_bytes(),
        "target_reached_step": reached_at,
        "examples_seen": step * tc.batch_size,
        **M.environment(),
    }
