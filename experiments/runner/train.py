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
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import pandas as pd
from tqdm.auto import tqdm

from experiments.analysis.folders import read_events
from experiments.errors import ConfigError, TrainingDiverged
from experiments.runner import metrics as M
from experiments.runner import registry
from experiments.runner.accumulate import accumulated
from experiments.runner.build import Built, build, evaluate, merge, split
from experiments.runner.checkpoint import Checkpointer
from experiments.runner.config import Config, load_config
from experiments.runner.data import HostFeed
from experiments.runner.distributed import setup_distributed
from experiments.runner.mesh import describe as mesh_summary
from experiments.runner.mesh import per_device_bytes
from experiments.runner.mfu import mfu_summary
from experiments.runner.stages import run_stages


@dataclasses.dataclass
class RunResult:
    """A finished run: its directory, config and summary; ``metrics`` is every logged event as a DataFrame."""

    workdir: Path
    config: Config
    summary: dict

    @property
    def metrics(self):
        return pd.DataFrame(read_events(self.workdir / "metrics.jsonl"))

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


def make_optimizer(config: Config, steps: int | None = None, key: jax.Array | None = None, model=None):
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
    ``BEYONDSCALE_COMPILATION_CACHE`` turns it off. Every program is kept, however fast it compiled, unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise: a sweep's runs compile the same small programs
    again and again (the claims suite's smoke size, 60 runs from an empty cache: 268 s with jax's default of 1 s,
    202 s keeping all). Off in a multi-process run on CPU, whatever the setting: there a program read back from the
    cache waits for ever in its first cross-process collective (jax 0.12.1, gloo: two processes of 1, 2 or 4 devices
    hung in 7 of 7 tries that read the cache, one folder per process included, and finished in 7 of 7 without
    it)."""
    if jax.process_count() > 1 and jax.default_backend() == "cpu":
        jax.config.update("jax_enable_compilation_cache", False)
        return
    if os.environ.get("BEYONDSCALE_COMPILATION_CACHE") == "0":
        return
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if not jax.config.jax_compilation_cache_dir:
        path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.expanduser("~/.cache/beyondscale/jax")
        jax.config.update("jax_compilation_cache_dir", path)


def progress_bar(total: int, initial: int, quiet: bool):
    """A tqdm bar in a terminal or a notebook; None when quiet or when output is not a terminal."""
    in_notebook = "ipykernel" in sys.modules
    if quiet or jax.process_index() != 0 or not (in_notebook or sys.stderr.isatty()):
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _reached(value: float, config: Config) -> bool:
    t = config.train
    return value >= t.target_value if t.target_mode == "max" else value <= t.target_value


def due(step: int, every: int) -> bool:
    """Whether something done every ``every`` steps (0 = never during training) falls at ``step``."""
    return bool(every) and step % every == 0


def as_config(config: Config | str, overrides=()) -> Config:
    if not isinstance(config, Config):
        return load_config(config, overrides)
    if overrides:
        raise ConfigError("overrides: give them with a config file path, or apply them before validating")
    return config


def check_workdir(workdir: Path, config: Config, overwrite: bool) -> None:
    """Refuse a finished run (unless ``overwrite``) or another config's unfinished one."""
    if (workdir / "summary.json").exists() and not overwrite:
        raise ConfigError(f"--workdir: {str(workdir)!r} holds a finished run; choose a new workdir "
                          "(or pass --overwrite to replace it)")
    old = workdir / "config.json"
    same = lambda raw: {k: v for k, v in raw.items() if k != "mesh"}  # noqa: E731 - resuming on another mesh is fine
    if old.exists() and not overwrite and same(json.loads(old.read_text())) != same(config.to_dict()):
        raise ConfigError(f"--workdir: {str(workdir)!r} holds an unfinished run of a different config; "
                          "choose a new workdir (or pass --overwrite)")


def prepare_workdir(workdir: Path, config: Config, overwrite: bool) -> None:
    """Clear a replaced run (``overwrite``) and record ``config.json`` (process 0), once the run could be built."""
    if jax.process_index() != 0:
        return
    workdir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in ("summary.json", "metrics.jsonl"):
            (workdir / name).unlink(missing_ok=True)
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    M.write_json(workdir / "config.json", config.to_dict())


