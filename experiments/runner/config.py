"""Typed experiment configs: TOML files, ``key=value`` overrides, validation against registered dataclasses.

A config file is the record of one experiment (big_vision style): its comment header says what it tests, the
command that runs it and the expected result. Layout::

    seed = 0
    hooks = []              # extra metric hooks by name
    [data]                  # the task: ``name`` + the fields of the task's registered config dataclass
    [model]                 # ``name`` + the model's fields
    [optimizer]             # ``name``, learning_rate, schedule, warmup_steps, clip_norm, weight_decay + its fields
    [train]                 # TrainConfig below
    [mesh]                  # data / fsdp / tensor / expert sizes and [mesh.rules] (experiments.runner.mesh)
    [sweep]                 # seeds, grid (dotted key → values), variants (name → overrides)
    [[post]]                # post-training stages: ``name`` + the transform's fields (a list is a grid)

Every bad key, type or value raises ``ConfigError`` with one line naming the dotted key, the bad value and what is
allowed. ``__post_init__`` of a registered dataclass may raise ``ValueError``; it is reported the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from experiments.errors import ConfigError
from experiments.runner import registry
from experiments.runner.fields import build_dataclass, coerce
from experiments.runner.mesh import MeshConfig, parse_mesh

SCHEDULES = ("constant", "warmup_cosine", "linear")
TOP_KEYS = ("seed", "hooks", "data", "model", "optimizer", "train", "mesh", "sweep", "post")


@dataclasses.dataclass
class TrainConfig:
    """The training loop's settings. ``0`` for an ``*_every`` field means: only at the end."""

    steps: int = 1000
    batch_size: int = 64
    eval_every: int = 100
    eval_batch_size: int = 256
    max_eval_batches: int = 0  # 0 = every evaluation batch of the held-out split
    log_every: int = 10
    checkpoint_every: int = 0
    steps_per_call: int = 1
    grad_accum: int = 1  # microbatches per step (lax.scan over batch_size / grad_accum rows each; one update)
    target_metric: str = ""  # e.g. "accuracy": fixed before any run, read by the stats harness
    target_value: float = 0.0
    target_mode: str = "max"
    stop_at_target: bool = False
    memory_analysis: bool = False  # record XLA's memory analysis of the compiled step (one more compile)

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_batch_size", "steps_per_call", "log_every", "grad_accum"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not allowed; must be > 0")
        for name in ("eval_every", "checkpoint_every", "max_eval_batches"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not allowed; must be >= 0 (0 = only at the end)")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"grad_accum: {self.grad_accum} is not allowed with batch_size {self.batch_size}; "
                             "give a divisor of batch_size")
        if self.target_mode not in ("max", "min"):
            raise ValueError(f"target_mode: {self.target_mode!r} is not allowed; use 'max' or 'min'")


@dataclasses.dataclass
class OptimizerConfig:
    """Fields every optimizer takes; the registered optimizer's own fields sit beside them in ``[optimizer]``."""

    name: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    clip_norm: float = 0.0  # 0 = no clipping
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate: {self.learning_rate} is not allowed; must be > 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: {self.schedule!r} is not allowed; use one of {', '.join(SCHEDULES)}")
        for name in ("warmup_steps", "clip_norm", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not allowed; must be >= 0")


@dataclasses.dataclass
class Section:
    """A named registry choice with its validated fields (``cfg`` is the registered dataclass instance)."""

    name: str
    cfg: Any


@dataclasses.dataclass
class Config:
    """A resolved, validated experiment config. ``raw`` is the plain dict it came from (written to the run dir)."""

    seed: int
    hooks: list[str]
    data: Section
    model: Section
    optimizer: OptimizerConfig
    optimizer_cfg: Any
    train: TrainConfig
    sweep: dict
    raw: dict
    source: str = ""
    post: list = dataclasses.field(default_factory=list)  # experiments.runner.stages.Stage, grids expanded
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)


# ---------------------------------------------------------------------------------------------------- loading


