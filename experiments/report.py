"""``compare``: finished runs → ``report.md`` (mean ± 95% CI over seeds, grouped by the fields that differ) + plots.

Runs are grouped by every config field whose value differs between the runs, except ``seed``; each metric gets a
table (group, mean ± 95% bootstrap CI, n seeds). When the runs share a target (``train.target_metric``), a
time-to-target table gives, per group, the median steps, epochs and evaluations to reach it (censored runs counted
as never), the number censored, and the median ratio against the first group with its bootstrap CI.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from experiments import plots as figures
from experiments import stats
from experiments.errors import ConfigError
from experiments.front import front_section
from experiments.post_report import post_section
from experiments.scaling import training_compute

SUMMARY_FIELDS = ("param_count", "flops_per_step", "flops_per_example", "step_time_s", "examples_per_s",
                  "compile_time_s", "peak_memory_bytes")


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


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def load_runs(dirs) -> list[dict]:
    runs = []
    for d in find_runs(dirs):
        config = json.loads((d / "config.json").read_text())
        summary = json.loads((d / "summary.json").read_text())
        values = {k: v for k, v in summary.get("final", {}).items() if isinstance(v, (int, float))}
        values.update({k: summary[k] for k in SUMMARY_FIELDS if isinstance(summary.get(k), (int, float))})
        named = {"flops_cost_analysis": "train_flops", "flops_6nd": "train_flops_6nd"}
        values.update({named[k]: v for k, v in training_compute(summary, config).items()})
        runs.append({"dir": d, "config": config, "flat": _own_seed_named(config), "values": values,
                     "summary": summary})
    return runs


def _own_seed_named(config: dict) -> dict:
    """The flat config, where a string naming the run's own seed (a teacher ``.../teacher__seed=2`` filled in from
    ``{seed}``) reads ``seed={seed}`` again, so the runs of one setting group together across seeds."""
    own = re.compile(rf"seed={config.get('seed')}(?!\d)")
    flat = _flatten({k: v for k, v in config.items() if k != "sweep"})
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


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "not reached"
    a = abs(x)
    return f"{x:.4g}" if (a == 0 or 1e-3 <= a < 1e5) else f"{x:.3e}"


def _ci_cell(values) -> str:
    m, lo, hi = stats.bootstrap_ci(values)
    return f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"


def _matching_baseline(label: str, groups: dict[str, list[dict]], bases: list[str]) -> str:
    """The baseline group that shares the most config values with ``label``'s group (the first on a tie), so in a
    grid sweep each group is compared with the baseline at the same grid point (the same task, size, ...)."""
    mine = {k: json.dumps(v) for k, v in groups[label][0]["flat"].items() if k != "seed"}
    return max(bases, key=lambda b: sum(mine.get(k) == json.dumps(v) for k, v in groups[b][0]["flat"].items()))


def target_table(groups: dict[str, list[dict]], baseline: str | None = None) -> list[str]:
    """The time-to-target table, when the runs name a target metric; ratios against the ``baseline`` groups (those
    whose label contains that text; the first group by default), each group against the baseline group at its own
    grid point."""
    lines, per_group = [], {}
    for label, runs in groups.items():
        train = runs[0]["config"].get("train", {})
        if not train.get("target_metric") or train.get("target_value") is None:
            return []
        per_group[label] = [stats.epochs_to_target(r["dir"]) for r in runs]
    every = [k for rows in per_group.values() for r in rows for k in r if k.endswith("_evals")]
    counters = ["forward_evals", "backward_evals"] + sorted(set(every) - {"forward_evals", "backward_evals"})
    bases = [next(iter(per_group))]
    if baseline:
        parts = {label: re.split(r", (?=[\w.]+=)", label) for label in per_group}
        bases = [label for label in per_group if baseline == label or any(
            baseline in (p, p.split("=", 1)[-1]) for p in parts[label])]  # exact values first ("adam", not "qng_adam")
        bases = bases or [label for label in per_group if baseline in label]
        if not bases:
            raise ConfigError(f"--baseline: {baseline!r} matches no group; groups: {', '.join(per_group)}")
    t = groups[bases[0]][0]["config"]["train"]
    against = f"`{bases[0]}`" if len(bases) == 1 else f"the `{baseline}` group with the same other settings"
    lines += [f"## Time to target: {t['target_metric']} {'>=' if t.get('target_mode', 'max') == 'max' else '<='} "
              f"{t['target_value']}", "",
              "Median over seeds with 95% bootstrap CI; censored runs (target never reached) count as never. "
              f"Ratio: this group's median steps over the median of {against}.", "",
              "| group | n | censored | steps | epochs | " + " | ".join(k.replace("_", " ") for k in counters)
              + " | steps ratio |", "|---|---|---|---|---|" + "---|" * len(counters) + "---|"]
    for label, rows in per_group.items():
        cells = [_ci_cell_median([r[k] for r in rows]) if all(k in r for r in rows) else "n/a"
                 for k in ("step", "epoch", *counters)]
        base = [r["step"] for r in per_group[_matching_baseline(label, groups, bases)]]
        ratio = stats.ratio_ci([r["step"] for r in rows], base)
        lines.append(f"| {label} | {len(rows)} | {sum(r['censored'] for r in rows)} | " + " | ".join(cells)
                     + f" | {_fmt(ratio[0])} [{_fmt(ratio[1])}, {_fmt(ratio[2])}] |")
    return lines + [""]


def _ci_cell_median(values) -> str:
    m, lo, hi = stats.bootstrap_ci(values, statistic=np.median)
    return f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"


def compare(dirs, out: str | Path, *, scatter=(), metrics=None, baseline: str | None = None, post=(),
            scaling=(), front=(), n_boot: int = 200) -> Path:
    """Write ``out/report.md`` and PNG plots for the finished runs under ``dirs``; returns the report's path.
    Runs with post-training stages get a stage table and plots of metrics against stage parameters (``post``:
    extra ``(param, metric)`` pairs). ``scaling``: ``(compute, loss)`` pairs fitted as power laws per group
    (``train_flops`` = FLOPs per step × steps; ``train_flops_6nd`` = 6 · active params · tokens where recorded).
    ``front``: ``(x, y)`` pairs drawn for every group and post stage with the Pareto front (``experiments.front``;
    configs add theirs and the stages to show with ``sweep.front`` / ``sweep.front_post``)."""
    runs = load_runs(dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    differing, groups = group_runs(runs)
    names = sorted({k for r in runs for k in r["values"]}, key=lambda k: (k in SUMMARY_FIELDS, k))
    if metrics:
        names = [m for m in names if m in metrics]
    lines = ["# Comparison", "", f"{len(runs)} runs in {len(groups)} groups; grouped by: "
             f"{', '.join(differing) or 'nothing (all runs share one config but the seed)'}.",
             "Cells: mean [95% bootstrap CI] over seeds.", ""]
    lines += target_table(groups, baseline)
    lines += ["## Summary", "", "| group | n | " + " | ".join(names[:6]) + " |", "|---|---|" + "---|" * len(names[:6])]
    for label, rs in groups.items():
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(_ci_cell([r["values"].get(m, math.nan) for r in rs])
                                                        for m in names[:6]) + " |")
    lines.append("")
    for m in names:
        lines += [f"## {m}", "", "| group | n | mean [95% CI] |", "|---|---|---|"]
        for label, rs in groups.items():
            vals = [r["values"][m] for r in rs if m in r["values"]]
            lines.append(f"| {label} | {len(vals)} | {_ci_cell(vals)} |")
        lines.append("")
    plots = []
    curve_metrics = ["loss"] + sorted({r["config"].get("train", {}).get("target_metric") for r in runs} - {None, ""})
    for m in dict.fromkeys(curve_metrics):
        for split in ("train", "eval"):
            path = out / f"curve_{split}_{m}.png"
            if figures.curves(groups, m, split, path):
                plots.append(path.name)
    pairs = list(scatter) + [tuple(p) for r in runs for p in r["config"].get("sweep", {}).get("scatter", [])]
    for x, y in dict.fromkeys(pairs):
        swept = not any(x in r["values"] for r in runs) and any(x in r["flat"] for r in runs)
        path = out / f"{'along' if swept else 'scatter'}_{y}_vs_{x}.png"
        if (figures.along if swept else figures.scatter)(groups, x, y, path):
            plots.append(path.name)
    for compute_key, loss_key in scaling:
        from experiments.scaling_report import scaling_section

        more, pngs = scaling_section(runs, out, compute_key, loss_key, baseline, n_boot=n_boot)
        lines += more
        plots += pngs
    sweep_cfgs = [r["config"].get("sweep", {}) for r in runs]
    fronts = list(front) + [tuple(p) for c in sweep_cfgs for p in c.get("front", [])]
    stages = {s for c in sweep_cfgs for s in c.get("front_post", [])} or None
    more, pngs = front_section(groups, out, fronts, stages)
    lines += more
    plots += pngs
    post_lines, post_plots = post_section(groups, out, list(dict.fromkeys(curve_metrics + names)), post)
    lines += post_lines
    plots += post_plots
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