def make_one_step(built: Built, config: Config):
    """The pure training step ``(state, frozen, data) -> (state, metrics)``: draw a batch from the step's key,
    value-and-grad of the task loss (over ``train.grad_accum`` microbatches: ``accumulated``), optax update.
    Non-parameter state written by the forward (BatchNorm statistics, routing biases) comes back out with the new
    parameters."""
    task, tx, batch_size, accum = built.task, built.tx, config.train.batch_size, config.train.grad_accum
    extra_args = isinstance(tx, optax.GradientTransformationExtraArgs)

    def model_loss(params, frozen, rest, batch, key):
        model = merge(built.graphdef, params, frozen, rest, train=True)
        loss, metrics = task.loss(model, batch, key, True)
        return loss, (metrics, split(model)[3])

    def one_step(state, frozen, data):
        batch_key, loss_key = jax.random.split(jax.random.fold_in(state["key"], state["step"]))
        batch = data if task.host_batch is not None else task.sample(data, batch_key, batch_size)  # host-fed: given
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, built.batch_sharding), batch)
        params = state["params"]
        if accum == 1:
            (loss, (metrics, rest)), grads = jax.value_and_grad(model_loss, has_aux=True)(
                params, frozen, state["rest"], batch, loss_key)
        else:
            vg = jax.value_and_grad(lambda p, r, b: model_loss(p, frozen, r, b, loss_key), has_aux=True)
            loss, metrics, rest, grads = accumulated(vg, params, state["rest"], batch, accum, built.batch_sharding,
                                                     task.counts)
        if extra_args:  # optimizers that re-evaluate the loss (SAM, tunneling, SPSA), on the whole batch
            def value_fn(p):
                return model_loss(p, frozen, state["rest"], batch, loss_key)[0]

            updates, opt_state = tx.update(grads, state["opt_state"], params, value=loss, value_fn=value_fn,
                                           grad_fn=jax.grad(value_fn))
        else:
            updates, opt_state = tx.update(grads, state["opt_state"], params)
        new = {"params": optax.apply_updates(params, updates), "rest": rest, "opt_state": opt_state,
               "step": state["step"] + 1, "key": state["key"]}
        return new, {**metrics, "loss": loss}

    return one_step


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


