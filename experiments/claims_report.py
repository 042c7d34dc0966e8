"""The claims report's text: one section per claim (claim, source, experiment, measured table with 95% CIs, the
verdict rule and each condition's estimate, the verdict, its plots), the skipped sections, the hardware and library
versions, and ``publish`` (a finished report and its plots copied where they can be checked in)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import numpy as np

from experiments import claim_fits, stats
from experiments.claims import CLAIMS_DIR, Claim, _values, verdict
from experiments.report import _fmt


def _side(s: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in s.get("where", {}).items())
    return s.get("variant", "all") + (f" [{where}]" if where else "") + (f" + {s['post']}" if "post" in s else "")


def _describe(cond: dict) -> str:
    if "fit" in cond:
        return claim_fits.describe(cond, _side(cond["a"]), _side(cond.get("b", {})))
    stat = "median" if stats.to_target_key(cond["metric"]) else "mean"
    kind = cond.get("compare", "value")
    expr = f"{stat} {cond['metric']} of {_side(cond['a'])}"
    if kind != "value":
        expr += f" {'/' if kind == 'ratio' else '−'} of {_side(cond['b'])}"
    return f"{expr} {cond['op']} {cond['threshold']}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(CLAIMS_DIR.resolve().parents[2]))
    except ValueError:
        return str(path)


def _made(runs: list[dict]) -> str:
    """When the runs finished (their summaries' times, UTC), so reused runs are visible as such."""
    times = sorted((Path(r["dir"]) / "summary.json").stat().st_mtime for r in runs)
    if not times:
        return ""
    first, last = (dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
                   for t in (times[0], times[-1]))
    return f", finished {first}" + ("" if first == last else f" to {last}") + " UTC"


def claim_section(claim: Claim, runs: list[dict], size: str, report_dir: Path, out: Path) -> list[str]:
    result, judged = verdict(claim, runs)
    lines = [f"## Claim {claim.id}: {claim.title}", "", f"**Claim.** {claim.statement}", "",
             f"**Source figure.** {claim.source}", "",
             f"**Experiment.** `{_shown(claim.experiment)}` at size `{size}`; "
             f"{len(runs)} runs{_made(runs)}; reproduce: `python -m experiments claims --size {size} --only "
             f"{claim.path.stem}`.", ""]
    groups: dict[str, list[dict]] = {}
    grid_keys = sorted({k for r in runs for k in r["flat"] if k != "seed"
                        and len({json.dumps(x["flat"].get(k)) for x in runs if x["variant"] == r["variant"]}) > 1})
    for r in runs:
        label = r["variant"] + "".join(f", {k}={r['flat'].get(k)}" for k in grid_keys)
        groups.setdefault(label, []).append(r)
    groups = _with_post_rows(groups, claim)
    lines += ["**Measured** (mean [95% bootstrap CI] over seeds; *_to_target: median, censored runs count as never):",
              "", "| group | n | " + " | ".join(claim.metrics) + " |", "|---|---|" + "---|" * len(claim.metrics)]
    for label, rs in groups.items():
        cells = []
        for m in claim.metrics:
            vals = _values(rs, m)
            est, lo, hi = stats.bootstrap_ci(vals, statistic=np.median if stats.to_target_key(m) else np.mean)
            cells.append(f"{_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}]")
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + " |")
    lines += ["", "**Verdict rule** (fixed before the runs): supported if any case has all its conditions hold on the "
              "whole 95% CI; not supported if every case has a condition whose whole CI violates it.", ""]
    for name, outcome, results in judged:
        lines.append(f"- case *{name}*: **{outcome}**")
        for cond, r in results:
            lines.append(f"  - {_describe(cond)}: estimate {_fmt(r['estimate'])} [{_fmt(r['ci'][0])}, "
                         f"{_fmt(r['ci'][1])}], n = {r['n'][0]}{'/' + str(r['n'][1]) if r['n'][1] else ''} → "
                         f"{r['state']}")
            lines += [f"    - {m['size']}: multiplier {_fmt(m['multiplier'])}" for m in r.get("multipliers", [])]
            lines += [f"    - {m['size']}: ratio {_fmt(m['ratio'])}" for m in r.get("ratios", [])]
            lines += [f"    - {h['half']} half ({h['sizes']} sizes): α {_fmt(h['alpha'])} [{_fmt(h['alpha_ci'][0])}, "
                      f"{_fmt(h['alpha_ci'][1])}]; with E = 0, {_fmt(h['slope'])} [{_fmt(h['slope_ci'][0])}, "
                      f"{_fmt(h['slope_ci'][1])}]" for h in r.get("halves", [])]
            lines += [f"    - note: {r['note']}"] if r.get("note") else []
    lines += ["", f"**Verdict: {result}.**", ""]
    for png in sorted(report_dir.glob("*.png")):
        if _shows(png.name, claim.metrics):
            lines.append(f"![{png.stem}]({png.relative_to(out)})")
    return lines + [""]


