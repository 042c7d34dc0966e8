"""Sweeps: a config's ``[sweep]`` expanded into runs (variants × grid × seeds), each in its own subfolder.

``[sweep.variants.NAME]`` holds overrides: dotted keys set one field; a nested table for a top-level section
(``[sweep.variants.dense.model]``) replaces that whole section, so a variant can switch to a model with other fields.
A run whose folder holds ``summary.json`` is complete and skipped, so an interrupted sweep can simply be restarted.
``{sweep}`` and ``{seed}`` in a string value name the sweep's folder and the run's seed, so a run can read an
earlier one (a distillation student its teacher: ``in_folder``).
Where the runs execute (this process, a pool of local processes, Ray, SLURM) is a launcher's business
(``experiments.sweeps.launchers``); every launcher runs the same training function, so the run folders are the same.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from experiments.errors import ConfigError
from experiments.runner.config import Config, apply_overrides, read_file, validate
from experiments.sweeps import tuning
from experiments.sweeps.expand import expand
from experiments.sweeps.launchers import Job, Sequential


def _fill(value, folder: str, seed: int):
    if isinstance(value, dict):
        return {k: _fill(v, folder, seed) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, folder, seed) for v in value]
    if isinstance(value, str):
        return value.replace("{sweep}", folder).replace("{seed}", str(seed))
    return value


def in_folder(config: Config, folder: str | Path) -> Config:
    """``config`` with ``{sweep}`` in its string values replaced by the folder its sweep's runs live in (absolute)
    and ``{seed}`` by its seed: a run can name an earlier run of the same sweep, e.g. a distillation student its
    teacher, ``model.teacher = "{sweep}/teacher__seed={seed}"`` (the teacher variant listed first)."""
    if "{sweep}" not in json.dumps(config.raw):
        return config
    return validate(_fill(config.raw, str(Path(folder).resolve()), config.seed), source=config.source)


def plan(path: str | Path, overrides=()) -> list[tuple[str, Config]]:
    """Every run of a config file's sweep, validated before anything runs (a bad variant fails up front). A sweep
    that tunes (``[sweep.tuning]``) is planned with the config's own value of the tuned field (for validation and
    ``--dry-run``); ``run_sweep`` gives each arm its tuned value."""
    return validated(apply_overrides(read_file(path), overrides), str(path))


def validated(raw: dict, source: str, chosen: dict | None = None) -> list[tuple[str, Config]]:
    validate(raw, source=source)
    runs = tuning.apply(raw, chosen) if chosen is not None else expand(raw)
    out = []
    for name, cfg in runs:
        try:
            out.append((name, validate(cfg, source=source)))
        except ConfigError as err:
            raise ConfigError(f"sweep run {name}: {err}") from None
    return out


def finished(rundir: Path, config: Config) -> bool:
    """Whether ``rundir`` holds a finished run of ``config`` (then it is reused). A finished run of another config
    is an error: reusing it would report numbers the config did not produce."""
    if not (rundir / "summary.json").exists():
        return False
    if json.loads((rundir / "config.json").read_text()) != config.to_dict():
        raise ConfigError(f"{str(rundir)!r} holds a finished run of a different config; use another --workdir/--out "
                          "or move that folder away")
    return True


class SweepFailed(RuntimeError):
    """Some runs of a sweep failed (the others finished); ``failed`` maps each run's name to its last error line."""

    def __init__(self, failed: dict, total: int, logs: Path):
        self.failed = dict(failed)
        super().__init__(f"{len(failed)} of {total} runs failed: {', '.join(failed)}; their output is in {logs}; "
                         "rerun the same command to retry them (finished runs are skipped)")


