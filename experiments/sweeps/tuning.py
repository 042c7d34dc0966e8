"""Every arm tuned alike: a sweep's ``[sweep.tuning]`` grid, run on a seed no verdict uses, picks each arm's value.

    [sweep.tuning]
    field = "optimizer.learning_rate"     # the dotted config field tuned
    values = [1.5e-3, 3e-3, 6e-3]         # the same grid for every arm (variant × grid point)
    seed = 1000                           # a tuning seed, not among sweep.seeds
    metric = "bits_per_char"              # a summary metric of the finished tuning runs
    mode = "min"                          # "min" | "max"
    at = { "model.width" = 96 }           # optional: tune each variant at this grid point only, for all of them
    pick = { twin = ["twin", "twin_relu"] }  # optional: of each group of variants, only the best goes on

Before the sweep's own runs, every arm (each variant at each grid point) is trained once per value on the tuning
seed, with the same budget as the sweep's runs; the value with the best final ``metric`` (ties: the first in the
list; a missing or non-finite result counts as worst) is then set in that arm's runs on every verdict seed. With
``at``, an arm is a variant: it is tuned at that grid point only and its value serves all its grid points (the
same rule for every variant, at a fraction of the runs). With ``pick``, the variants of a group are alternatives
(one model with other activations, say): each is tuned like any arm, and only the group's best arm at each grid
point (its best score on the tuning seed) runs on the verdict seeds. A run that reads an earlier run of its sweep
(``{sweep}/teacher__seed={seed}``: a distillation student) is tuned in a second stage, after the runs it may read:
``link`` gives each first-stage arm's chosen run its verdict-style name on the tuning seed, so a student is tuned
against the tuned teacher of the tuning seed, as its verdict runs are against the teacher of theirs. The
tuning runs live in ``WORKDIR/tuning/`` (a sweep rerun reuses them), so claims that share an experiment share its
tuned values, and the report lists the value each arm got.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from experiments.errors import ConfigError
from experiments.runner.config import set_dotted, split_key
from experiments.sweeps.expand import expand, slug

FOLDER = "tuning"


def settings(raw: dict) -> dict | None:
    """The sweep's tuning table, or None when it tunes nothing (validated with the config: ``runner.config``)."""
    return (raw.get("sweep") or {}).get("tuning") or None


def tuning_raw(raw: dict) -> dict:
    """The tuning sweep of ``raw``: its variants and grid, the tuned field as one more grid axis, the tuning seed."""
    t = settings(raw)
    out = copy.deepcopy(raw)
    sweep = out["sweep"]
    sweep.pop("tuning")
    sweep["seeds"] = [t["seed"]]
    grid = {**(sweep.get("grid") or {}), **{k: [v] for k, v in (t.get("at") or {}).items()}}
    sweep["grid"] = {**grid, t["field"]: list(t["values"])}
    return out


def arm(name: str, field: str, at=()) -> str:
    """The arm a run name belongs to: its variant and grid point, without the tuned field, the seed and the grid
    keys tuning was pinned ``at``."""
    drop = (f"{slug(field)}=", "seed=", *(f"{slug(k)}=" for k in at))
    return "__".join(p for p in name.split("__") if not p.startswith(drop))


def choose(raw: dict, folder: str | Path, runs=None) -> dict[str, dict]:
    """``{arm: {"value", "scores"}}`` from the finished tuning runs under ``folder``: those of ``runs`` (``[(name,
    raw config)]``, a subset such as a claim's arms) or all of the sweep's."""
    t, folder = settings(raw), Path(folder)
    scores: dict[str, dict] = {}
    for name, cfg in runs if runs is not None else expand(tuning_raw(raw)):
        summary = folder / name / "summary.json"
        if not summary.exists():
            raise ConfigError(f"tuning run {name!r} has not finished in {str(folder)!r}; run the sweep to finish it")
        value = json.loads(summary.read_text()).get("final", {}).get(t["metric"])
        tuned = _get(cfg, t["field"])
        scores.setdefault(arm(name, t["field"], t.get("at") or {}), {})[tuned] = value
    sign = 1.0 if t["mode"] == "min" else -1.0
    return {a: {"value": min(s.items(), key=lambda item: _badness(item[1], sign))[0], "scores": s}
            for a, s in scores.items()}


