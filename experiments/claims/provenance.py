"""When a claim's design was fixed: the commit since which its claim file and experiment file read as they do now
(comments and layout aside), set beside the time its runs finished, so "fixed before the runs" can be checked.

A design counts as changed only where its parsed content changed: a comment added after the runs (a measured
figure, say) does not move it. ``None`` where there is no git history to read (an installed copy, an uncommitted
design: then the report says so instead).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tomllib
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _parse(text: str, suffix: str):
    try:
        return json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError):
        return None


def _fixed_since(path: Path, root: Path) -> tuple[str, dt.datetime] | None:
    """``(commit, commit time)``: the oldest commit of an unbroken run, back from HEAD, in which ``path`` parses as
    it does now; None if the working copy differs from every committed one or git has no history of it."""
    rel = path.resolve().relative_to(root)
    now = _parse(path.read_text(), path.suffix)
    log = _git(root, "log", "--format=%H %cI", "--", str(rel))
    found = None
    for line in (log or "").splitlines():
        commit, when = line.split()
        text = _git(root, "show", f"{commit}:{rel}")
        if text is None or _parse(text, path.suffix) != now:
            break
        found = (commit[:10], dt.datetime.fromisoformat(when).astimezone(dt.timezone.utc))
    return found


def design_commit(paths: list[Path]) -> tuple[str, dt.datetime] | None:
    """The commit that fixed the design of ``paths`` as it is now: the latest of their ``_fixed_since``."""
    paths = [Path(p) for p in paths]
    top = _git(paths[0].resolve().parent, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    root = Path(top.strip()).resolve()
    fixed = []
    for p in paths:
        try:
            one = _fixed_since(p, root)
        except ValueError:  # a file outside the repository
            return None
        if one is None:
            return None
        fixed.append(one)
    order = (_git(root, "log", "--format=%H", "--", *(str(p.resolve().relative_to(root)) for p in paths)) or "")
    newest_first = [c[:10] for c in order.split()]  # commit order, not time: commits can share a second
    return min(fixed, key=lambda f: newest_first.index(f[0]) if f[0] in newest_first else len(newest_first))


def finished_at(summary: dict, path: Path) -> dt.datetime:
    """When a run finished: its summary's ``finished_utc``, else the summary file's modification time."""
    if "finished_utc" in summary:
        return dt.datetime.fromisoformat(summary["finished_utc"].replace("Z", "+00:00"))
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)


def design_line(paths: list[Path], finished: list[dt.datetime]) -> str:
    """A sentence: which commit fixed the design and whether that was before the first run finished."""
    fixed = design_commit(paths)
    if fixed is None:
        return "**Design** not found in git history as it reads now (uncommitted, or no repository here)."
    commit, when = fixed
    stamp = when.strftime("%Y-%m-%d %H:%M UTC")
    if not finished:
        return f"**Design** fixed in commit `{commit}` ({stamp})."
    first = min(finished)
    order = "before" if when <= first else "**after**"
    return (f"**Design** (claim and experiment files, comments aside) fixed in commit `{commit}` ({stamp}), {order} "
            f"the first of these runs finished ({first.strftime('%Y-%m-%d %H:%M UTC')}).")


def runs_wall(dirs: list[Path]) -> str:
    """The summed ``wall_s`` of the finished runs in ``dirs`` (a run's whole call: build, compile, training,
    evaluation, post stages), as a phrase; runs whose summary has no ``wall_s`` are counted, not guessed."""
    total, missing = 0.0, 0
    for d in dirs:
        path = Path(d) / "summary.json"
        wall = json.loads(path.read_text()).get("wall_s") if path.exists() else None
        if wall is None:
            missing += 1
        else:
            total += float(wall)
    hours, minutes = divmod(round(total / 60), 60)
    text = f"{hours} h {minutes:02d} min" if hours else f"{total / 60:.1f} min"
    return text + (f" ({missing} of {len(dirs)} runs have no recorded wall)" if missing else "")
