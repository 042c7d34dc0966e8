"""Runner overhead: a tiny model's training step through the runner against a bare ``jax.jit`` loop.

Both train the quickstart MLP on digits (batch drawn on the device, Adam) in one process. The bare loop is the
shortest honest JAX loop: split the model once, jit one donated step, dispatch it ``steps`` times, block at the end;
it runs twice, with the NNX state as the step's argument and with the state as a flat list of arrays (faster: a tree
of NNX Variables is rebuilt in Python on every call), and the runner is compared with the faster of the two.
The runner's time is its training-loop wall time (dispatch, read-back of the losses, logging, progress), compile,
evaluation and checkpoint time excluded (``summary.json``'s ``step_time_s``). Prints µs per step, the ratio
runner/bare with one step per call (goal <= 1.10) and the gain of ``steps_per_call=16`` over 1.

The variants are timed in interleaved rounds (so a change in machine load hits each alike). The ratio printed is
of each variant's best round: noise on a shared machine only ever adds time, and the best of 9 rounds was stable
where the median of the per-round ratios moved by ±8% between invocations (per-round spread ±15-20% on this
2-core VM); that median and its spread are printed beside it.

    python experiments/benchmarks/runner_overhead.py [--steps 4000] [--repeats 9] [--core 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

import experiments
from experiments.runner import registry

CONFIG = Path(experiments.__file__).parent / "configs" / "quickstart.toml"


def bare_loop_us(steps: int, flat: bool = False) -> float:
    """µs per step of the bare loop. ``flat``: the state crosses the jit boundary as a flat list of arrays (the
    trees rebuilt inside the program), the faster way to call a jitted NNX step, which the runner uses too."""
    cfg = experiments.load_config(CONFIG)
    root = jax.random.key(cfg.seed)
    data_key, model_key, train_key, _ = jax.random.split(root, 4)
    task = registry.get("task", "digits").factory(cfg.data.cfg, key=data_key)
    model = registry.get("model", "mlp").factory(cfg.model.cfg, task=task, rngs=nnx.Rngs(model_key))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(cfg.optimizer.learning_rate)
    data = jax.device_put(task.train_data)
    batch_size = cfg.train.batch_size
    state = (params, tx.init(params), 0)
    treedef = jax.tree.structure(state)

    def step(state, data):
        params, opt_state, i = jax.tree.unflatten(treedef, state) if flat else state
        idx = jax.random.randint(jax.random.fold_in(train_key, i), (batch_size,), 0, data["y"].shape[0])

        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(data["x"][idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, data["y"][idx]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        new = (optax.apply_updates(params, updates), opt_state, i + 1)
        return (jax.tree.leaves(new) if flat else new), loss

    step = jax.jit(step, donate_argnums=0)
    state = jax.tree.leaves(state) if flat else state
    state, loss = step(state, data)  # compile
    loss.block_until_ready()
    t0 = time.perf_counter()
    for _ in range(steps):
        state, loss = step(state, data)
    loss.block_until_ready()
    return (time.perf_counter() - t0) / steps * 1e6


def runner_us(steps: int, steps_per_call: int) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        cfg = experiments.load_config(CONFIG, [f"train.steps={steps}", "train.eval_every=0", "train.log_every=100",
                                               f"train.steps_per_call={steps_per_call}", "optimizer.schedule='constant'"])
        result = experiments.run(cfg, workdir, quiet=True)
        return result.summary["step_time_s"] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--core", type=int, default=1, help="the one CPU core to run on (-1: all): pinned, the rounds "
                        "of a variant agree within a few percent on this 2-core VM, unpinned they moved by ±15-20%%")
    args = parser.parse_args()
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):  # before the backend starts: XLA sizes its pool from it
        os.sched_setaffinity(0, {args.core})
    times = {"bare loop, NNX state": [], "bare loop, flat state": [], "runner, steps_per_call=1": [],
             "runner, steps_per_call=16": []}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every variant alike
        times["bare loop, NNX state"].append(bare_loop_us(args.steps))
        times["bare loop, flat state"].append(bare_loop_us(args.steps, flat=True))
        times["runner, steps_per_call=1"].append(runner_us(args.steps, 1))
        times["runner, steps_per_call=16"].append(runner_us(args.steps, 16))
    nnx_state, flat, one, many = (np.array(v) for v in times.values())
    ratios, gains = one / np.minimum(nnx_state, flat), one / many
    print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()}, CPU cores: {os.cpu_count()} (this run on "
          f"{sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'all'}), "
          f"jax {jax.__version__}; {args.steps} steps, median of {args.repeats}")
    for k, v in times.items():
        print(f"  {k:<28} {np.median(v):9.1f} µs/step   (runs: {', '.join(f'{x:.1f}' for x in v)})")
    best = one.min() / min(nnx_state.min(), flat.min())
    print(f"ratio runner(steps_per_call=1) / the faster bare loop: {best:.3f} (best of {args.repeats} rounds each; "
          f"the median of the per-round ratios {np.median(ratios):.3f}, spread {ratios.min():.3f}-{ratios.max():.3f})"
          "  (goal <= 1.10)")
    print(f"gain of steps_per_call=16 over 1: {np.median(gains):.2f}x (spread {gains.min():.2f}-{gains.max():.2f})")


if __name__ == "__main__":
    main()
