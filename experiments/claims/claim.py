"""The claims suite: every efficiency claim a config, run at a chosen size, one report with verdicts.

A claim file (``experiments/configs/claims/*.toml``) holds one ``[claim]`` table: the claim as stated, its source
figure, the experiment config it runs (a sweep config; the path is relative to the claim file), the metrics to show,
per-size adjustments, and the verdict rule, fixed before any run::

    [claim]
    id = 1
    title = "..."; statement = "..."; source = "..."; experiment = "../sparse_vs_dense.toml"
    metrics = ["loss", "cost_ratio"]
    scaling = [["train_flops", "loss"]]   # optional: compare's power-law fits, against baseline = "..." (a family)
    post_rows = ["prune("]                # optional: post-stage labels (or prefixes) given their own table rows,
                                          # besides those the conditions name
    scatter = [["energy_pj", "loss"]]     # optional: compare's scatter plots; x may be a swept config field
                                          # ("data.train_size"): the metric along it, a line per other setting
    [claim.sizes.smoke]                   # seeds, a subset of variants, grid values, dotted overrides;
                                          # skip = "needs a GPU: ..." reports the claim as not run at that size;
                                          # variant_grid = { moe = { "model.width" = [64, 96] } }: a variant's own
                                          # grid values (the baseline may span more sizes than the lever)
    seeds = [0, 1]
    variants = ["dense", "sparse"]
    overrides = { "train.steps" = 20 }
    [[claim.cases]]                       # the claim is supported if ANY case holds
    name = "sparse matches dense"
    [[claim.cases.conditions]]            # a case holds if ALL its conditions hold
    a = { variant = "sparse" }            # runs of a variant, optionally narrowed: where = { "data.train_size" = 100 };
                                          # post = "prune(sparsity=0.5)": each run's post-training stage of that label
    b = { variant = "dense" }             # only for compare = "ratio" (a / b) or "difference" (a - b)
    metric = "loss"                       # a summary metric, or steps_to_target / epochs_to_target / *_evals_to_target
    compare = "ratio"                     # "value" | "ratio" | "difference"
    op = "<="
    threshold = 1.10
    [[claim.cases.conditions]]            # or, instead of compare, a fitted quantity (experiments.claims.fits)
    a = { variant = "sparse" }
    b = { variant = "dense" }             # only for fit = "multiplier" (the baseline fit) or "ratio_trend"
    fit = "multiplier"                    # "alpha" | "E" | "multiplier" | "alpha_change" | "ratio_trend"
    compute = "train_flops_6nd"           # the default (6 · active params · tokens); "train_flops": XLA's count
    metric = "loss"
    op = ">="
    threshold = 1.0

Runs live in ``out/<experiment>[-<overrides hash>]/<run>``: claims that run one experiment share its runs.

Each condition is judged on its interval over seeds at the claim's level (95%, Bonferroni-shared over its cases:
1 − 0.05/k with k cases; ``case_level``): a Student-t interval for a mean, Welch's for two arms (on the log for a
ratio), a paired t interval where the arms share seeds (``pair_by_seed``); medians to a target (censored runs) keep a
bootstrap, noted when n is small. A condition *holds* when the whole interval satisfies ``op threshold``, *fails*
when the whole interval violates it, and is undecided otherwise (fewer than two seeds on a side: undecided). A case
is supported when all its conditions hold and refuted when any fails. The claim's verdict: **supported** if some
case is supported, **not supported** if every case is refuted, else **inconclusive**; **no verdict** when an arm
misses a competence floor (``floors = [{ a = { variant = "dense" }, metric = "bits_per_char", op = "<=",
threshold = 2.31, why = "zlib -9 on the same text" }]``, judged on the mean).

A ``fit`` condition tests a quantity fitted over sizes (``experiments.claims.fits``: a parametric bootstrap, a
minimum number of sizes, no verdict from extrapolation).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import zlib
from pathlib import Path

from experiments.analysis import stats
from experiments.claims import fits as claim_fits
from experiments.errors import ConfigError
from experiments.runner.config import apply_overrides, read_file, validate
from experiments.sweeps import tuning
from experiments.sweeps.expand import expand

SIZES = ("smoke", "cpu", "gpu")
CLAIMS_DIR = Path(__file__).parent.parent / "configs" / "claims"


@dataclasses.dataclass
class Claim:
    path: Path
    id: int
    title: str
    statement: str
    source: str
    experiment: Path
    metrics: list
    sizes: dict
    cases: list
    scatter: list
    scaling: list = dataclasses.field(default_factory=list)
    baseline: str | None = None
    post_rows: list = dataclasses.field(default_factory=list)
    floors: list = dataclasses.field(default_factory=list)  # competence: what every arm must reach first


def load_claim(path: str | Path) -> Claim:
    path = Path(path)
    raw = read_file(path).get("claim")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: no [claim] table")
    missing = [k for k in ("id", "title", "statement", "source", "experiment", "cases") if k not in raw]
    if missing:
        raise ConfigError(f"{path}: claim.{missing[0]} is missing")
    for case in raw["cases"]:
        for cond in case.get("conditions", []):
            if "fit" in cond and (wrong := claim_fits.check(cond)):
                raise ConfigError(f"{path}: {wrong}")
            if cond.get("compare", "value") not in ("value", "ratio", "difference"):
                raise ConfigError(f"{path}: compare {cond.get('compare')!r} is not allowed; use value, ratio, difference")
            if cond.get("compare", "value") != "value" and "b" not in cond:
                raise ConfigError(f"{path}: a {cond['compare']} condition needs b = {{ variant = ... }}")
            if "a" not in cond or "metric" not in cond or "threshold" not in cond:
                raise ConfigError(f"{path}: every condition needs a, metric, op and threshold")
            if cond.get("op") not in ("<=", ">="):
                raise ConfigError(f"{path}: op {cond.get('op')!r} is not allowed; use <= or >=")
    floors = raw.get("floors", [])
    for floor in floors if isinstance(floors, list) else [None]:
        if not (isinstance(floor, dict) and {"a", "metric", "op", "threshold"} <= set(floor)
                and floor.get("op") in ("<=", ">=")):
            raise ConfigError(f"{path}: claim.floors takes tables {{ a = {{ variant = ... }}, metric = ..., op = "
                              f"\"<=\" | \">=\", threshold = ..., why = \"...\" }}; got {floor!r}")
    rows = raw.get("post_rows", [])
    if not (isinstance(rows, list) and all(isinstance(r, str) for r in rows)):
        raise ConfigError(f"{path}: claim.post_rows must be a list of post-stage labels or label prefixes, "
                          f"e.g. [\"prune(\"]; got {rows!r}")
    return Claim(path, raw["id"], raw["title"], raw["statement"], raw["source"], (path.parent / raw["experiment"]),
                 raw.get("metrics", []), raw.get("sizes", {}), raw["cases"], raw.get("scatter", []),
                 raw.get("scaling", []), raw.get("baseline"), rows, floors)


def _order(claim: Claim) -> tuple:
    """Claims in CLAIMS.md's order: 1, 1b, 2a, ..., 10 (the number first, then the letter)."""
    number = re.match(r"\d*", str(claim.id)).group()
    return (int(number) if number else math.inf, str(claim.id))


