"""Reading run folders: finding finished runs, loading their config, summary and events, grouping them by setting.

A run folder holds ``config.json``, ``summary.json`` and ``metrics.jsonl`` (``experiments.runner`` writes them);
everything that reads results (reports, claims, the runner's own ``RunResult.metrics``) reads them through here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from experiments.analysis.scaling import training_compute
from experiments.errors import ConfigError


def read_events(path: str | Path) -> list[dict]:
    """Every event of a ``metrics.jsonl`` file, in the order written."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


SUMMARY_FIELDS = ("param_count", "flops_per_step", "flops_per_example", "step_time_s", "examples_per_s",
                  "compile_time_s", "peak_memory_bytes", "step_memory_bytes", "step_state_bytes", "step_temp_bytes",
                  "tokens_per_s", "mfu")


def find_runs(dirs) -> list[Path]:
    """Every finished run (a folder with ``summary.json``) in or under the given folders."""
    found = []
    for d in map(Path, dirs):
        if not d.exists():
            raise ConfigError(f"compare: {str(d)!r} does not exist; give run or sweep folders")
        found += sorted(p.parent for p in d.rglob("summary.json"))
    if not found:
        raise ConfigError(f"compare: no finished run (summary.json) under {', '.join(map(str, dirs))}")
    return list(dict.fromkeys(found))


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def load_runs(dirs, settings=()) -> list[dict]:
    """The finished runs under ``dirs``: ``{"dir", "config", "flat", "values", "summary", "setting"}`` each.
    ``settings``: dotted fields that are an arm's own setting rather than a grid axis (a tuned learning rate, which
    differs between the sizes of one family): they move from ``flat`` to ``setting``, so they neither label groups
    nor split a family's sizes."""
    runs = []
    for d in find_runs(dirs):
        config = json.loads((d / "config.json").read_text())
        summary = json.loads((d / "summary.json").read_text())
        values = {k: v for k, v in summary.get("final", {}).items() if isinstance(v, (int, float))}
        values.update({k: summary[k] for k in SUMMARY_FIELDS if isinstance(summary.get(k), (int, float))})
        named = {"flops_cost_analysis": "train_flops", "flops_6nd": "train_flops_6nd", "train_tokens": "train_tokens"}
        values.update({named[k]: v for k, v in training_compute(summary, config).items()})
        flat = own_seed_named(config)
        setting = {k: flat.pop(k) for k in settings if k in flat}
        runs.append({"dir": d, "config": config, "flat": flat, "values": values, "summary": summary,
                     "setting": setting})
    return runs


def own_seed_named(config: dict) -> dict:
    """The flat config, where a string naming the run's own seed (a teacher ``.../teacher__seed=2`` filled in from
    ``{seed}``) reads ``seed={seed}`` again, so the runs of one setting group together across seeds."""
    own = re.compile(rf"seed={config.get('seed')}(?!\d)")
    flat = flatten({k: v for k, v in config.items() if k != "sweep"})
    return {k: own.sub("seed={seed}", v) if isinstance(v, str) and k != "seed" else v for k, v in flat.items()}


def group_runs(runs: list[dict]) -> tuple[list[str], dict[str, list[dict]]]:
    """Runs grouped by the config fields that differ between them (seed aside). Labels name as few fields as
    separate the groups (greedily, most varied first, a ``name`` field before others) and leave out fields a run
    doesn't have."""
    keys = sorted({k for r in runs for k in r["flat"]})
    differing = [k for k in keys if k != "seed" and len({json.dumps(r["flat"].get(k)) for r in runs}) > 1]

    def n_groups(ks):
        return len({tuple(json.dumps(r["flat"].get(k)) for k in ks) for r in runs})

    target, chosen = n_groups(differing), []
    for k in sorted(differing, key=lambda k: (-len({json.dumps(r["flat"].get(k)) for r in runs}),
                                         not k.endswith(".name"), k)):
        if n_groups(chosen) == target:
            break
        if n_groups(chosen + [k]) > n_groups(chosen):
            chosen.append(k)
    chosen = [k for k in differing if k in chosen]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        label = ", ".join(f"{k}={r['flat'].get(k)}" for k in chosen if r["flat"].get(k) is not None) or "all runs"
        groups.setdefault(label, []).append(r)
    return chosen, groups


def variant_name(runs) -> str | None:
    """The sweep variant the runs share (their folders' ``VARIANT__...`` prefix), or None."""
    variants = {Path(r["dir"]).name.split("__")[0] for r in runs if "__" in Path(r["dir"]).name}
    one = variants.pop() if len(variants) == 1 else None
    return None if one is None or one.startswith("seed=") else one


def numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def families(runs: list[dict]) -> tuple[dict, list[str]]:
    """``({family label: {size label: [run, ...]}}, size fields)``: runs split into families by the config fields
    that differ in text (a model name, a variant) and, within a family, into sizes by those that differ in number."""
    keys = sorted({k for r in runs for k in r["flat"]} - {"seed"})
    differing = [k for k in keys if len({str(r["flat"].get(k)) for r in runs}) > 1]
    size_keys = [k for k in differing if all(numeric(r["flat"].get(k)) for r in runs)]
    family_keys = [k for k in differing if k not in size_keys]
    out: dict = {}
    for r in runs:
        fam = ", ".join(f"{k}={r['flat'].get(k)}" for k in family_keys) or "all runs"
        size = ", ".join(f"{k.split('.')[-1]}={r['flat'].get(k)}" for k in size_keys) or "one size"
        out.setdefault(fam, {}).setdefault(size, []).append(r)
    return out, size_keys


def points(sizes: dict, compute: str, loss: str) -> list[tuple]:
    """``(size, compute, loss)`` per run of ``{size: runs}`` that has both values."""
    return [(size, r["values"][compute], r["values"][loss]) for size, rs in sizes.items() for r in rs
            if numeric(r["values"].get(compute)) and numeric(r["values"].get(loss))]
