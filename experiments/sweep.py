"""Sweeps: a config's ``[sweep]`` expanded into runs (variants × grid × seeds), each in its own subfolder.

``[sweep.variants.NAME]`` holds overrides: dotted keys set one field; a nested table for a top-level section
(``[sweep.variants.dense.model]``) replaces that whole section, so a variant can switch to a model with other fields.
A run whose folder holds ``summary.json`` is complete and skipped, so an interrupted sweep can simply be restarted.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path

from experiments.config import TOP_KEYS, Config, apply_overrides, read_file, set_dotted, validate
from experiments.errors import ConfigError


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(value)).strip("-") or "x"


def apply_variant(raw: dict, variant: dict) -> dict:
    raw = copy.deepcopy(raw)
    for key, value in variant.items():
        if key in TOP_KEYS and isinstance(value, dict):
            raw[key] = copy.deepcopy(value)
        else:
            set_dotted(raw, key, value)
    return raw


def expand(raw: dict) -> list[tuple[str, dict]]:
    """``[(run_name, raw_config), ...]`` for every variant × grid point × seed; each raw config has no sweep."""
    sweep = raw.get("sweep") or {}
    seeds = sweep.get("seeds") or [raw.get("seed", 0)]
    grid = sweep.get("grid") or {}
    variants = sweep.get("variants") or {"": {}}
    keys = list(grid)
    for key in keys:
        if not isinstance(grid[key], list) or not grid[key]:
            raise ConfigError(f"sweep.grid.{key}: {grid[key]!r} is not allowed; give a non-empty list of values")
    runs = []
    base = {k: v for k, v in raw.items() if k != "sweep"}
    for vname, variant in variants.items():
        if not isinstance(variant, dict):
            raise ConfigError(f"sweep.variants.{vname}: {variant!r} is not allowed; give a table of overrides")
        for values in itertools.product(*(grid[k] for k in keys)):
            for seed in seeds:
                cfg = apply_variant(base, variant)
                for key, value in zip(keys, values):
                    set_dotted(cfg, key, value)
                cfg["seed"] = seed
                if sweep.get("scatter"):  # kept so `compare` finds the plots this experiment asks for
                    cfg["sweep"] = {"scatter": sweep["scatter"]}
                parts = ([_slug(vname)] if vname else []) + [f"{_slug(k)}={_slug(v)}" for k, v in zip(keys, values)]
                runs.append(("__".join(parts + [f"seed={seed}"]), cfg))
    return runs


def plan(path: str | Path, overrides=()) -> list[tuple[str, Config]]:
    """Every run of a config file's sweep, validated before anything runs (a bad variant fails up front)."""
    raw = apply_overrides(read_file(path), overrides)
    validate(raw, source=str(path))
    out = []
    for name, cfg in expand(raw):
        try:
            out.append((name, validate(cfg, source=str(path))))
        except ConfigError as err:
            raise ConfigError(f"sweep run {name}: {err}") from None
    return out


def finished(rundir: Path, config: Config) -> bool:
    """Whether ``rundir`` holds a finished run of ``config`` (then it is reused). A finished run of another config
    is an error: reusing it would report numbers the config did not produce."""
    if not (rundir / "summary.json").exists():
        return False
    if json.loads((rundir / "config.json").read_text()) != config.to_dict():
        raise ConfigError(f"{str(rundir)!r} holds a finished run of a different config; use another --workdir/--out "
                          "or move that folder away")
    return True


def run_sweep(path: str | Path, workdir: str | Path, overrides=(), *, quiet: bool = False, log=print) -> list:
    """Run every incomplete run of the sweep in ``workdir/<run name>``; returns the run directories."""
    from experiments.train import run

    workdir = Path(workdir)
    runs = plan(path, overrides)
    dirs = []
    for i, (name, config) in enumerate(runs, 1):
        rundir = workdir / name
        dirs.append(rundir)
        if finished(rundir, config):
            log(f"[{i}/{len(runs)}] {name}: complete, skipped")
            continue
        log(f"[{i}/{len(runs)}] {name}")
        run(config, rundir, quiet=quiet)
    return dirs