def all_claims(only=None) -> list[Claim]:
    claims = sorted((load_claim(p) for p in CLAIMS_DIR.glob("*.toml")), key=_order)
    if only:
        names = {c.path.stem for c in claims}
        bad = sorted(set(only) - names)
        if bad:
            raise ConfigError(f"--only: unknown claim {bad[0]!r}; claims: {', '.join(sorted(names))}")
        claims = [c for c in claims if c.path.stem in only]
    return claims


def tunes(claim: Claim, size: str) -> bool:
    """Whether the claim's experiment tunes its arms at ``size`` (``[sweep.tuning]``; ``sizes.<size>.tune = false``
    turns it off, as the smoke size does to stay short)."""
    return bool(tuning.settings(read_file(claim.experiment))) and claim.sizes.get(size, {}).get("tune", True)


def plan(claim: Claim, size: str, tuned: dict | None = None, *, tune: bool = False) -> list[tuple[str, str, object]]:
    """``[(variant, run name, Config)]`` of a claim's experiment at ``size`` (validated before anything runs):
    its tuning runs with ``tune``; else its runs, each arm with its ``tuned`` value (``tuning.choose``) where given."""
    if size not in SIZES:
        raise ConfigError(f"--size: {size!r} is not allowed; use one of {', '.join(SIZES)}")
    adjust = claim.sizes.get(size, {})
    if adjust.get("skip"):
        return []
    raw = read_file(claim.experiment)
    sweep = raw.setdefault("sweep", {})
    if "seeds" in adjust:
        sweep["seeds"] = adjust["seeds"]
    for key, values in adjust.get("grid", {}).items():
        sweep.setdefault("grid", {})[key] = values
    variants = sweep.get("variants") or {"": {}}
    chosen = adjust.get("variants", list(variants))
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        raise ConfigError(f"{claim.path}: sizes.{size}.variants names {unknown[0]!r}; the experiment has "
                          f"{', '.join(variants)}")
    runs = []
    for vname in chosen:
        one = copy.deepcopy(raw)
        one["sweep"]["variants"] = {vname: variants[vname]} if vname else {}
        for key, values in adjust.get("variant_grid", {}).get(vname, {}).items():  # this variant's own sizes
            one["sweep"].setdefault("grid", {})[key] = values
        if tune:
            planned = expand(tuning.tuning_raw(one))
        elif tuned is not None and tuning.settings(one):
            planned = tuning.apply(one, tuned)
        else:
            planned = expand(one)
        for name, cfg in planned:  # size overrides go last, so they also reach a variant's own sections
            cfg = apply_overrides(cfg, adjust.get("overrides", {}))
            try:
                runs.append((vname, name, validate(cfg, source=str(claim.experiment))))
            except ConfigError as err:
                raise ConfigError(f"{claim.path.name} at size {size}, run {name}: {err}") from None
    return runs