def apply(raw: dict, chosen: dict[str, dict]) -> list[tuple[str, dict]]:
    """The sweep's own runs (``expand``) with each arm's chosen value set; the arms a ``pick`` left out have none."""
    field, at = settings(raw)["field"], settings(raw).get("at") or {}
    out, runs = left_out(raw, chosen), []
    for name, cfg in expand(raw):
        a = arm(name, field, at)
        if a not in out:
            set_dotted(cfg, field, chosen[a]["value"])
            runs.append((name, cfg))
    return runs


def stages(runs: list) -> tuple[list, list]:
    """``runs`` (``[(..., name, config)]`` or ``[(name, config)]``, the config last) split into those that read no
    earlier run of the sweep and those that do (``{sweep}`` in a value): the second are tuned after ``link``."""
    reads = [r for r in runs if "{sweep}" in json.dumps(getattr(r[-1], "raw", r[-1]))]
    return [r for r in runs if r not in reads], reads


def link(raw: dict, folder: str | Path, chosen: dict[str, dict]) -> None:
    """In the tuning ``folder``, each of ``chosen``'s arms' chosen run under the name its verdict runs would have
    on the tuning seed (``teacher__seed=1000``), a symbolic link, so second-stage runs read it by that name."""
    t, folder = settings(raw), Path(folder)
    for name, cfg in expand(tuning_raw(raw)):
        a = arm(name, t["field"], t.get("at") or {})
        if a in chosen and _get(cfg, t["field"]) == chosen[a]["value"]:
            alias = folder / "__".join(p for p in name.split("__") if not p.startswith(f"{slug(t['field'])}="))
            if alias.is_symlink() or not alias.exists():
                alias.unlink(missing_ok=True)
                alias.symlink_to(name, target_is_directory=True)


def left_out(raw: dict, chosen: dict[str, dict]) -> dict[str, str]:
    """``{arm: the arm picked over it}``: in each ``pick`` group, at each grid point, every arm but the one with the
    best score on the tuning seed (ties: the first variant listed). Arms absent from ``chosen`` do not compete."""
    t, out = settings(raw), {}
    sign = 1.0 if t["mode"] == "min" else -1.0
    for group in (t.get("pick") or {}).values():
        by_point: dict[str, list[str]] = {}
        for a in chosen:
            variant, _, point = a.partition("__")
            if variant in group:
                by_point.setdefault(point, []).append(a)
        for arms in by_point.values():
            arms.sort(key=lambda a: group.index(a.partition("__")[0]))
            best = min(arms, key=lambda a: _badness(chosen[a]["scores"][chosen[a]["value"]], sign))
            out.update({a: best for a in arms if a != best})
    return out


def _badness(value, sign: float) -> float:
    """A score as ``min`` compares it (``sign`` -1 for ``mode = "max"``): a missing or non-finite one is worst."""
    return sign * value if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def table(raw: dict, chosen: dict[str, dict]) -> list[str]:
    """Markdown lines: the value each arm got, and every value's score (a blank line first, so the table before it
    ends)."""
    t = settings(raw)
    at = ", ".join(f"{k}={v}" for k, v in (t.get("at") or {}).items())
    lines = ["",
             f"**Tuned** `{t['field']}` per arm on seed {t['seed']} (no verdict uses it){' at ' + at if at else ''}, "
             f"the same grid and budget for every arm, by {t['mode']} {t['metric']}:", "",
             "| arm | chosen | " + " | ".join(map(str, t["values"])) + " |", "|---|---|" + "---|" * len(t["values"])]
    for a, c in chosen.items():
        cells = [f"{c['scores'].get(v):.4g}" if isinstance(c["scores"].get(v), float) else "n/a" for v in t["values"]]
        edge = " (grid edge)" if c["value"] in (t["values"][0], t["values"][-1]) else ""
        lines.append(f"| {a or 'all'} | {c['value']}{edge} | " + " | ".join(cells) + " |")
    if any(c["value"] in (t["values"][0], t["values"][-1]) for c in chosen.values()):
        lines += ["", "A value at the grid's edge may not be the arm's best: its optimum can lie beyond the grid."]
    out = left_out(raw, chosen)
    if out:
        lines += ["", "**Picked** on the tuning seed, of each group of alternatives (`pick`), the one arm that ran on "
                  "the verdict seeds: " + "; ".join(f"{b} over {', '.join(a for a in out if out[a] == b)}"
                                                    for b in dict.fromkeys(out.values())) + "."]
    return lines + [""]


def _get(raw: dict, key: str):
    node = raw
    for part in split_key(key):  # as set_dotted reads a dotted key: quoted parts may hold dots
        node = node[part]
    return node
