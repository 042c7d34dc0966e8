"""Efficiency fronts in ``compare``: one metric against another for every group and chosen post-training stage, with
the Pareto front marked (lower is better on both axes: bits/char against energy per token, say).

A point is a group's trained models (mean over seeds) or one post-training stage applied to each of them
(``summary.json["post"]``; ``stages`` picks which by label, None: all). A point is on the front when no other point
is at least as low on both metrics and lower on one (``pareto``). Configs ask for fronts with ``[sweep] front =
[[X, Y], ...]`` and ``front_post = [stage labels]``; the CLI with ``compare --front X:Y``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.analysis.folders import variant_name
from experiments.reports.cells import mean_cell
from experiments.reports.plots import legend_name, log_scale_wanted, style


def pareto(xs, ys) -> list[bool]:
    """For points ``(xs[i], ys[i])``, whether each is on the lower-left Pareto front (non-finite: never)."""
    pts = [(float(a), float(b)) for a, b in zip(xs, ys)]
    ok = [math.isfinite(a) and math.isfinite(b) for a, b in pts]
    return [ok[i] and not any(ok[j] and pts[j][0] <= pts[i][0] and pts[j][1] <= pts[i][1] and pts[j] != pts[i]
                              for j in range(len(pts)))
            for i in range(len(pts))]


def _name(label: str, runs) -> str:
    """A group's sweep variant when it has one, else its label."""
    return variant_name(runs) or legend_name(label)


def front_points(groups, x: str, y: str, stages=None) -> list[dict]:
    """``[{"name", "xs", "ys"}]``: each group's trained runs, then each (chosen) post stage of them, per seed."""
    points = []
    for group, runs in groups.items():
        label = _name(group, runs)
        pairs = [(r["values"][x], r["values"][y]) for r in runs if x in r["values"] and y in r["values"]]
        if pairs:
            points.append({"name": label, "xs": [p[0] for p in pairs], "ys": [p[1] for p in pairs]})
        by_stage: dict[str, list] = {}
        for r in runs:
            for p in r["summary"].get("post", []):
                m = p["metrics"]
                if (stages is None or p["label"] in stages) and x in m and y in m:
                    by_stage.setdefault(p["label"], []).append((m[x], m[y]))
        for stage, pairs in by_stage.items():
            points.append({"name": f"{label} + {stage}", "xs": [p[0] for p in pairs], "ys": [p[1] for p in pairs]})
    return points


def _plot(points, on, x: str, y: str, path: Path) -> None:
    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for i, p in enumerate(points):
        kw = style(i)
        ax.errorbar(np.mean(p["xs"]), np.mean(p["ys"]), xerr=np.std(p["xs"]), yerr=np.std(p["ys"]), capsize=3,
                    fmt="osD^v<>ph*"[i % 10], color=kw["color"], markersize=8 if on[i] else 6,
                    markeredgecolor="black" if on[i] else kw["color"],
                    label=("★ " if on[i] else "") + p["name"][:70])
    best = sorted((np.mean(p["xs"]), np.mean(p["ys"])) for p, o in zip(points, on) if o)
    if best:
        ax.step([b[0] for b in best], [b[1] for b in best], where="post", color="black", linestyle="--",
                linewidth=1, label="Pareto front")
    if log_scale_wanted([np.mean(p["xs"]) for p in points]):
        ax.set_xscale("log")
    ax.set(xlabel=f"{x} (lower is better)", ylabel=f"{y} (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    ax.set_title(f"{y} against {x}: mean ± sd over seeds; ★ on the Pareto front")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def front_section(groups, out: Path, pairs, stages=None) -> tuple[list[str], list[str]]:
    """Markdown lines (a table per pair) and plot file names for each ``(x, y)`` front in ``pairs``."""
    lines, plots = [], []
    for x, y in dict.fromkeys(tuple(p) for p in pairs):
        points = front_points(groups, x, y, stages)
        if not points:
            continue
        on = pareto([np.mean(p["xs"]) for p in points], [np.mean(p["ys"]) for p in points])
        lines += [f"## Front: {y} against {x}", "", "Lower is better on both; a point is on the Pareto front when no "
                  "other is at least as low on both and lower on one. Cells: mean [95% t interval] over seeds.", "",
                  f"| model | n | {x} | {y} | on the front |", "|---|---|---|---|---|"]
        for p, o in zip(points, on):
            lines.append(f"| {p['name']} | {len(p['xs'])} | {mean_cell(p['xs'])} | {mean_cell(p['ys'])} | "
                         f"{'yes' if o else ''} |")
        lines.append("")
        path = out / f"front_{y}_vs_{x}.png"
        _plot(points, on, x, y, path)
        plots.append(path.name)
    return lines, plots