class TrainStep:
    """The jitted, state-donating functions running ``n`` steps per host call (``lax.scan`` when n > 1), compiled
    once per ``n``. The first call of each ``n`` (trace + compile + run) counts as compile time, not step time.

    At the jit boundary the state, the frozen variables and the training data travel as flat lists of arrays: a
    tree of NNX ``Variable``s is rebuilt leaf by leaf in Python on every call (about 3 µs a Variable here, the
    runner's main cost per host call on a small model), a list is not. Inside the program the trees are rebuilt
    once, at trace time. ``__call__`` takes and returns the state as a tree, converting on the host only when the
    loop needs the tree (``leaves`` / ``tree``)."""

    def __init__(self, built: Built, config: Config):
        self.one_step = make_one_step(built, config)
        self.treedef = jax.tree.structure(built.state)
        frozen_leaves, self.frozen_def = jax.tree.flatten(built.frozen)
        # a task whose batches are made on the host (token files): each call is fed its n batches [n, B, ...]
        self.feed = (HostFeed(built.task.host_batch, built.batch_sharding, config.train.batch_size)
                     if built.task.host_batch is not None else None)
        data = built.train_data if self.feed is None else self.feed.spec
        data_leaves, self.data_def = jax.tree.flatten(data)
        self.fixed = (frozen_leaves, data_leaves)
        self.programs: dict[int, Any] = {}
        self.out_shardings = self.treedef.flatten_up_to(built.shardings)
        self.compile_time = 0.0
        self.flops_per_step = None  # from the first compiled program (``__call__``)

    def leaves(self, state) -> list:
        """The state's leaves, a PRNG key as its raw ``uint32`` data (a typed key costs more to pass in)."""
        out = self.treedef.flatten_up_to(state)
        self.keys = {i: jax.random.key_impl(x) for i, x in enumerate(out) if _is_key(x)}
        return [jax.random.key_data(x) if i in self.keys else x for i, x in enumerate(out)]

    def tree(self, leaves: list):
        typed = [jax.random.wrap_key_data(x, impl=self.keys[i]) if i in self.keys else x for i, x in enumerate(leaves)]
        return jax.tree.unflatten(self.treedef, typed)

    def program(self, n: int):
        if n not in self.programs:
            def steps(leaves, frozen_leaves, data_leaves):
                state = self.tree(leaves)
                frozen = jax.tree.unflatten(self.frozen_def, frozen_leaves)
                data = jax.tree.unflatten(self.data_def, data_leaves)
                if self.feed is not None:  # host-fed: scan over the n batches given
                    state, out = jax.lax.scan(lambda s, b: self.one_step(s, frozen, b), state, data)
                elif n == 1:
                    state, out = self.one_step(state, frozen, data)
                    out = jax.tree.map(lambda x: x[None], out)
                else:
                    state, out = jax.lax.scan(lambda s, _: self.one_step(s, frozen, data), state, None, length=n)
                return self.leaves(state), out

            # the state keeps its shardings (parameters and optimizer state as the mesh rules place them)
            self.programs[n] = jax.jit(steps, donate_argnums=0, out_shardings=(self.out_shardings, None))
        return self.programs[n]

    def memory(self, leaves: list) -> dict[str, int]:
        """XLA's memory analysis of the compiled one-step program, per device: ``state_bytes`` (the state's
        arguments: parameters, optimizer state, ...; the frozen variables and training data subtracted),
        ``temp_bytes`` (activations, gradients, workspace) and ``argument_bytes``. Not for host-fed tasks."""
        stats = self.program(1).lower(leaves, *self.fixed).compile().memory_analysis()
        fixed = per_device_bytes(self.fixed)
        return {"state_bytes": int(stats.argument_size_in_bytes - fixed), "temp_bytes": int(stats.temp_size_in_bytes),
                "argument_bytes": int(stats.argument_size_in_bytes)}

    def __call__(self, n: int, leaves: list):
        """``(state leaves, per-step metrics [n], fresh)`` from the state's leaves; asynchronous unless ``fresh``
        (its compile is timed)."""
        fresh = n not in self.programs
        t0 = time.perf_counter()
        fixed = self.fixed if self.feed is None else (self.fixed[0], jax.tree.leaves(self.feed.take(n)))
        leaves, out = self.program(n)(leaves, *fixed)
        if fresh:
            jax.block_until_ready(out)
            self.compile_time += time.perf_counter() - t0
            if self.flops_per_step is None:  # the optimised program XLA runs (lowering again hits the jit cache);
                # its cost analysis counts a scan's body once, so one step's FLOPs whatever ``n``. The unoptimised
                # lowering counted code XLA removes: 2.1 GFLOP a step more for an MoE LM at width 64 (10.2 against
                # 8.1 GFLOP), the "constant excess" of the MoE's XLA count.
                self.flops_per_step = M.compiled_flops(self.program(n).lower(leaves, *fixed).compile())
        return leaves, out, fresh


