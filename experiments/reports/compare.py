"""``compare``: finished runs → ``report.md`` (mean ± 95% CI over seeds, grouped by the fields that differ) + plots.

Runs are grouped by every config field whose value differs between the runs, except ``seed``; each metric gets a
table (group, mean [95% t interval], n seeds). When the runs share a target (``train.target_metric``), a
time-to-target table gives, per group, the median steps, epochs and evaluations to reach it (censored runs counted
as never), the number censored, and the median ratio against the first group with its bootstrap CI.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from experiments.analysis import stats
from experiments.analysis.folders import SUMMARY_FIELDS, group_runs, load_runs, variant_name
from experiments.errors import ConfigError
from experiments.reports import cells
from experiments.reports import plots as figures
from experiments.reports.fronts import front_section
from experiments.reports.post_tables import post_section
from experiments.reports.scaling_sections import scaling_section


def matching_baseline(label: str, groups: dict[str, list[dict]], bases: list[str]) -> str:
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
        row = [cells.median_cell([r[k] for r in rows]) if all(k in r for r in rows) else "n/a"
               for k in ("step", "epoch", *counters)]
        base = [r["step"] for r in per_group[matching_baseline(label, groups, bases)]]
        ratio = stats.median_ratio_ci([r["step"] for r in rows], base)
        lines.append(f"| {label} | {len(rows)} | {sum(r['censored'] for r in rows)} | " + " | ".join(row)
                     + f" | {cells.interval(*ratio)} |")
    return lines + [""]


def summary_table(dirs, metrics, baseline: str = "", settings=()) -> str:
    """A plain-text table for the terminal: per group (its sweep variant where it has one), each metric's mean
    [95% interval] over seeds and, in brackets, its ratio to the ``baseline`` group's (its name, or a value in its
    label; default the first), paired over shared seeds; one seed gives the numbers without intervals. ``settings``:
    as in ``compare``."""
    _, groups = group_runs(load_runs(dirs, settings))
    groups = {variant_name(runs) or label: runs for label, runs in groups.items()}
    base = next((g for g in groups if baseline and (baseline == g or baseline in g.split("=", 1)[-1].split(", "))),
                next(iter(groups)))
    rows = [["", "seeds"] + [f"{m} (× {base})" for m in metrics]]
    for label, runs in groups.items():
        row = [label, str(len(runs))]
        for m in metrics:
            values = [r["values"].get(m, math.nan) for r in runs]
            mean = stats.mean_ci(values)
            a = {r["flat"].get("seed"): r["values"].get(m, math.nan) for r in runs}
            b = {r["flat"].get("seed"): r["values"].get(m, math.nan) for r in groups[base]}
            paired = set(a) == set(b) and len(a) == len(runs) and len(b) == len(groups[base])
            seeds = sorted(a) if paired else []
            ratio = (stats.ratio_ci([a[s] for s in seeds], [b[s] for s in seeds], paired=True) if paired
                     else stats.ratio_ci(list(a.values()), list(b.values())))
            row.append(f"{cells.compact(*mean)} ({cells.compact(*ratio)}×)")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def compare(dirs, out: str | Path, *, scatter=(), baseline: str | None = None, post=(),
            scaling=(), front=(), n_boot: int = 2000, settings=()) -> Path:
    """Write ``out/report.md`` and PNG plots for the finished runs under ``dirs``; returns the report's path.
    Runs with post-training stages get a stage table and plots of metrics against stage parameters (``post``:
    extra ``(param, metric)`` pairs). ``scaling``: ``(compute, loss)`` pairs fitted as power laws per group
    (``train_flops`` = FLOPs per step × steps; ``train_flops_6nd`` = 6 · active params · tokens where recorded).
    ``front``: ``(x, y)`` pairs drawn for every group and post stage with the Pareto front (``experiments.reports.fronts``;
    configs add theirs and the stages to show with ``sweep.front`` / ``sweep.front_post``). ``settings``: fields
    that are each arm's own (a tuned learning rate) and do not group runs (``analysis.folders.load_runs``)."""
    runs = load_runs(dirs, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    differing, groups = group_runs(runs)
    names = sorted({k for r in runs for k in r["values"]}, key=lambda k: (k in SUMMARY_FIELDS, k))
    lines = ["# Comparison", "", f"{len(runs)} runs in {len(groups)} groups; grouped by: "
             f"{', '.join(differing) or 'nothing (all runs share one config but the seed)'}.",
             "Cells: mean [95% t interval] over seeds.", ""]
    lines += target_table(groups, baseline)
    lines += ["## Summary", "", "| group | n | " + " | ".join(names[:6]) + " |", "|---|---|" + "---|" * len(names[:6])]
    for label, rs in groups.items():
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells.mean_cell([r["values"].get(m, math.nan) for r in rs])
                                                        for m in names[:6]) + " |")
    lines.append("")
    for m in names:
        lines += [f"## {m}", "", "| group | n | mean [95% CI] |", "|---|---|---|"]
        for label, rs in groups.items():
            vals = [r["values"][m] for r in rs if m in r["values"]]
            lines.append(f"| {label} | {len(vals)} | {cells.mean_cell(vals)} |")
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
