"""Post-training stages: registered transforms applied to a trained model without retraining.

A path registers ``register_transform(name, fn, config=Cfg)`` with ``fn(cfg, model, task, *, key) -> model`` (a
transformed copy: pruned, quantised...). A config lists stages as ``[[post]]`` tables, ``name`` plus the transform's
fields; a field given as a list (where the field itself is not a list) is a grid, so ``sparsity = [0.5, 0.7, 0.9]``
is three stages. After training the runner evaluates each transformed copy on the eval split with the hooks, writes
one ``split = "post"`` event per stage and lists the stages in ``summary.json["post"]``; ``python -m experiments
evaluate RUN_DIR`` reruns them on a finished run (``experiments.runs``).
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
import zlib
from typing import Any

import jax
from flax import nnx

from experiments import registry
from experiments.build import evaluate
from experiments.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Stage:
    """One point of a stage grid: the transform's name, its validated config and the fields set in the file."""

    name: str
    cfg: Any
    params: dict

    @property
    def label(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({fields})" if fields else self.name


def _is_list_field(cls, field: str) -> bool:
    hint = typing.get_type_hints(cls).get(field) if cls is not None else None
    return typing.get_origin(hint) in (list, tuple) or hint in (list, tuple)


def expand(tables, build_dataclass) -> list[Stage]:
    """The stages of ``[[post]]`` tables (grids expanded in field order), each validated: ``post[i].field`` names
    a bad key in the error."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"post: {tables!r} is not allowed; use a list of [[post]] tables, each with a name")
    stages = []
    for i, table in enumerate(tables):
        prefix, values = f"post[{i}]", dict(table)
        if not isinstance(values.get("name"), str):
            raise ConfigError(f"{prefix}.name: {values.get('name')!r} is not allowed; registered transforms: "
                              f"{', '.join(registry.names('transform')) or 'none'}")
        entry = registry.get("transform", values.pop("name"))
        grid = {k: v if isinstance(v, list) and not _is_list_field(entry.config, k) else [v] for k, v in values.items()}
        for k, v in grid.items():
            if not v:
                raise ConfigError(f"{prefix}.{k}: [] is not allowed; give a value or a non-empty list (a grid)")
        for point in itertools.product(*grid.values()):
            params = dict(zip(grid, point))
            if entry.config is None:
                if params:
                    raise ConfigError(f"{prefix}.{min(params)}: unknown key; transform {entry.name!r} takes "
                                      "no fields")
                cfg = None
            else:
                cfg = build_dataclass(prefix, entry.config, params)
            stages.append(Stage(entry.name, cfg, params))
    return stages


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
                           final=True)
        entry = {"stage": stage.name, "label": stage.label, "params": stage.params, "metrics": metrics}
        log.event(step, "post", metrics, stage=stage.name, label=stage.label, params=stage.params)
        results.append(entry)
    return results
