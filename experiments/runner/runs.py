"""Finished runs as models: ``load_run`` restores one, ``evaluate_run`` reruns post-training stages on it.

``load_run(run_dir) -> (model, config)`` rebuilds the registered model from the run's ``config.json`` and
restores its final checkpoint, so a finished run can be a distillation teacher (``build.frozen`` turns its
parameters into ``Frozen`` variables), a pruning baseline or a notebook's object of study. ``evaluate_run``
(``python -m experiments evaluate RUN_DIR [post=...]``) applies the stages named in the run's config or in the
overrides without retraining; its events are appended to ``metrics.jsonl`` and its stages to ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax

from experiments.errors import ConfigError
from experiments.runner import metrics as M
from experiments.runner.build import build
from experiments.runner.checkpoint import Checkpointer
from experiments.runner.config import Config, apply_overrides, validate
from experiments.runner.mesh import fitted
from experiments.runner.stages import run_stages
from experiments.runner.train import Log, enable_compilation_cache, make_optimizer, model_of


def _finished(run_dir, key: str) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{key}: {str(run_dir)!r} is not a run folder (no config.json); give the folder of a "
                          "finished run")
    if not (run_dir / "summary.json").is_file():
        raise ConfigError(f"{key}: {str(run_dir)!r} holds an unfinished run (no summary.json); finish it first "
                          f"(python -m experiments run CONFIG --workdir {run_dir})")
    return run_dir


def _restore(run_dir: Path, config: Config):
    """``(built, state, step)``: the run rebuilt from its config, its final checkpoint restored."""
    enable_compilation_cache()
    config.mesh = fitted(config.mesh, jax.device_count())  # trained on another mesh: its arrays restore on any
    built = build(config, lambda model: make_optimizer(config, model=model))
    ckpt = Checkpointer(run_dir)
    step = ckpt.latest_step()
    if step is None:
        raise ConfigError(f"run {str(run_dir)!r} has no checkpoint to restore")
    state = ckpt.restore(built.state, step)
    ckpt.close()
    return built, state, step


def load_run(run_dir, *, key: str = "run_dir"):
    """``(model, config)`` of a finished run: the registered model with its final checkpoint, in eval mode.
    ``key`` names the config key or argument that gave ``run_dir`` in error messages."""
    run_dir = _finished(run_dir, key)
    config = validate(json.loads((run_dir / "config.json").read_text()), source=str(run_dir / "config.json"))
    built, state, _ = _restore(run_dir, config)
    return model_of(state, built), config


def evaluate_run(run_dir, overrides=()) -> list[dict]:
    """Rerun post-training stages on a finished run: those in its config, or ``post=[...]`` from the overrides.
    Appends one ``post`` event per stage to ``metrics.jsonl`` and the stages to ``summary.json["post"]`` (an
    entry with the same label is replaced by the new one); training events are untouched."""
    run_dir = _finished(run_dir, "RUN_DIR")
    raw = json.loads((run_dir / "config.json").read_text())
    for item in overrides:
        key = item.split("=", 1)[0].strip() if isinstance(item, str) else item[0]
        if key.split(".")[0] != "post":
            raise ConfigError(f"{key}: only post may be given to evaluate (the run's training config is fixed); "
                              "e.g. post='[{name=\"prune\", sparsity=[0.5, 0.9]}]'")
    config = validate(apply_overrides(raw, overrides), source=str(run_dir / "config.json"))
    if not config.post:
        raise ConfigError(f"post: run {str(run_dir)!r} names no post-training stages; give some, e.g. "
                          "post='[{name=\"prune\", sparsity=0.5}]'")
    built, state, step = _restore(run_dir, config)
    main = jax.process_index() == 0
    writer = M.MetricsWriter(run_dir / "metrics.jsonl", enabled=main)
    log = Log(writer, config, built.task.examples_per_epoch, run_dir / "checkpoints")
    results = run_stages(config.post, model_of(state, built), built, config, log, step)
    if main:
        summary = json.loads((run_dir / "summary.json").read_text())
        labels = {r["label"] for r in results}
        summary["post"] = [p for p in summary.get("post", []) if p["label"] not in labels] + results
        M.write_json(run_dir / "summary.json", summary)
    return results