def _with_post_rows(groups: dict, claim: Claim) -> dict:
    """Each group followed by a row per post-training stage the claim's conditions name or ``post_rows`` lists
    (a label or a label's prefix): the stage's own metrics on each run it was applied to."""
    named = {side["post"] for case in claim.cases for cond in case.get("conditions", [])
             for side in (cond.get("a", {}), cond.get("b", {})) if "post" in side}

    def wanted(label: str) -> bool:
        return label in named or label.startswith(tuple(claim.post_rows))

    out = {}
    for label, rs in groups.items():
        out[label] = rs
        for r in rs:
            for p in r["summary"].get("post", []):
                if wanted(p["label"]):
                    out.setdefault(f"{label} + {p['label']}", []).append({**r, "values": p["metrics"]})
    return out


def _shows(name: str, metrics) -> bool:
    """The report plots a claim section shows: scatters, metrics along a swept field, fronts, scaling fits, eval
    curves, and post-stage plots
    of the claim's own metrics."""
    if name.startswith("post_"):
        return any(name.startswith(f"post_{m}_vs_") for m in metrics)
    return name.startswith(("scatter", "along", "front", "scaling")) or "eval" in name


def skipped_section(claim: Claim, size: str) -> list[str]:
    """A claim not run at ``size`` (``sizes.<size>.skip`` says why): the claim, its source and the reason."""
    return [f"## Claim {claim.id}: {claim.title}", "", f"**Claim.** {claim.statement}", "",
            f"**Source figure.** {claim.source}", "",
            f"**Not run at size `{size}`:** {claim.sizes[size]['skip']}", "", "**Verdict: not run.**", ""]


def _environment(runs: list[dict]) -> list[str]:
    import importlib.metadata as md

    s = runs[0]["summary"] if runs else {}
    libs = []
    for name in ("jax", "flax", "optax", "orbax-checkpoint", "mctx", "pennylane", "torch", "snntorch", "nir"):
        try:
            libs.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            pass
    return ["## Hardware and libraries", "",
            f"- device: {s.get('device_count', '?')} × {s.get('device_kind', '?')} ({s.get('platform', '?')}), "
            f"CPU cores: {s.get('cpu_count', '?')}, Python {s.get('python', '?')}", f"- {', '.join(libs)}", ""]


def publish(report: str | Path, dest: str | Path) -> Path:
    """Copy ``REPORT.md`` and the plots it shows to ``dest`` (plots under ``dest/claims_figures/``, links rewritten),
    so a finished report can be checked in away from its runs; returns the new report's path. Plots left in
    ``claims_figures/`` by an earlier report that this one no longer shows are removed."""
    report, dest = Path(report), Path(dest)
    figures = dest / "claims_figures"
    text = report.read_text()
    kept = set()

    def move(match):
        src = report.parent / match.group(2)
        target = figures / match.group(2).replace("/report/", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        kept.add(target)
        return f"![{match.group(1)}]({target.relative_to(dest).as_posix()})"

    out = dest / "REPORT.md"
    out.write_text(re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", move, text))
    for stale in set(figures.rglob("*.png")) - kept:
        stale.unlink()
    for folder in sorted(figures.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return out
