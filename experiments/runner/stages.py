"""Post-training stages: registered transforms applied to a trained model without retraining.

A path registers ``register_transform(name, fn, config=Cfg)`` with ``fn(cfg, model, task, *, key) -> model`` (a
transformed copy: pruned, quantised...). A config lists stages as ``[[post]]`` tables, ``name`` plus the transform's
fields; a field given as a list (where the field itself is not a list) is a grid, so ``sparsity = [0.5, 0.7, 0.9]``
is three stages. After training the runner evaluates each transformed copy on the eval split with the hooks, writes
one ``split = "post"`` event per stage and lists the stages in ``summary.json["post"]``; ``python -m experiments
evaluate RUN_DIR`` reruns them on a finished run (``experiments.runner.runs``).
"""

from __future__ import annotations

import zlib

import jax
from flax import nnx

from experiments.runner import registry
from experiments.runner.build import evaluate
from experiments.runner.config import Stage


def stage_key(seed: int, stage: Stage) -> jax.Array:
    """The stage's key: from the run's seed and the stage's label, so reruns and reorderings agree."""
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(stage.label.encode()) & 0x7FFFFFFF)


def run_stages(stages: list[Stage], model, built, config, log, step: int) -> list[dict]:
    """Apply each stage to a copy of the trained ``model``, evaluate it (task metrics and hooks) and log one
    ``post`` event per stage; returns the summary's ``post`` entries."""
    results = []
    for stage in stages:
        fn = registry.get("transform", stage.name).factory
        transformed = fn(stage.cfg, nnx.clone(model), built.task, key=stage_key(config.seed, stage))
        metrics = evaluate(transformed, built.task, config, built.eval_batches, built.eval_key, step=step,
                           final=True, hooks=built.hooks)
        entry = {"stage": stage.name, "label": stage.label, "params": stage.params, "metrics": metrics}
        log.event(step, "post", metrics, stage=stage.name, label=stage.label, params=stage.params)
        results.append(entry)
    return results
