"""A sweep's runs: every variant × grid point × seed of a config, each a named raw config (``expand``).

A run's name joins its variant, its grid values and its seed (``dense__model.width=64__seed=0``); each raw config
keeps only the ``[sweep]`` keys that say what to show (scatter, fronts, the summary table).
"""

from __future__ import annotations

import copy
import itertools
import re

from experiments.errors import ConfigError
from experiments.runner.config import TOP_KEYS, set_dotted


def slug(value) -> str:
    """A run-name-safe form of a config value."""
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
                plots = {k: sweep[k] for k in ("scatter", "front", "front_post", "table", "baseline", "note")
                         if sweep.get(k)}
                if plots:  # kept so `compare` (and `sweep`'s table) find what this experiment asks to show
                    cfg["sweep"] = plots
                parts = ([slug(vname)] if vname else []) + [f"{slug(k)}={slug(v)}" for k, v in zip(keys, values)]
                runs.append(("__".join(parts + [f"seed={seed}"]), cfg))
    return runs
