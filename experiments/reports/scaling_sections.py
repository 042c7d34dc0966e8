"""``compare --scaling COMPUTE:LOSS``: loss against compute per group, fitted power laws, compute multipliers.

Runs are split into *families* by the config fields that differ in text (a model name, an ffn kind, a variant) and,
within a family, into *sizes* by the fields that differ in number (width, depth, steps). Each family's points (one
per run) get ``scaling.parametric_fit`` (size means drawn from their t distributions); the report tables α, E and A
with 95% intervals and, against the ``--baseline`` family, each size's compute multiplier (the baseline compute that reaches its mean
loss, over its mean compute), and draws loss against compute on log axes with each fit and its CI band.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator, ScalarFormatter

from experiments.analysis import scaling
from experiments.analysis.folders import families, points
from experiments.errors import ConfigError
from experiments.reports.cells import interval, number
from experiments.reports.plots import legend_name, style


def scaling_section(runs, out: Path, compute: str, loss: str, baseline: str | None = None,
                    n_boot: int = 2000) -> tuple[list[str], list[str]]:
    """Markdown lines and the plot's file name for ``loss`` against ``compute``; a family with fewer than
    ``scaling.LAW_SIZES`` sizes (or a size with one run) is listed as not fitted, with why, and drawn without a
    fit."""
    fams, size_keys = families(runs)
    fits, unfitted = {}, []
    for fam, sizes in fams.items():
        pts = points(sizes, compute, loss)
        counts = [sum(1 for p in pts if p[0] == s) for s in sizes]
        if len([c for c in counts if c]) < scaling.LAW_SIZES or min(counts) < 2:
            unfitted.append(f"{fam}: {len([c for c in counts if c])} sizes, {min(counts, default=0)} runs at the "
                            f"smallest count (a fit needs >= {scaling.LAW_SIZES} sizes of >= 2 runs)")
            continue
        fits[fam] = (scaling.parametric_fit(pts, n_boot=n_boot, seed=0), sizes)
    if not fits:
        note = "; ".join(unfitted) or f"no runs with numeric {compute} and {loss}"
        lines = [f"## Scaling: {loss} against {compute}", "", f"Cannot fit at this size: {note}.", ""]
        if not any(points(sizes, compute, loss) for sizes in fams.values()):
            return lines, []
        path = out / f"scaling_{loss}_vs_{compute}.png"
        _plot(fams, fits, compute, loss, path)     # the measured points without a fit
        return lines, [path.name]
    base = next(iter(fits))
    if baseline:
        matches = [f for f in fits if baseline == f or baseline in f.split(", ") or baseline in f]
        if not matches:
            raise ConfigError(f"--baseline: {baseline!r} matches no fitted group; groups: {', '.join(fits)}")
        base = matches[0]
    lines = [f"## Scaling: {loss} against {compute}", "",
             f"L(C) = E + A·C^(−α), Huber on log L, L-BFGS from a grid (Hoffmann et al. 2022); 95% intervals from a "
             f"parametric bootstrap ({n_boot} refits on size means drawn from their t distributions). Sizes differ "
             f"in: {', '.join(size_keys) or 'nothing'}. α with E = 0: the pure power law L = A·C^(−α) (Kaplan et "
             "al. 2020's form), the log-log slope.", ""] + [f"Not fitted: {u}." for u in unfitted] + ["",
             "| group | sizes | runs | α | E | log A | α with E = 0 |", "|---|---|---|---|---|---|---|"]
    for fam, (boot, sizes) in fits.items():
        cells = [interval(boot.slope if k == "slope" else getattr(boot.fit, k), *boot.ci(k))
                 for k in ("alpha", "E", "log_A", "slope")]
        lines.append(f"| {fam} | {len(sizes)} | {sum(map(len, sizes.values()))} | " + " | ".join(cells) + " |")
    lines += ["", f"Compute multiplier against `{base}`: the {base} compute reaching each size's mean {loss}, over "
              "that size's mean compute (> 1: the group needs less compute).", "",
              "| group | size | mean compute | mean loss | multiplier [95% CI] |", "|---|---|---|---|---|"]
    measured = scaling.size_means(points(fits[base][1], compute, loss)).loss
    for fam, sizes in fams.items():
        for size, rs in sizes.items():
            pts = points({size: rs}, compute, loss)
            if not pts:
                continue
            c, y = float(np.mean([p[1] for p in pts])), float(np.mean([p[2] for p in pts]))
            m = scaling.compute_multiplier(fits[base][0], c, y)
            cell = m.get("note") or interval(m["multiplier"], *m["ci"])
            if not measured.min() <= y <= measured.max():
                cell = f"extrapolated (outside {base}'s measured {number(measured.min())}–{number(measured.max())}): {cell}"
            lines.append(f"| {fam} | {size} | {number(c)} | {number(y)} | {cell} |")
    path = out / f"scaling_{loss}_vs_{compute}.png"
    _plot(fams, fits, compute, loss, path)
    return lines + [""], [path.name]


def two_and_five(x: float, _pos=None) -> str:
    """A minor tick's label on a log axis only at 2 and 5 times a power of ten (``2e12``)."""
    exponent = math.floor(math.log10(x))
    mantissa = round(x / 10 ** exponent)
    return f"{mantissa}e{exponent}" if mantissa in (2, 5) else ""


def _plot(fams, fits, compute: str, loss: str, path: Path) -> None:
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    for i, (fam, sizes) in enumerate(fams.items()):
        kw = style(i)
        pts = points(sizes, compute, loss)
        if not pts:
            continue
        by_size = {}
        for s, c, y in pts:
            by_size.setdefault(s, []).append((c, y))
        xs = [np.mean([c for c, _ in v]) for v in by_size.values()]
        ys = [np.mean([y for _, y in v]) for v in by_size.values()]
        sd = [np.std([y for _, y in v]) for v in by_size.values()]
        name = legend_name(", ".join(p for p in fam.split(", ") if not p.endswith("=None")))
        ax.errorbar(xs, ys, yerr=sd, fmt="o", capsize=3, color=kw["color"], label=name)
        if fam in fits:
            boot = fits[fam][0]
            grid = np.logspace(math.log10(min(xs)) - 0.3, math.log10(max(xs)) + 0.3, 60)
            curves = np.array([f(grid) for f in boot.fits])
            ax.plot(grid, boot.fit(grid), color=kw["color"], linestyle=kw["linestyle"],
                    label=f"{name}: fit, α={boot.fit.alpha:.3g}")
            ax.fill_between(grid, np.percentile(curves, 2.5, 0), np.percentile(curves, 97.5, 0), alpha=0.15,
                            color=kw["color"])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(FuncFormatter(two_and_five))  # every minor label would run into the next
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain numbers: losses rarely span a decade
    lo, hi = ax.get_ylim()
    if hi / lo < 10:  # under a decade of loss: evenly spaced plain labels (a log axis would show only 2 and 3)
        ax.set_yticks([t for t in MaxNLocator(6).tick_values(lo, hi) if lo <= t <= hi], minor=True)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:.3g}"))
        ax.set_ylim(lo, hi)
    else:
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 1)))
    how = "mean ± sd over seeds; fit with 95% band" if fits else "mean ± sd over seeds; too few sizes to fit"
    ax.set(xlabel=compute, ylabel=loss, title=f"{loss} against {compute} ({how})")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)  # off the data
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
