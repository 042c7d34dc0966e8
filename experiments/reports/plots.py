"""Figures a reader can read: one panel per task setting, a log axis when values span decades, a distinct colour and
line style per series, and the legend beside the data, never on it.

``curves`` draws a metric against the step (mean ± sd over seeds), ``scatter`` one metric against another (one
point per group) and ``along`` a metric against a swept numeric config field (``data.train_size``, say: one line
per setting of the other fields); all facet by the sweep's task fields (``data.*``, say one panel per landscape) when the groups
differ in them. ``style(i)`` gives series i its colour and line style (10 colours × 4 styles: 20 distinct pairs
before any repeats). Each returns its matplotlib Figure (None when there is nothing to draw) and saves it to
``path`` when given.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from experiments.analysis.folders import read_events

STYLES = ("-", "--", "-.", ":")


def style(i: int) -> dict:
    return {"color": matplotlib.colormaps["tab10"](i % 10), "linestyle": STYLES[i % 4]}


def legend_name(label: str, drop=()) -> str:
    """A group label for a legend: each field by its last name part (``model.timesteps=1`` -> ``timesteps=1``),
    the fields in ``drop`` (the panel's own) left out; values such as ``[8, 16]`` are left whole."""
    parts = [p for p in re.split(r", (?=[\w.]+=)", label) if p.split("=")[0] not in drop]
    return ", ".join(re.sub(r"^[\w.]*\.(?=\w+=)", "", p) for p in parts)[:80] or "all runs"


def facet_keys(groups) -> list[str]:
    """The task fields (``data.*``) the groups differ in: one panel per combination."""
    keys = sorted({k for runs in groups.values() for k in runs[0]["flat"] if k.startswith("data.")})
    return [k for k in keys if len({str(runs[0]["flat"].get(k)) for runs in groups.values()}) > 1]


def _panels(groups):
    keys = facet_keys(groups)
    panels: dict[str, dict] = {}
    for label, runs in groups.items():
        name = ", ".join(f"{k.split('.')[-1]}={runs[0]['flat'].get(k)}" for k in keys) or ""
        panels.setdefault(name, {})[label] = runs
    return keys, panels


def log_scale_wanted(values) -> bool:
    """Log axis when every value is positive and they span more than two decades."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return v.size > 1 and bool(np.all(v > 0)) and v.max() / v.min() > 100


def _first_dwarfs(values, rest) -> bool:
    """The series' first points (an untrained model's loss, say) lie so far out that the rest would be a flat line:
    beyond four times the rest's own span."""
    rest = [v for v in rest if math.isfinite(v)]
    if len(rest) < 2 or max(rest) == min(rest):
        return False
    span = max(rest) - min(rest)
    return max(values) > max(rest) + 4 * span or min(values) < min(rest) - 4 * span


def _series_order(groups, keys) -> dict[str, int]:
    """Each group's style index: one per series name (the label less the panel's fields), so a series keeps its
    colour and line style in every panel and matches its one legend entry."""
    names = list(dict.fromkeys(legend_name(label, keys) for label in groups))
    return {label: names.index(legend_name(label, keys)) for label in groups}