def read_file(path: str | Path) -> dict:
    """The raw dict of a TOML (or JSON) config file; ConfigError for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; give the path of a .toml file")
    text = path.read_bytes()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(path)!r} is not valid {path.suffix[1:].upper() or 'TOML'}: {err}") from None


def parse_value(text: str) -> Any:
    """A command-line value: TOML syntax when it parses (``3e-4``, ``true``, ``[1, 2]``, ``"x"``), else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_key(key: str) -> list[str]:
    """``'sweep.grid."data.k"'`` → ``['sweep', 'grid', 'data.k']``: dots inside quotes don't split."""
    parts, current, quote = [], "", None
    for ch in key:
        if quote:
            if ch == quote:
                quote = None
            else:
                current += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def set_dotted(raw: dict, key: str, value: Any) -> None:
    """``raw['a']['b'] = value`` for ``key='a.b'`` (quote a part holding dots: ``sweep.grid."data.k"``); a dict
    value for a whole section replaces that section."""
    parts = split_key(key)
    if parts[0] not in TOP_KEYS:
        raise ConfigError(f"{key}: unknown key; the top-level keys are {', '.join(TOP_KEYS)}")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def apply_overrides(raw: dict, overrides) -> dict:
    """A copy of ``raw`` with ``key=value`` strings (or ``(key, value)`` pairs, or a dict) applied in order."""
    raw = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else overrides or []
    for item in items:
        if isinstance(item, str):
            if "=" not in item:
                raise ConfigError(f"override {item!r} is malformed; write key=value, e.g. train.steps=100")
            key, text = item.split("=", 1)
            set_dotted(raw, key.strip(), parse_value(text.strip()))
        else:
            set_dotted(raw, *item)
    return raw


def _table(raw: dict, key: str, default=None) -> dict:
    """The section ``key`` of ``raw`` as a dict copy, or a ConfigError when a value stands where a table belongs."""
    value = raw.get(key, default if default is not None else {})
    if not isinstance(value, dict):
        hint = f"; write {key}.name={value}" if isinstance(value, str) and key in ("data", "model", "optimizer") else ""
        raise ConfigError(f"{key}: {value!r} is not allowed; {key} is a section (a TOML table){hint}")
    return dict(value)


def _section(raw: dict, kind: str, key: str) -> Section:
    values = _table(raw, key)
    if "name" not in values:
        choices = ", ".join(registry.names(kind))
        raise ConfigError(f"{key}.name: missing; registered {kind}s: {choices}")
    name = coerce(f"{key}.name", values.pop("name"), str)
    entry = registry.get(kind, name)
    if entry.config is None:
        if values:
            raise ConfigError(f"{key}.{sorted(values)[0]}: unknown key; {kind} {name!r} takes no fields")
        return Section(name, None)
    return Section(name, build_dataclass(key, entry.config, values))


# ---------------------------------------------------------------------------------------- post-training stages


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


def expand_stages(tables) -> list[Stage]:
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



def validate(raw: dict, source: str = "") -> Config:
    """The typed ``Config`` of a raw dict, or a ConfigError naming the first problem."""
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; the top-level keys are {', '.join(TOP_KEYS)}")
    seed = coerce("seed", raw.get("seed", 0), int)
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seed: {seed} is not allowed; use an integer in [0, 2**32)")
    hooks = coerce("hooks", raw.get("hooks", []), list[str])
    for hook in hooks:
        registry.get("hook", hook)
    data = _section(raw, "task", "data")
    model = _section(raw, "model", "model")
    opt_values = _table(raw, "optimizer", {"name": "adam"}) or {"name": "adam"}
    common = {k: opt_values.pop(k) for k in list(opt_values) if k in {f.name for f in dataclasses.fields(OptimizerConfig)}}
    optimizer = build_dataclass("optimizer", OptimizerConfig, common)
    entry = registry.get("optimizer", optimizer.name)
    if entry.config is None:
        if opt_values:
            raise ConfigError(f"optimizer.{sorted(opt_values)[0]}: unknown key; optimizer {optimizer.name!r} takes "
                              "only name, learning_rate, schedule, warmup_steps, clip_norm, weight_decay")
        optimizer_cfg = None
    else:
        optimizer_cfg = build_dataclass("optimizer", entry.config, opt_values)
    train = build_dataclass("train", TrainConfig, _table(raw, "train"))
    sweep = _table(raw, "sweep")
    bad = sorted(set(sweep) - set(SWEEP_KEYS))
    if bad:
        raise ConfigError(f"sweep.{bad[0]}: unknown key; allowed: {', '.join(SWEEP_KEYS)}")
    for key in ("scatter", "front"):
        for i, pair in enumerate(coerce(f"sweep.{key}", sweep.get(key, []), list)):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ConfigError(f"sweep.{key}[{i}]: {pair!r} is not allowed; give [X, Y], two metric names")
    coerce("sweep.front_post", sweep.get("front_post", []), list[str])
    coerce("sweep.table", sweep.get("table", []), list[str])
    coerce("sweep.baseline", sweep.get("baseline", ""), str)
    coerce("sweep.note", sweep.get("note", ""), str)
    for i, s in enumerate(coerce("sweep.seeds", sweep.get("seeds", [seed]), list[int])):
        if not 0 <= s < 2**32:
            raise ConfigError(f"sweep.seeds[{i}]: {s} is not allowed; use integers in [0, 2**32)")
    coerce("sweep.grid", sweep.get("grid", {}), dict)
    _check_tuning(sweep, seed)
    coerce("sweep.variants", sweep.get("variants", {}), dict)
    post = expand_stages(raw.get("post", []))
    mesh = parse_mesh(_table(raw, "mesh"))
    return Config(seed, hooks, data, model, optimizer, optimizer_cfg, train, sweep, copy.deepcopy(raw), source, post,
                  mesh)