def runs_folder(claim: Claim, size: str) -> str:
    """The folder (under the claims' ``out``) of a claim's runs: named by its experiment, so claims that run the
    same experiment with the same overrides share their runs (a hash of the overrides tells others apart)."""
    overrides = claim.sizes.get(size, {}).get("overrides", {})
    tag = zlib.crc32(json.dumps(overrides, sort_keys=True).encode()) if overrides else None
    return claim.experiment.stem + (f"-{tag:08x}" if tag is not None else "")


def _select(runs: list[dict], side: dict) -> list[dict]:
    """The runs of a side: its variant, narrowed by ``where``; with ``post = "LABEL"``, each run's post-training
    stage of that label in its place (its metrics as the run's values; runs without the stage left out)."""
    where = side.get("where", {})
    chosen = [r for r in runs if r["variant"] == side.get("variant", r["variant"])
              and all(r["flat"].get(k) == v for k, v in where.items())]
    if "post" not in side:
        return chosen
    staged = []
    for r in chosen:
        for p in r["summary"].get("post", []):
            if p["label"] == side["post"]:
                staged.append({**r, "values": {**r["values"], **p["metrics"]}})
    return staged


def values(runs: list[dict], metric: str) -> list[float]:
    """``metric`` of each run (medians-to-target fields read from its events); runs without it left out."""
    return [v for _, v in _seeded(runs, metric)]


def _seeded(runs: list[dict], metric: str) -> list[tuple[int, float]]:
    if stats.to_target_key(metric):
        return [(_seed(r), stats.epochs_to_target(r["dir"]).get(stats.to_target_key(metric), math.inf)) for r in runs]
    return [(_seed(r), r["values"][metric]) for r in runs if isinstance(r["values"].get(metric), (int, float))]


def _seed(run: dict):
    return run.get("flat", {}).get("seed", run.get("config", {}).get("seed"))


def pair_by_seed(a: list[tuple[int, float]], b: list[tuple[int, float]]):
    """Both sides' values in seed order when they share their seeds one run each (the same batches, or a post stage
    and its own run): a paired comparison; else None."""
    sa, sb = dict(a), dict(b)
    if len(sa) != len(a) or len(sb) != len(b) or set(sa) != set(sb) or len(sa) < 2:
        return None
    seeds = sorted(sa)
    return [sa[s] for s in seeds], [sb[s] for s in seeds]


