"""The claims suite: every claim's experiment run at a size (finished runs reused), the report written with a
section per claim and the hardware and library versions, and ``publish`` (the report and its plots copied where
they can be checked in)."""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
from pathlib import Path

from experiments.analysis import fit_cache
from experiments.analysis.folders import load_runs
from experiments.claims.claim import all_claims, plan, runs_folder, tunes, verdict
from experiments.claims.provenance import runs_wall
from experiments.claims.sections import METHOD, claim_section, skipped_section, verdict_table
from experiments.reports.compare import compare
from experiments.runner.config import read_file
from experiments.runner.train import run
from experiments.sweeps import tuning
from experiments.sweeps.sweep import in_folder, reusable


def load_claim_runs(claim_runs, settings=()) -> list[dict]:
    """The finished runs (``analysis.folders.load_runs``; ``settings``: the tuned field, each arm's own value rather
    than a size or group), each tagged with the variant it belongs to."""
    variant_of = {Path(d): v for v, d in claim_runs}
    runs = load_runs(list(variant_of), settings)
    for r in runs:
        r["variant"] = variant_of[Path(r["dir"])]
    return runs


def run_claims(size: str = "smoke", out: str | Path = "runs/claims", only=None, *, quiet: bool = True,
               log=print) -> Path:
    """Run every claim's experiment at ``size`` under ``out`` (finished runs are reused) and write ``REPORT.md``."""
    out = Path(out)
    fit_cache.use_folder(out / "fit_cache")  # a regenerated report reuses the bootstrap fits of unchanged runs
    claims = all_claims(only)
    plans = {c.path.stem: plan(c, size) for c in claims}  # validate everything before running anything
    tunings = {c.path.stem: plan(c, size, tune=True) for c in claims if tunes(c, size)}
    lines = [f"# Claims report (size `{size}`)", "",
             "Each section: the claim and its source figure, what was measured at this toolkit's scale, the verdict "
             "rule fixed before the runs, and the verdict that follows from it.", ""]
    sections, rows, all_runs = [], [], []
    for claim in claims:
        if claim.sizes.get(size, {}).get("skip"):
            sections += skipped_section(claim, size)
            rows.append((claim, "not run", None))
            continue
        folder, tuned, tuning_dirs, settings = out / runs_folder(claim, size), [], [], []
        if claim.path.stem in tunings:  # every arm tuned alike on the tuning seed first, then its verdict runs
            raw, tune = read_file(claim.experiment), tunings[claim.path.stem]
            first, second = tuning.stages(tune)  # runs that read an earlier run (a student its teacher) go second
            _run_all(f"{claim.path.stem} tuning", first, folder / tuning.FOLDER, quiet, log)
            if second:
                tuning.link(raw, folder / tuning.FOLDER,
                            tuning.choose(raw, folder / tuning.FOLDER, [(name, c.raw) for _, name, c in first]))
                _run_all(f"{claim.path.stem} tuning", second, folder / tuning.FOLDER, quiet, log)
            chosen = tuning.choose(raw, folder / tuning.FOLDER, [(name, c.raw) for _, name, c in tune])
            plans[claim.path.stem], tuned = plan(claim, size, chosen), tuning.table(raw, chosen)
            tuning_dirs = [folder / tuning.FOLDER / name for _, name, _ in tune]
            settings = [tuning.settings(raw)["field"]]
        claim_runs = _run_all(claim.path.stem, plans[claim.path.stem], folder, quiet, log)
        report_dir = out / claim.path.stem / "report"
        shutil.rmtree(report_dir, ignore_errors=True)  # the suite's own derived plots: none left from a last report
        compare([d for _, d in claim_runs], report_dir, scatter=[tuple(p) for p in claim.scatter],
                scaling=[tuple(p) for p in claim.scaling], baseline=claim.baseline, settings=settings)
        runs = load_claim_runs(claim_runs, settings)
        all_runs += runs
        wall, judged = runs_wall(tuning_dirs + [d for _, d in claim_runs]), verdict(claim, runs)
        sections += claim_section(claim, runs, size, report_dir, out, tuned, wall, judged)
        rows.append((claim, judged[0], wall))
    lines += verdict_table(rows) + [METHOD, ""] + sections + environment(all_runs)
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


def _run_all(label: str, planned, folder: Path, quiet: bool, log) -> list[tuple[str, Path]]:
    """Run each planned ``(variant, name, config)`` in ``folder / name`` unless finished; ``[(variant, rundir)]``."""
    planned = [(variant, name, in_folder(config, folder)) for variant, name, config in planned]
    done = reusable([(name, folder / name, config) for _, name, config in planned], log)
    for i, (variant, name, config) in enumerate(planned, 1):
        rundir = folder / name
        if name not in done:
            log(f"[{label} {i}/{len(planned)}] {name}")
            if rundir.exists() and not (rundir / "checkpoints").exists():
                shutil.rmtree(rundir)
            run(config, rundir, quiet=quiet)
    return [(variant, folder / name) for variant, name, _ in planned]


def environment(runs: list[dict]) -> list[str]:
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
