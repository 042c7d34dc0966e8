"""The command line: ``python -m experiments {run,sweep,evaluate,compare,list,claims,prepare-data} ...`` (also the ``beyondscale`` script).

Bad input (a config key, value, file or name) prints one line and exits 2; a diverged run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.claims.suite import publish, run_claims
from experiments.errors import ConfigError, exit_code
from experiments.reports.cells import number
from experiments.reports.compare import compare, summary_table
from experiments.runner import registry
from experiments.runner.config import load_config
from experiments.runner.prepare import prepare_data
from experiments.runner.runs import evaluate_run
from experiments.runner.train import run
from experiments.sweeps.launchers import make_launcher, parse_options
from experiments.sweeps.sweep import SweepFailed, plan, run_sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other bad input
        self.exit(2, f"error: {message} (see: python -m experiments --help)\n")


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _print_result(result) -> None:
    s = result.summary
    rows = [(k, number(v)) for k, v in s["final"].items() if isinstance(v, (int, float))]
    rows += [(k, number(s[k])) for k in ("param_count", "flops_per_step", "step_time_s", "examples_per_s",
                                       "compile_time_s") if s.get(k) is not None]
    rows += [("device", f"{s['device_count']} x {s['device_kind']}"), ("workdir", str(result.workdir))]
    print(f"results after {s['steps']} steps (held-out split):\n{_table(rows)}")


def parse_pairs(items, option: str = "--post", example: str = "sparsity:loss") -> list[tuple[str, str]]:
    """``["sparsity:bits_per_char"]`` → ``[("sparsity", "bits_per_char")]``; ConfigError naming ``option``."""
    out = []
    for item in items:
        if item.count(":") != 1 or not all(item.split(":")):
            raise ConfigError(f"{option}: {item!r} is malformed; write A:B, e.g. {example}")
        out.append(tuple(item.split(":")))
    return out


def main(argv=None) -> int:
    parser = _Parser(prog="python -m experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("run", help="run one experiment (resumes an unfinished run in --workdir)")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="dotted key=value, e.g. train.steps=100 optimizer.learning_rate=3e-4")
    p.add_argument("--workdir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --workdir")
    p = sub.add_parser("sweep", help="run a config's sweep, one subfolder a run; complete runs are skipped")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--workdir")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    p.add_argument("--jobs", type=int, help="runs at once (local default 1: one after another in this process; "
                   "N: N processes, each on its own GPUs, TPU chips or CPU cores)")
    p.add_argument("--launcher", default="local", choices=("local", "ray", "slurm"),
                   help="where runs execute: this machine, a Ray cluster, a SLURM job array (needs the cluster extra)")
    p.add_argument("--address", help="ray: the cluster's address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--gpus-per-run", type=float, help="ray/slurm: GPUs a run asks for (default 1)")
    p.add_argument("--cpus-per-run", type=float, help="ray/slurm: CPUs a run asks for (alone: a CPU-only run)")
    p.add_argument("--partition", help="slurm: the partition")
    p.add_argument("--time", type=int, metavar="MINUTES", help="slurm: time limit of a run (default 60)")
    p.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                   help="slurm: passed to submitit as slurm_KEY (account, qos, constraint, mem, ...); repeatable")
    p = sub.add_parser("evaluate", help="rerun post-training stages on a finished run (its config's, or post=...)")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", help="post='[{name=\"prune\", sparsity=[0.5, 0.9]}]'")
    p = sub.add_parser("compare", help="report.md + plots from finished runs or sweep folders")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--out")
    p.add_argument("--scatter", action="append", default=[], metavar="X:Y", help="plot metric Y against X: a metric, or a swept config field such as data.train_size (a line per setting)")
    p.add_argument("--front", action="append", default=[], metavar="X:Y",
                   help="Y against X for every group and post stage, the Pareto front marked (lower is better)")
    p.add_argument("--baseline", help="time-to-target ratios against the group whose label contains this text")
    p.add_argument("--scaling", action="append", default=[], metavar="COMPUTE:LOSS",
                   help="fit LOSS = E + A*COMPUTE^-alpha per group (e.g. train_flops:bits_per_char), multipliers "
                        "against --baseline")
    p.add_argument("--post", action="append", default=[], metavar="PARAM:METRIC",
                   help="plot a metric against a post-training stage parameter (numeric varying ones are drawn anyway)")
    sub.add_parser("list", help="registered models, tasks, optimizers and hooks")
    p = sub.add_parser("claims", help="run the claims suite and write REPORT.md with one verdict per claim")
    p.add_argument("--size", default="smoke",
                   help="smoke (minutes, CPU) | cpu (hours on 2 cores; finished runs are reused) | gpu (full)")
    p.add_argument("--out", help="output folder (default runs/claims-SIZE); finished runs in it are reused")
    p.add_argument("--only", action="append", help="run only this claim (file stem); repeatable")
    p.add_argument("--publish", metavar="DIR", help="also copy REPORT.md and its plots to DIR (e.g. experiments/)")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("prepare-data", help="text files -> train.bin / val.bin token files (nanoGPT format) for the "
                       "tokens task, streamed in chunks")
    p.add_argument("files", nargs="+", metavar="FILES", help="text files, read one after another")
    p.add_argument("--tokenizer", required=True, metavar="bytes|bpe:VOCAB|PATH.json",
                   help="bytes (vocabulary 256); bpe:VOCAB (byte-level BPE trained here on the train split); or a "
                        "tokenizer.json to load")
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")
    p.add_argument("--split", default="0.9,0.1", metavar="TRAIN,VAL[,TEST]",
                   help="fractions by position (default 0.9,0.1; SpikeGPT's enwik8: 0.9,0.05,0.05)")
    p.add_argument("--bpe-train-bytes", type=int, default=0, metavar="N",
                   help="train the BPE on the first N bytes only (default: the whole train split)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra  # overrides written after an option (`--workdir DIR key=value`)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return exit_code(_dispatch, args)


def _dispatch(args) -> int:
    if args.command == "list":
        for kind in ("model", "task", "optimizer", "hook"):
            for e in registry.entries(kind):
                print(f"{kind:<9} {e.name:<22} {e.doc}")
        return 0
    if args.command == "prepare-data":
        meta = prepare_data(args.files, args.tokenizer, args.out, split=args.split,
                            bpe_train_bytes=args.bpe_train_bytes, quiet=args.quiet)
        counts = ", ".join(f"{k} {meta['tokens'][k]:,} tokens / {meta['bytes'][k]:,} bytes" for k in meta["tokens"])
        print(f"{args.out}: {meta['tokenizer']} (vocabulary {meta['vocab_size']}, {meta['dtype']}): {counts}")
        print(f"train on it: data.name='tokens' data.dir='{args.out}'")
        return 0
    if args.command == "claims":
        report = run_claims(args.size, args.out or f"runs/claims-{args.size}", args.only, quiet=args.quiet)
        print(publish(report, args.publish) if args.publish else report)
        return 0
    if args.command == "evaluate":
        for r in evaluate_run(args.run_dir, args.overrides):
            metrics = ", ".join(f"{k}={number(v)}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))
            print(f"{r['label']}: {metrics}")
        return 0
    if args.command == "compare":
        out = args.out or str(Path(args.dirs[0]) / "report")
        print(compare(args.dirs, out, scatter=parse_pairs(args.scatter, "--scatter", "energy_pj:bits_per_char"),
                      baseline=args.baseline, post=parse_pairs(args.post),
                      scaling=parse_pairs(args.scaling, "--scaling", "train_flops:loss"),
                      front=parse_pairs(args.front, "--front", "energy_strict_pj:bits_per_char")))
        return 0
    workdir = args.workdir or str(Path("runs") / Path(args.config).stem)
    if args.command == "sweep":
        if args.dry_run:
            for name, _ in plan(args.config, args.overrides):
                print(name)
            return 0
        launcher = make_launcher(args.launcher, jobs=args.jobs, address=args.address, gpus=args.gpus_per_run,
                                 cpus=args.cpus_per_run, partition=args.partition, time_min=args.time,
                                 options=parse_options(args.slurm_option), quiet=args.quiet)
        try:
            dirs = run_sweep(args.config, workdir, args.overrides, quiet=args.quiet, launcher=launcher)
        except SweepFailed as err:
            print(f"sweep failed: {err}", file=sys.stderr)
            return 1
        sweep = plan(args.config, args.overrides)[0][1].sweep
        if sweep.get("table"):  # the config's own summary: metrics per group, ratios to its baseline
            tuned = [sweep["tuning"]["field"]] if sweep.get("tuning") else []  # each arm's own value, not a group
            print(summary_table(dirs, sweep["table"], sweep.get("baseline", ""), tuned))
        if sweep.get("note"):
            print(sweep["note"])
        print(f"sweep done: python -m experiments compare {workdir}")
        return 0
    result = run(load_config(args.config, args.overrides), workdir, quiet=args.quiet, overwrite=args.overwrite)
    _print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
