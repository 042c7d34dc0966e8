"""The claims report's sections: one per claim (claim, source, experiment, measured table with 95% intervals, the
verdict rule and each condition's estimate, the verdict, its plots) and one per claim skipped at a size."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from experiments.analysis import stats
from experiments.claims import fits as claim_fits
from experiments.claims.claim import CLAIMS_DIR, Claim, case_level, competence, values, verdict
from experiments.claims.provenance import design_line, finished_at
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


def _finished(runs: list[dict]) -> list[dt.datetime]:
    """When each run finished (``provenance.finished_at``)."""
    paths = [Path(r["dir"]) / "summary.json" for r in runs]
    return sorted(finished_at(json.loads(p.read_text()), p) for p in paths)


def _overrides(claim, size: str) -> str:
    """The size's changes to its experiment file, so a reader sees what ran (`` (with data.k = 8, ...)``)."""
    changed = claim.sizes.get(size, {}).get("overrides", {})
    return f" (with {', '.join(f'{k} = {v}' for k, v in changed.items())})" if changed else ""


def _made(times: list[dt.datetime]) -> str:
    """When the runs finished, so reused runs are visible as such."""
    if not times:
        return ""
    first, last = (t.strftime("%Y-%m-%d %H:%M") for t in (times[0], times[-1]))
    return f", finished {first}" + ("" if first == last else f" to {last}") + " UTC"


def claim_section(claim: Claim, runs: list[dict], size: str, report_dir: Path, out: Path, tuned=(),
                  wall: str | None = None, judged=None) -> list[str]:
    """The claim's section; ``tuned``: the tuning table's lines (``sweeps.tuning.table``) when its arms were tuned;
    ``wall``: its runs' summed wall time (``provenance.runs_wall``), tuning runs included; ``judged``: its
    ``verdict(claim, runs)`` when already computed."""
    result, judged = judged or verdict(claim, runs)
    times = _finished(runs)
    lines = [f"## Claim {claim.id}: {claim.title}", "", f"**Claim.** {claim.statement}", "",
             f"**Source figure.** {claim.source}", "",
             f"**Experiment.** `{_shown(claim.experiment)}` at size `{size}`{_overrides(claim, size)}; "
             f"{len(runs)} runs{_made(times)}; reproduce: `python -m experiments claims --size {size} --only "
             f"{claim.path.stem}`." + (f" Wall of its runs here, tuning included: {wall} (a run shared with another "
                                        "claim counts in both)." if wall else ""),
             "", design_line([claim.path, claim.experiment], times), ""]
    groups: dict[str, list[dict]] = {}
    grid_keys = sorted({k for r in runs for k in r["flat"] if k != "seed"
                        and len({json.dumps(x["flat"].get(k)) for x in runs if x["variant"] == r["variant"]}) > 1})
    for r in runs:
        label = ", ".join([r["variant"] or "all"] + [f"{k}={r['flat'].get(k)}" for k in grid_keys])
        groups.setdefault(label, []).append(r)
    groups = with_post_rows(groups, claim)
    lines += ["**Measured** (mean [95% t interval] over seeds; *_to_target: median [bootstrap range], censored runs "
              "count as never):",
              "", "| group | n | " + " | ".join(claim.metrics) + " |", "|---|---|" + "---|" * len(claim.metrics)]
    for label, rs in groups.items():
        row = [(cells.median_cell if stats.to_target_key(m) else cells.mean_cell)(values(rs, m)) for m in claim.metrics]
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(row) + " |")
    lines += list(tuned)
    floors = competence(claim, runs)
    if floors:
        lines += ["", "**Competence** (each arm must reach this before its comparison counts; on the mean):", ""]
        lines += [f"- {_side(f['a'])}: mean {f['metric']} {cells.number(f['mean'])} {f['op']} {f['threshold']}"
                  f"{' (' + f['why'] + ')' if f.get('why') else ''} → {'met' if f['met'] else 'NOT met'}"
                  for f in floors]
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
                         f"n = {n[0]}{'/' + str(n[1]) if n[1] else ''}{', paired' if r.get('paired') else ''}"
                         f"{_margin(r, cond)} → {r['state']}")
            lines += [f"    - {m['size']}: multiplier {cells.number(m['multiplier'])}" for m in r.get("multipliers", [])]
            lines += [f"    - {m['size']}: ratio {cells.number(m['ratio'])}" for m in r.get("ratios", [])]
            lines += [f"    - {h['half']} half ({h['sizes']} sizes): {h.get('what', 'α with E = 0')} "
                      f"{cells.interval(h['slope'], *h['slope_ci'])}" for h in r.get("halves", [])]
            lines += [f"    - {p['what']}: {cells.interval(p['estimate'], *p['ci'])}" for p in r.get("parts", [])]
            lines += [f"    - note: {r['note']}"] if r.get("note") else []
    lines += ["", f"**Verdict: {result}.**" + (" An arm did not learn (a competence floor is not met), so its "
                                                "comparison decides nothing." if result == "no verdict" else ""), ""]
    for png in sorted(report_dir.glob("*.png")):
        if _shows(png.name, claim.metrics):
            lines.append(f"![{png.stem}]({png.relative_to(out)})")
    return lines + [""]