def _figure(n: int):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(5.2 * cols + 2.2, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _finish(fig, axes, path: Path | None, title: str) -> Figure:
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[k] for k in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def curves(groups, metric: str, split: str, path: Path | None = None) -> Figure | None:
    """``metric`` of ``split`` events against the step, mean ± sd over each group's seeds, a panel per task
    setting; a group evaluated once is a point with its spread. False when no run logged the metric, or every
    group was evaluated only at one and the same step (a column of points: the report's table says it better)."""
    keys, panels = _panels(groups)
    data = {}
    for label, runs in groups.items():
        points = {}
        for r in runs:
            for e in read_events(r["dir"] / "metrics.jsonl"):
                if e.get("split") == split and isinstance(e.get(metric), (int, float)):
                    points.setdefault(e["step"], []).append(e[metric])
        if points:
            data[label] = points
    if not data or len({step for points in data.values() for step in points}) == 1:
        return None
    fig, axes = _figure(len(panels))
    order = _series_order(groups, keys)
    for ax, (panel, members) in zip(axes, panels.items()):
        values, rest = [], []
        for label in members:
            if label not in data:
                continue
            steps = sorted(data[label])
            mean = np.array([np.mean(data[label][s]) for s in steps])
            sd = np.array([np.std(data[label][s]) for s in steps])
            values += list(mean)
            rest += list(mean[1:])
            kw = style(order[label])
            if len(steps) == 1:
                ax.errorbar(steps, mean, yerr=sd, fmt="o", capsize=3, color=kw["color"], label=legend_name(label, keys))
            else:
                ax.plot(steps, mean, label=legend_name(label, keys), **kw)
                ax.fill_between(steps, mean - sd, mean + sd, alpha=0.15, color=kw["color"])
        if log_scale_wanted(values):
            ax.set_yscale("log")
        elif _first_dwarfs(values, rest):
            lo, hi = min(rest), max(rest)
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
            panel = (panel + "; " if panel else "") + f"first points off the axis (up to {max(values):.4g})"
        ax.set(xlabel="step", ylabel=f"{split} {metric}", title=panel or None)
    return _finish(fig, axes, path, f"{split} {metric} (mean ± sd over seeds)")


def scatter(groups, x: str, y: str, path: Path | None = None) -> Figure | None:
    """``y`` against ``x``, one point per group (mean ± sd over its seeds), a panel per task setting. False when
    fewer than two groups have both (one point compares nothing)."""
    keys, panels = _panels(groups)
    if sum(any(x in r["values"] and y in r["values"] for r in runs) for runs in groups.values()) < 2:
        return None
    fig, axes = _figure(len(panels))
    order = _series_order(groups, keys)
    for ax, (panel, members) in zip(axes, panels.items()):
        xs_all, ys_all = [], []
        for label, runs in members.items():
            xs = [r["values"][x] for r in runs if x in r["values"] and y in r["values"]]
            ys = [r["values"][y] for r in runs if x in r["values"] and y in r["values"]]
            if xs:
                ax.errorbar(np.mean(xs), np.mean(ys), xerr=np.std(xs), yerr=np.std(ys), capsize=3,
                            fmt="osD^v<>ph*"[order[label] % 10], color=style(order[label])["color"],
                            label=legend_name(label, keys))
                xs_all.append(np.mean(xs))
                ys_all.append(np.mean(ys))
        if log_scale_wanted(xs_all):
            ax.set_xscale("log")
        if log_scale_wanted(ys_all):
            ax.set_yscale("log")
        ax.set(xlabel=x, ylabel=y, title=panel or None)
    return _finish(fig, axes, path, f"{y} against {x} (mean ± sd over seeds)")


def along(groups, field: str, y: str, path: Path | None = None) -> Figure | None:
    """``y`` against the config ``field`` the groups were swept over, mean ± sd over seeds: one line per setting of
    the other fields, a panel per task setting (``field`` aside), a log axis where ``field`` spans a decade or
    more. False unless ``field`` is numeric and takes two
    or more values and some run has ``y``."""
    runs = [r for rs in groups.values() for r in rs if isinstance(r["values"].get(y), (int, float))]
    xs = {r["flat"].get(field) for r in runs}
    if len(xs) < 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
        return None
    keys = [k for k in facet_keys(groups) if k != field]
    lines: dict[tuple, dict] = {}
    for label, rs in groups.items():
        panel = ", ".join(f"{k.split('.')[-1]}={rs[0]['flat'].get(k)}" for k in keys)
        series = legend_name(label, [field, *keys])
        for r in rs:
            if r in runs:
                lines.setdefault((panel, series), {}).setdefault(r["flat"][field], []).append(r["values"][y])
    panels = list(dict.fromkeys(panel for panel, _ in lines))
    fig, axes = _figure(len(panels))
    for i, (panel, series) in enumerate(lines):
        ax = axes[panels.index(panel)]
        at = sorted(lines[panel, series])
        mean = [np.mean(lines[panel, series][x]) for x in at]
        sd = [np.std(lines[panel, series][x]) for x in at]
        ax.errorbar(at, mean, yerr=sd, capsize=3, marker="osD^v<>ph*"[i % 10], label=series, **style(i))
    for ax, panel in zip(axes, panels):
        if min(xs) > 0 and max(xs) / min(xs) >= 10:  # a field swept over a decade or more is swept geometrically
            ax.set_xscale("log")
        ax.set(xlabel=field, ylabel=y, title=panel or None)
    return _finish(fig, axes, path, f"{y} against {field} (mean ± sd over seeds)")