@dataclasses.dataclass
class Log:
    """Writes events (``metrics.jsonl``, process 0 only) and reads back dispatched steps' metrics in one sync."""

    writer: M.MetricsWriter
    config: Config
    examples_per_epoch: int | None
    checkpoints: Path
    bar: Any = None
    t_start: float = dataclasses.field(default_factory=time.time)

    def epoch(self, step: int):
        n = self.examples_per_epoch
        return step * self.config.train.batch_size / n if n else None

    def event(self, step: int, split_name: str, metrics: dict, **extra) -> None:
        self.writer.write({"step": step, "split": split_name, "epoch": self.epoch(step),
                           "wall_time": time.time() - self.t_start, **extra, **metrics})

    def read_back(self, pending: list, last_checkpoint) -> None:
        """Log every ``log_every``-th step of the pending calls ``(first step, n, metrics)``; stop on NaN/Inf.

        A non-finite loss poisons the parameters, so every later loss is non-finite too: the last pending call's
        losses are read first, and the earlier calls' only when those show a divergence (to name its first step)
        or hold a logged step. One small read-back per logging interval, not one per step."""
        tc = self.config.train
        if not np.isfinite(np.asarray(pending[-1][2]["loss"])).all() if pending else False:
            for first, n, out in pending:
                losses = np.asarray(out["loss"])
                bad = np.flatnonzero(~np.isfinite(losses))
                if bad.size:
                    at, loss = first + int(bad[0]) + 1, float(losses[bad[0]])
                    self.event(at, "train", {"loss": loss}, event="diverged")
                    kept = (f"last good checkpoint: step {last_checkpoint} in {self.checkpoints}" if last_checkpoint
                            is not None else "no checkpoint was written before it (lower optimizer.learning_rate, or "
                            "set train.checkpoint_every)")
                    raise TrainingDiverged(f"loss is {loss} at step {at}; run stopped; {kept}")
        for first, n, out in pending:
            logged = [i for i in range(n) if due(first + i + 1, tc.log_every) or first + i + 1 == tc.steps]
            values = {k: np.asarray(v) for k, v in out.items()} if logged else {}
            for i in logged:
                self.event(first + i + 1, "train", {k: float(v[i]) for k, v in values.items()})
        if self.bar is not None and pending:
            self.bar.update(sum(n for _, n, _ in pending))
            self.bar.set_postfix(loss=f"{np.asarray(pending[-1][2]['loss'])[-1]:.4f}")
        pending.clear()