def _margin(r: dict, cond: dict) -> str:
    """The interval's half-width beside the estimate's distance to the threshold: which one decided."""
    lo, hi = r["ci"]
    if any(x != x for x in (lo, hi, r["estimate"])):  # NaN: no interval
        return ""
    return (f"; half-width {cells.number((hi - lo) / 2)} against a distance of "
            f"{cells.number(abs(r['estimate'] - cond['threshold']))} to the threshold")


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


METHOD = """## Method

- **Intervals.** Every interval covers what it says at the number of seeds used (checked by simulation in
  `tests/runner/test_stats.py`: 0.93-0.98 at n = 3, 5 and 10, normal and log-normal): Student-t for a mean, Welch
  (Satterthwaite's degrees of freedom) for a difference of two arms, Welch on the log for a ratio of means, and a
  paired t interval on the per-seed differences or log ratios wherever the arms share seeds (the same seed sees the
  same batches; a post-training stage is always paired with its own run). Medians to a target keep a bootstrap, with
  a note when n is too small for one.
- **Fitted quantities** (α, E, compute multipliers, trends) get a parametric bootstrap: each size's mean is drawn
  from its t distribution 2,000 times and the quantity refitted from three starts. A fit needs its parameters + 2
  sizes (5 for L = E + A·C^(−α), 4 for a slope), else the condition says it cannot decide at this size.
- **No extrapolation.** A compute multiplier whose loss lies outside the baseline's measured range is reported as
  extrapolated, never as a verdict.
- **Compute** is counted both ways in the tables: 6 · active parameters · tokens (Kaplan et al. 2020, Clark et al.
  2022) and XLA's cost analysis of the compiled step; the rules use 6·N·D, fixed before the runs.
- **Multiplicity.** "Supported if any case holds" shares 5% over its k cases (Bonferroni): each interval is at
  1 − 0.05/k.
- **Competence.** A claim states the floor each arm must reach (for a language model: below zlib -9's bits/char on
  the same text); an arm that misses it gives "no verdict".
- **Every arm tuned alike.** Each LM arm (the controls included) takes its learning rate from the same grid
  (1.5e-3, 3e-3, 6e-3) by its held-out bits/char after the same budget, on seed 1000, which no verdict uses; a
  scaling experiment tunes each family at each of its sizes, unless it pins tuning at one grid point (its tuning
  table then says "at ..."). Alternatives of one arm (the twin's activations) are tuned alike and only the best on
  that seed runs on the verdict seeds; a distillation student is tuned against the tuned teacher of that seed. Each section lists the value each arm got.
- **Seeds.** At least 5 per LM group at the cpu size (each claim file gives its own), fixed before the runs;
  every arm of a sweep runs the same seeds, so pairs share batches.
- **Rules, seeds and sizes** are in each claim file, committed before its runs: each section names the commit that
  fixed its design (the claim and experiment files, comments aside) and says whether it came before its first run
  finished; a change after results were seen is said so in the file."""


def verdict_table(rows) -> list[str]:
    """The report's summary: one row per ``(claim, verdict, wall)``, in the order of the sections below."""
    lines = ["## Verdicts", "", "| claim | verdict | wall of its runs here |", "|---|---|---|"]
    for claim, result, wall in rows:
        lines.append(f"| {claim.id}: {claim.title} | {result} | {wall or '—'} |")
    return lines + ["", "A run shared by two claims counts in both walls; each section gives the numbers behind its "
                    "verdict.", ""]


def skipped_section(claim: Claim, size: str) -> list[str]:
    """A claim not run at ``size`` (``sizes.<size>.skip`` says why): the claim, its source and the reason."""
    return [f"## Claim {claim.id}: {claim.title}", "", f"**Claim.** {claim.statement}", "",
            f"**Source figure.** {claim.source}", "",
            f"**Not run at size `{size}`:** {claim.sizes[size]['skip']}", "", "**Verdict: not run.**", ""]