SWEEP_KEYS = ("baseline", "front", "front_post", "grid", "note", "scatter", "seeds", "table", "tuning", "variants")
TUNING_KEYS = ("field", "metric", "mode", "seed", "values")  # and, optionally, "at" and "pick"


def _check_tuning(sweep: dict, seed: int) -> None:
    """``sweep.tuning`` (``experiments.sweeps.tuning``): its keys, types, and a seed no verdict run uses."""
    if "tuning" not in sweep:
        return
    t = coerce("sweep.tuning", sweep["tuning"], dict)
    bad = sorted((set(t) - {"at", "pick"}) ^ set(TUNING_KEYS))
    if bad:
        raise ConfigError(f"sweep.tuning.{bad[0]}: {'unknown' if bad[0] in t else 'missing'} key; the tuning table "
                          f"has {', '.join(TUNING_KEYS)}")
    if split_key(coerce("sweep.tuning.field", t["field"], str))[0] not in TOP_KEYS:
        raise ConfigError(f"sweep.tuning.field: {t['field']!r} is not allowed; name a dotted config field such as "
                          "optimizer.learning_rate")
    if len(coerce("sweep.tuning.values", t["values"], list)) < 2:
        raise ConfigError(f"sweep.tuning.values: {t['values']!r} is not allowed; give >= 2 values to choose from")
    coerce("sweep.tuning.metric", t["metric"], str)
    for key, value in coerce("sweep.tuning.at", t.get("at", {}), dict).items():
        if value not in (sweep.get("grid") or {}).get(key, []):
            raise ConfigError(f"sweep.tuning.at.{key}: {value!r} is not allowed; give a value of sweep.grid.{key} "
                              "(the grid point each arm is tuned at)")
    coerce("sweep.tuning.mode", t["mode"], typing.Literal["min", "max"])
    for name, group in coerce("sweep.tuning.pick", t.get("pick", {}), dict).items():
        if not isinstance(group, list) or len(group) < 2 or not set(group) <= set(sweep.get("variants") or {}):
            raise ConfigError(f"sweep.tuning.pick.{name}: {group!r} is not allowed; give a list of >= 2 of the "
                              f"sweep's variants ({', '.join(sweep.get('variants') or {}) or 'none'})")
    if coerce("sweep.tuning.seed", t["seed"], int) in sweep.get("seeds", [seed]):
        raise ConfigError(f"sweep.tuning.seed: {t['seed']} is not allowed; it is a verdict seed (sweep.seeds); "
                          "tune on a seed no verdict uses")


def load_config(path: str | Path, overrides=()) -> Config:
    """Read, override and validate a config file: ``load_config("x.toml", ["train.steps=100", "seed=2"])``."""
    return validate(apply_overrides(read_file(path), overrides), source=str(path))


def from_dict(raw: dict, overrides=()) -> Config:
    """A validated Config from a plain dict (notebooks, tests)."""
    return validate(apply_overrides(raw, overrides))