def judge(cond: dict, runs: list[dict], level: float = stats.LEVEL) -> dict:
    """One condition at confidence ``level``: its estimate, CI, n per side, whether the sides were paired, and
    'holds' / 'fails' / 'undecided' / 'missing' (a fit condition also a ``note`` where relevant). Means get t
    intervals (paired where the sides share seeds); medians to a target a bootstrap, with a note when n is small."""
    if "fit" in cond:
        out = claim_fits.estimate(cond, _select(runs, cond["a"]), _select(runs, cond["b"]) if "b" in cond else [],
                                  level)
        return {"state": out.pop("state", None) or _decide(cond, out["estimate"], *out["ci"]), **out}
    kind = cond.get("compare", "value")
    a = _seeded(_select(runs, cond["a"]), cond["metric"])
    b = _seeded(_select(runs, cond["b"]), cond["metric"]) if kind != "value" else []
    if not a or (kind != "value" and not b):
        return {"state": "missing", "estimate": math.nan, "ci": (math.nan, math.nan), "n": (len(a), len(b))}
    out = {"n": (len(a), len(b)), "paired": False}
    va, vb = [v for _, v in a], [v for _, v in b]
    if stats.to_target_key(cond["metric"]):
        est, lo, hi = {"value": lambda: stats.bootstrap_ci(va, level=level),
                       "ratio": lambda: stats.median_ratio_ci(va, vb, level=level),
                       "difference": lambda: stats.median_difference_ci(va, vb, level=level)}[kind]()
        note = stats.bootstrap_note(min(len(va), len(vb) if vb else len(va)))
        if note:
            out["note"] = note
    elif kind == "value":
        est, lo, hi = stats.mean_ci(va, level)
    else:
        pairs = pair_by_seed(a, b)
        out["paired"] = pairs is not None
        fn = stats.ratio_ci if kind == "ratio" else stats.difference_ci
        est, lo, hi = fn(*(pairs or (va, vb)), paired=pairs is not None, level=level)
    few = len(a) < 2 or (kind != "value" and len(b) < 2)  # no CI
    state = "undecided" if few else _decide(cond, est, lo, hi)
    return {"state": state, "estimate": est, "ci": (lo, hi), **out}


def _decide(cond: dict, est: float, lo: float, hi: float) -> str:
    """'holds' when the whole CI satisfies ``op threshold``, 'fails' when it all violates it, else 'undecided'."""
    t, le = cond["threshold"], cond["op"] == "<="
    if any(math.isnan(x) for x in (est, lo, hi)):
        return "undecided"
    if (hi <= t) if le else (lo >= t):
        return "holds"
    if (lo > t) if le else (hi < t):
        return "fails"
    return "undecided"


def case_level(claim: Claim) -> float:
    """The confidence level of each case's intervals: "supported if any case holds" shares the 5% error over the
    cases (Bonferroni), so with k cases each interval is at 1 − 0.05 / k."""
    return 1 - (1 - stats.LEVEL) / max(len(claim.cases), 1)


def competence(claim: Claim, runs: list[dict]) -> list[dict]:
    """Each floor of the claim (an arm's mean metric against the level it must reach before its comparison means
    anything: below zlib's bits/char, a baseline that learned) with its mean and whether it is met."""
    out = []
    for floor in getattr(claim, "floors", []):
        mean = stats.mean_ci(values(_select(runs, floor["a"]), floor["metric"]))[0]
        met = (mean <= floor["threshold"]) if floor["op"] == "<=" else (mean >= floor["threshold"])
        out.append({**floor, "mean": mean, "met": bool(met) and not math.isnan(mean)})
    return out


def verdict(claim: Claim, runs: list[dict]) -> tuple[str, list]:
    """``("supported" | "not supported" | "inconclusive" | "no verdict", judged cases)``: no verdict when an arm
    misses its competence floor (an arm that did not learn compares nothing)."""
    judged, outcomes, level = [], [], case_level(claim)
    for case in claim.cases:
        results = [(cond, judge(cond, runs, level)) for cond in case.get("conditions", [])]
        states = [r["state"] for _, r in results]
        outcome = ("supported" if states and all(s == "holds" for s in states)
                   else "refuted" if "fails" in states else "undecided")
        judged.append((case.get("name", ""), outcome, results))
        outcomes.append(outcome)
    if not all(f["met"] for f in competence(claim, runs)):
        return "no verdict", judged
    if "supported" in outcomes:
        return "supported", judged
    if outcomes and all(o == "refuted" for o in outcomes):
        return "not supported", judged
    return "inconclusive", judged
