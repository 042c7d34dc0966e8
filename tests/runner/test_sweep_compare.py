"""Sweeps (restartable, one folder a run), compare reports (mean ± CI per group, plots), the CLI's list."""

import json

import pytest

from experiments.__main__ import main
from experiments.runner import apply_overrides, read_file

from .helpers import QUICKSTART, cli


def _sweep_config(tmp_path):
    raw = apply_overrides(read_file(QUICKSTART), [
        "train.steps=20", "train.steps_per_call=10", "train.eval_every=10", "train.log_every=10",
        "sweep.seeds=[0, 1]", 'sweep.scatter=[["param_count", "accuracy"]]', 'sweep.grid."model.hidden"=[[8], [32]]',
        'sweep.table=["accuracy", "param_count"]', 'sweep.baseline="32"', 'sweep.note="a demonstration"'])
    path = tmp_path / "sweep.json"  # a config file may be JSON as well as TOML
    path.write_text(json.dumps(raw))
    return path


def test_sweep_runs_each_config_in_its_folder_skips_complete_runs_and_compares(tmp_path, capsys):
    cfg, out = _sweep_config(tmp_path), tmp_path / "runs"
    first = cli("sweep", cfg, "--workdir", out, "--quiet")
    assert first.returncode == 0, first.stderr
    table = first.stdout.splitlines()[-5:]  # the config's summary table, its note, the last line
    assert "accuracy (× model.hidden=32)" in table[0] and "param_count (× model.hidden=32)" in table[0]
    rows = {row.split()[0]: row for row in table[1:3]}
    assert rows["model.hidden=32"].count("(1×)") == 2  # the baseline named in the config, not the first group
    ratio = float(rows["model.hidden=8"].split("(")[-1].rstrip("×)"))  # the same for both seeds: no interval
    assert ratio == pytest.approx((64 * 8 + 8 + 8 * 10 + 10) / (64 * 32 + 32 + 32 * 10 + 10), rel=1e-3)
    assert table[3] == "a demonstration"
    dirs = sorted(p.name for p in out.iterdir())
    assert dirs == ["model.hidden=32__seed=0", "model.hidden=32__seed=1", "model.hidden=8__seed=0",
                    "model.hidden=8__seed=1"]
    stamp = {d: (out / d / "summary.json").stat().st_mtime_ns for d in dirs}
    (out / dirs[0] / "summary.json").unlink()  # an interrupted sweep: one run not complete
    assert main(["sweep", str(cfg), "--workdir", str(out), "--quiet"]) == 0  # the CLI, in this process
    assert capsys.readouterr().out.count("complete, skipped") == 3
    assert all((out / d / "summary.json").stat().st_mtime_ns == stamp[d] for d in dirs[1:])
    changed = main(["sweep", str(cfg), "--workdir", str(out), "--quiet", "optimizer.learning_rate=0.5"])
    assert changed == 2 and "holds a finished run of a different config" in capsys.readouterr().err
    assert all((out / d / "summary.json").stat().st_mtime_ns == stamp[d] for d in dirs[1:])

    assert main(["compare", str(out), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "grouped by: model.hidden" in text and "## accuracy" in text and "Time to target" in text
    assert "| model.hidden=[8] | 2 |" in text and "| model.hidden=[32] | 2 |" in text
    pngs = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert {"curve_train_loss.png", "curve_eval_accuracy.png", "scatter_accuracy_vs_param_count.png"} <= pngs


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    for args, words in [(("run", tmp_path / "none.toml"), "not found"),
                        (("run", QUICKSTART, "train.steps=0"), "train.steps: 0"),
                        (("compare", tmp_path / "nothing"), "does not exist")]:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    proc = cli("frobnicate")  # the real entry point: argparse's own error, exit 2, one line
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_list_names_models_tasks_optimizers(capsys):
    assert main(["list"]) == 0
    kinds = {line.split()[0] + ":" + line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert {"model:mlp", "model:cnn", "task:digits", "optimizer:adam", "optimizer:sgd"} <= kinds


def test_baseline_ratio_is_taken_at_the_same_grid_point():
    from experiments.reports import matching_baseline

    def group(opt, kind):
        return [{"flat": {"optimizer.name": opt, "data.kind": kind, "seed": 0}}]

    groups = {f"{o}, {k}": group(o, k) for o in ("adam", "argmin") for k in ("double_well", "rastrigin")}
    bases = ["argmin, double_well", "argmin, rastrigin"]
    assert matching_baseline("adam, rastrigin", groups, bases) == "argmin, rastrigin"
    assert matching_baseline("adam, double_well", groups, bases) == "argmin, double_well"