def train_loop(state, start: int, config: Config, built: Built, train_step: TrainStep, log: Log,
               ckpt: Checkpointer):
    """Steps from ``start`` to ``train.steps`` (or to the target, with ``stop_at_target``): ``(state, step,
    target_reached_step, train_time)``. Host calls are dispatched ahead; metrics are read back only at log,
    evaluation and checkpoint steps, inside the timed region, so evaluation time is never charged to training."""
    tc = config.train
    step, reached_at, train_time, pending = start, None, 0.0, []
    leaves, last_ckpt = train_step.leaves(state), ckpt.latest_step()
    while step < tc.steps:
        marks = [tc.steps] + [(step // e + 1) * e for e in (tc.eval_every, tc.checkpoint_every, tc.log_every) if e]
        n = min(tc.steps_per_call, min(marks) - step)
        t0 = time.perf_counter()
        leaves, out, fresh = train_step(n, leaves)
        pending.append((step, n, out))
        step += n
        eval_now, ckpt_now = due(step, tc.eval_every) and step < tc.steps, due(step, tc.checkpoint_every)
        if due(step, tc.log_every) or step == tc.steps or eval_now or ckpt_now:
            log.read_back(pending, last_ckpt)
        if not fresh:
            train_time += time.perf_counter() - t0
        if eval_now:
            result = evaluate_state(train_step.tree(leaves), step, config, built)
            log.event(step, "eval", result)
            if reached_at is None and tc.target_metric and _reached(result.get(tc.target_metric, np.nan), config):
                reached_at = step
                if tc.stop_at_target:
                    break
        if ckpt_now:
            ckpt.save(step, train_step.tree(leaves))
            last_ckpt = step
    log.read_back(pending, last_ckpt)
    return train_step.tree(leaves), step, reached_at, train_time


def model_of(state, built: Built):
    """The trained model (eval mode) from the training state."""
    return merge(built.graphdef, state["params"], built.frozen, state["rest"], train=False)


def evaluate_state(state, step: int, config: Config, built: Built, final: bool = False) -> dict:
    return evaluate(model_of(state, built), built.task, config, built.eval_batches, built.eval_key, step=step,
                    final=final, opt_state=state["opt_state"], eval_step=built.eval_step, hooks=built.hooks)


def resume(ckpt: Checkpointer, writer: M.MetricsWriter, state):
    """``(state, first step)``: the last checkpoint's state with the events after it dropped, or a fresh start."""
    start = ckpt.latest_step()
    if start is None:
        writer.reset()
        return state, 0
    writer.truncate_after(start)
    return ckpt.restore(state, start), start


def run(config: Config | str, workdir: str | Path | None = None, *, overrides=(), quiet: bool = False,
        overwrite: bool = False, devices=None) -> RunResult:
    """Train ``config`` (a Config or a config file path) in ``workdir``; resume an unfinished run found there;
    then run the config's post-training stages on the trained model. ``devices``: the devices its ``[mesh]``
    spans (default: every device)."""
    began = time.time()
    config = as_config(config, overrides)
    workdir = Path(workdir or Path("runs") / Path(config.source or "run").stem)
    setup_distributed()
    enable_compilation_cache()
    check_workdir(workdir, config, overwrite)
    built = build(config, lambda model: make_optimizer(config, model=model), devices)  # bad input: before any write
    prepare_workdir(workdir, config, overwrite)
    train_step = TrainStep(built, config)
    writer, ckpt = M.MetricsWriter(workdir / "metrics.jsonl", enabled=jax.process_index() == 0), Checkpointer(workdir)
    state, start = resume(ckpt, writer, built.state)
    if train_step.feed is not None:
        train_step.feed.start(start)  # host-made batches, read ahead from the first step this process runs
    log = Log(writer, config, built.task.examples_per_epoch, ckpt.directory, progress_bar(config.train.steps, start, quiet))
    try:
        if start == 0 and config.train.eval_every:
            log.event(0, "eval", evaluate_state(state, 0, config, built))
        state, step, reached_at, train_time = train_loop(state, start, config, built, train_step, log, ckpt)
    finally:
        if train_step.feed is not None:
            train_step.feed.close()
        if log.bar is not None:
            log.bar.close()
    final = evaluate_state(state, step, config, built, final=True)
    log.event(step, "eval", final)
    ckpt.save(step, state)
    ckpt.close()
    post = run_stages(config.post, model_of(state, built), built, config, log, step)
    summary = make_summary(config, final, state, step, step - start, train_time, train_step, reached_at, post,
                           mesh=built.batch_sharding.mesh)
    if config.train.memory_analysis and built.task.host_batch is None:  # what a training step holds, per device
        memory = train_step.memory(train_step.leaves(state))
        summary.update(step_state_bytes=memory["state_bytes"], step_temp_bytes=memory["temp_bytes"],
                       step_memory_bytes=memory["state_bytes"] + memory["temp_bytes"])
    if built.task.facts:  # what the task records of its data (a corpus's name, bytes, Python version)
        summary["task"] = M.to_builtin(built.task.facts)
    summary["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # kept where file times are not
    summary["wall_s"] = time.time() - began  # the whole call: build, compile, train, evaluate, post stages (last leg)
    if jax.process_index() == 0:
        M.write_json(workdir / "summary.json", summary)
    return RunResult(workdir, config, summary)


def make_summary(config, final, state, step, trained, train_time, train_step, reached_at, post, mesh=None) -> dict:
    """``step_time_s``: host wall time of the training loop (dispatch and read-back, not compile, evaluation or
    checkpoints) over the steps trained in this process. With a path's ``model_flops_per_example`` in the final
    metrics: tokens/s, model FLOPs per token and MFU (``experiments.runner.mfu``), over the mesh's devices."""
    tc = config.train
    timed = trained - sum(train_step.programs)  # each first call is compile time
    per_step = train_time / timed if timed > 0 else None
    flops = train_step.flops_per_step
    return {
        "status": "finished",
        "steps": step,
        "final": final,
        "post": post,
        "param_count": M.param_count(state["params"]),
        "flops_per_step": flops,
        "flops_per_example": flops / tc.batch_size if flops else None,
        "step_time_s": per_step,
        "examples_per_s": tc.batch_size / per_step if per_step else None,
        "compile_time_s": train_step.compile_time or None,
        "peak_memory_bytes": M.peak_memory_bytes(),
        "target_reached_step": reached_at,
        "examples_seen": step * tc.batch_size,
        **({} if mesh is None else mesh_summary(mesh)),
        **(mfu_summary(tc.batch_size / per_step if per_step else None, final, mesh.size, mesh.devices.flat[0],
                       str(getattr(config.model.cfg, "dtype", "float32"))) if mesh is not None else {}),
        **M.environment(),
    }
