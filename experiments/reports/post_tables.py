"""The post-training stages of finished runs in ``compare``: a table per stage and metrics against a stage parameter.

Each run's ``summary.json["post"]`` lists its stages (name, parameters, metrics). Per stage label the table gives
mean [95% t interval] over the seeds of each group; a plot draws a metric against a numeric stage parameter, one
line per stage name (and per setting of its other parameters), with the trained model's own value dashed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.reports.cells import mean_cell
from experiments.reports.plots import log_scale_wanted, style


def _rows(groups) -> list[dict]:
    rows = []
    for group, runs in groups.items():
        for r in runs:
            for p in r["summary"].get("post", []):
                rows.append({"group": group, "stage": p["stage"], "label": p["label"], "params": p["params"],
                             "metrics": p["metrics"], "run": r})
    return rows


def _numeric_varying(rows, stage: str) -> list[str]:
    params = {k for r in rows if r["stage"] == stage for k in r["params"]}
    return sorted(k for k in params
                  if all(isinstance(r["params"].get(k), (int, float)) and not isinstance(r["params"].get(k), bool)
                         for r in rows if r["stage"] == stage)
                  and len({r["params"].get(k) for r in rows if r["stage"] == stage}) > 1)


def post_section(groups, out: Path, metrics: list[str], pairs=()) -> tuple[list[str], list[str]]:
    """Markdown lines and plot file names for every run's post stages; ``pairs`` adds ``(param, metric)`` plots
    to the default ones (each metric in ``metrics`` against each numeric parameter that varies)."""
    rows = _rows(groups)
    if not rows:
        return [], []
    shown = [m for m in metrics if any(m in r["metrics"] for r in rows)][:6]
    lines = ["## Post-training stages", "", "Each stage applied to the trained model of every seed, evaluated on the "
             "eval split. Cells: mean [95% t interval] over seeds.", "",
             "| group | stage | n | " + " | ".join(shown) + " |", "|---|---|---|" + "---|" * len(shown)]
    table: dict[tuple, list] = {}
    for r in rows:
        table.setdefault((r["group"], r["label"]), []).append(r)
    for (group, label), rs in table.items():
        cells = [mean_cell([x["metrics"].get(m, math.nan) for x in rs]) for m in shown]
        lines.append(f"| {group} | {label} | {len(rs)} | " + " | ".join(cells) + " |")
    plots = []
    wanted = {(p, m) for stage in {r["stage"] for r in rows} for p in _numeric_varying(rows, stage) for m in shown}
    for param, metric in sorted(wanted | set(pairs)):
        path = out / f"post_{metric}_vs_{param}.png"
        if _plot(rows, param, metric, path):
            plots.append(path.name)
    return lines + [""], plots


def _plot(rows, param: str, metric: str, path: Path) -> bool:
    series: dict[str, dict] = {}
    for r in rows:
        x, y = r["params"].get(param), r["metrics"].get(metric)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            rest = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()) if k != param)
            name = f"{r['stage']}({rest})" if rest else r["stage"]
            name = f"{r['group']} · {name}" if len({q['group'] for q in rows}) > 1 else name
            series.setdefault(name, {}).setdefault(x, []).append(y)
    if not series:
        return False
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    values = []
    for i, (name, points) in enumerate(series.items()):
        xs = sorted(points)
        mean = [np.mean(points[x]) for x in xs]
        sd = [np.std(points[x]) for x in xs]
        values += mean
        ax.errorbar(xs, mean, yerr=sd, marker="o", capsize=3, label=name[:70], **style(i))
    base = [r["run"]["values"].get(metric) for r in rows]
    base = [b for b in base if isinstance(b, (int, float))]
    if base:
        ax.axhline(float(np.mean(base)), color="grey", linestyle="--", linewidth=1, label="trained model")
    if log_scale_wanted(values + base):
        ax.set_yscale("log")
    ax.set(xlabel=param, ylabel=metric, title=f"{metric} against {param} (mean ± sd over seeds)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return True