class _Progress:
    """The sweep's view of a launcher: a line per finished run and, in a terminal, a bar of finished runs with the
    running and failed counts."""

    def __init__(self, total: int, done: int, quiet: bool, log):
        self.total, self.done, self.running, self.failed, self.started, self.log = total, done, 0, {}, {}, log
        self.bar = None
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=done, unit="run", desc="sweep", dynamic_ncols=True)

    def __call__(self, job, status: str, error: str | None) -> None:
        if status == "running":
            self.running += 1
            self.started[job.name] = time.time()
        else:
            self.running -= 1
            took = time.time() - self.started.pop(job.name, time.time())
            if status == "done":
                self.done += 1
                what = f"done in {took:.1f} s"
            else:
                self.failed[job.name] = error
                what = f"FAILED after {took:.1f} s: {error} (output: {job.log})"
            line = (f"[{self.done}/{self.total} done, {self.running} running, {len(self.failed)} failed] "
                    f"{job.name}: {what}")
            self.bar.write(line) if self.bar is not None else self.log(line)
        if self.bar is not None:
            self.bar.n = self.done + len(self.failed)
            self.bar.set_postfix(running=self.running, failed=len(self.failed))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_sweep(path: str | Path, workdir: str | Path, overrides=(), *, quiet: bool = False, log=print,
              launcher=None) -> list:
    """Run every incomplete run of the sweep in ``workdir/<run name>``; returns the run directories.

    ``launcher`` (see ``experiments.sweeps.launchers``) says where: by default one after another in this process, where an
    error stops the sweep; any other launcher runs each run in its own process, reports a line per finished run,
    goes on past failures and raises ``SweepFailed`` naming them at the end. A child's output goes to
    ``workdir/logs/<run name>.log``. A sweep with ``[sweep.tuning]`` first runs its tuning runs in
    ``workdir/tuning`` and gives each arm its chosen value (``experiments.sweeps.tuning``)."""
    workdir = Path(workdir)
    raw = apply_overrides(read_file(path), overrides)
    runs = validated(raw, str(path))  # everything validated before anything runs
    if tuning.settings(raw):
        tune = validated(tuning.tuning_raw(raw), str(path))
        log(f"tuning {tuning.settings(raw)['field']}: {len(tune)} runs on seed {tuning.settings(raw)['seed']}")
        first, second = tuning.stages(tune)  # runs that read an earlier run (a student its teacher) go second
        _launch(first, workdir / tuning.FOLDER, quiet, log, launcher)
        if second:
            tuning.link(raw, workdir / tuning.FOLDER,
                        tuning.choose(raw, workdir / tuning.FOLDER, [(n, c.raw) for n, c in first]))
            _launch(second, workdir / tuning.FOLDER, quiet, log, launcher)
        runs = validated(raw, str(path), tuning.choose(raw, workdir / tuning.FOLDER))
    return _launch(runs, workdir, quiet, log, launcher)


def has_checkpoint(rundir: Path) -> bool:
    """Whether ``rundir`` holds a saved checkpoint (a step folder under ``checkpoints/``)."""
    folder = Path(rundir) / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def lost_reads(todo: list[Config], done: list[tuple[str, Path]], log) -> set[str]:
    """The names of the finished runs ``done`` (``[(name, rundir)]``) that a config still ``todo`` reads (names its
    folder: a distillation student its teacher) and whose checkpoint is gone: run records are kept in git,
    checkpoints are not, so a fresh clone has them finished but unrestorable. Their records are removed, so they
    run again, before their readers; training is deterministic for a config and seed, so the same numbers return."""
    read = "\n".join(json.dumps(config.to_dict()) for config in todo)
    lost = set()
    for name, rundir in done:
        if json.dumps(str(Path(rundir).resolve())) in read and not has_checkpoint(rundir):
            log(f"{name}: finished, but its checkpoint, which a run still to do reads, is missing: rerun")
            for old in ("summary.json", "metrics.jsonl"):
                (Path(rundir) / old).unlink(missing_ok=True)
            lost.add(name)
    return lost


def reusable(runs: list[tuple[str, Path, Config]], log) -> set[str]:
    """The names of ``runs`` (``[(name, rundir, config)]``) whose finished records are reused: finished, and not
    lost to a run still to do that reads them (``lost_reads``)."""
    done = {name for name, rundir, config in runs if finished(rundir, config)}
    return done - lost_reads([c for n, _, c in runs if n not in done], [(n, d) for n, d, _ in runs if n in done], log)


def _launch(runs, workdir: Path, quiet: bool, log, launcher) -> list:
    runs = [(name, in_folder(config, workdir)) for name, config in runs]
    dirs = [workdir / name for name, _ in runs]
    done = reusable([(name, workdir / name, config) for name, config in runs], log)
    todo = []
    for i, (name, config) in enumerate(runs, 1):
        if name in done:
            log(f"[{i}/{len(runs)}] {name}: complete, skipped")
        else:
            todo.append(Job(name, config, workdir / name, workdir / "logs" / f"{name}.log"))
    launcher = launcher or Sequential(quiet)
    if isinstance(launcher, Sequential):
        index = {name: i for i, (name, _) in enumerate(runs, 1)}
        launcher.launch(todo, lambda job, status, _: status == "running" and log(f"[{index[job.name]}/{len(runs)}] "
                                                                                 f"{job.name}"))
        return dirs
    progress = _Progress(len(runs), len(runs) - len(todo), quiet, log)
    try:
        launcher.launch(todo, progress)
    finally:
        progress.close()
    if progress.failed:
        raise SweepFailed(progress.failed, len(runs), workdir / "logs")
    return dirs
