"""The claims report's sections: one per claim (claim, source, experiment, measured table with 95% intervals, the
verdict rule and each condition's estimate, the verdict, its plots) and one per claim skipped at a size."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from experiments.analysis import stats
from experiments.claims import fits as claim_fits
from experiments.claims.claim import CLAIMS_DIR, Claim, case_level, values, verdict
from experiments.reports import cells


def _side(s: dict) -> str:
    where = ", ".join(f"{k}={v}" for k, v in s.get("where", {}).items())
    return s.get("variant", "all") + (f" [{where}]" if where else "") + (f" + {s['post']}" if "post" in s else "")


def describe_condition(cond: dict) -> str:
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
    groups = with_post_rows(groups, claim)
    lines += ["**Measured** (mean [95% t interval] over seeds; *_to_target: median [bootstrap range], censored runs "
              "count as never):",
              "", "| group | n | " + " | ".join(claim.metrics) + " |", "|---|---|" + "---|" * len(claim.metrics)]
    for label, rs in groups.items():
        row = [(cells.median_cell if stats.to_target_key(m) else cells.mean_cell)(values(rs, m)) for m in claim.metrics]
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(row) + " |")
    level = case_level(claim)
    lines += ["", "**Verdict rule** (fixed before the runs): supported if any case has all its conditions hold on the "
              f"whole interval; not supported if every case has a condition whose whole interval violates it. "
              f"Intervals at {level:.1%} ({len(claim.cases)} case{'s' if len(claim.cases) > 1 else ''}, "
              "Bonferroni).", ""]
    for name, outcome, results in judged:
        lines.append(f"- case *{name}*: **{outcome}**")
        for cond, r in results:
            n = r.get("n", ("", ""))
            lines.append(f"  - {describe_condition(cond)}: estimate {cells.interval(r['estimate'], *r['ci'])}, "
                         f"n = {n[0]}{'/' + str(n[1]) if n[1] else ''}{', paired' if r.get('paired') else ''} → "
                         f"{r['state']}")
            lines += [f"    - {m['size']}: multiplier {cells.number(m['multiplier'])}" for m in r.get("multipliers", [])]
            lines += [f"    - {m['size']}: ratio {cells.number(m['ratio'])}" for m in r.get("ratios", [])]
            lines += [f"    - {h['half']} half ({h['sizes']} sizes): α {cells.interval(h['alpha'], *h['alpha_ci'])}; "
                      f"with E = 0, {cells.interval(h['slope'], *h['slope_ci'])}" for h in r.get("halves", [])]
            lines += [f"    - note: {r['note']}"] if r.get("note") else []
    lines += ["", f"**Verdict: {result}.**", ""]
    for png in sorted(report_dir.glob("*.png")):
        if _shows(png.name, claim.metrics):
            lines.append(f"![{png.stem}]({png.relative_to(out)})")
    return lines + [""]


def with_post_rows(groups: dict, claim: Claim) -> dict:
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
