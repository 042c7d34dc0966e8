"""Post-training stages, ``evaluate`` on a finished run, a finished run as a model, a frozen teacher."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import experiments
import tests.runner.toy_plugin  # noqa: F401  (registers toy_prune and toy_residual)
from experiments import ConfigError, load_config
from experiments.__main__ import main
from experiments.runner import apply_overrides, build, evaluate, make_optimizer, read_file, split
from experiments.sweeps import run_sweep

from .helpers import QUICKSTART, REPO, TINY, cli, events

GRID = 'post=[{name = "toy_prune", sparsity = [0.0, 0.5, 0.9]}]'
PLUGIN_ENV = {**os.environ, "BEYONDSCALE_PLUGINS": "tests.runner.toy_plugin", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("post")
    result = experiments.run(load_config(QUICKSTART, TINY + ["train.steps=100", GRID]), workdir, quiet=True)
    return workdir, result


def test_stage_grid_is_written_as_post_events(pruned_run):
    workdir, result = pruned_run
    post = events(workdir, "post")
    assert [e["params"]["sparsity"] for e in post] == [0.0, 0.5, 0.9]
    assert all(e["stage"] == "toy_prune" and e["step"] == 100 for e in post)
    final = events(workdir, "eval")[-1]
    assert post[0]["accuracy"] == final["accuracy"]  # sparsity 0 is the trained model itself
    assert post[2]["accuracy"] < final["accuracy"] - 0.2  # 90% of the weights gone hurts
    assert [p["label"] for p in result.summary["post"]] == [f"toy_prune(sparsity={s})" for s in (0.0, 0.5, 0.9)]
    assert result.summary["wall_s"] >= max(e["wall_time"] for e in post)  # the whole call, post stages included


def test_evaluate_reruns_stages_without_touching_training_events(pruned_run, tmp_path):
    workdir, _ = pruned_run
    before = (workdir / "metrics.jsonl").read_text().splitlines()
    results = experiments.evaluate_run(workdir, ['post=[{name = "toy_prune", sparsity = [0.5, 0.7]}]'])
    after = (workdir / "metrics.jsonl").read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 2
    assert results[0]["metrics"]["accuracy"] == json.loads(before[-2])["accuracy"]  # same stage, same result
    summary = json.loads((workdir / "summary.json").read_text())
    assert sorted(p["params"]["sparsity"] for p in summary["post"]) == [0.0, 0.5, 0.7, 0.9]
    assert summary["final"] == pruned_run[1].summary["final"]


def test_evaluate_cli_runs_stages_and_bad_input_is_one_line(pruned_run, tmp_path, capsys):
    workdir, _ = pruned_run
    (tmp_path / "config.json").write_text((workdir / "config.json").read_text())
    for args in ([tmp_path / "missing"], [tmp_path], [workdir, "train.steps=5"],
                 [workdir, 'post=[{name = "no_such_stage"}]'], [workdir, 'post=[{name = "toy_prune", sparsity = 2.0}]']):
        assert main(["evaluate", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert main(["evaluate", str(tmp_path)]) == 2 and "unfinished" in capsys.readouterr().err
    proc = cli("evaluate", workdir, 'post=[{name = "toy_prune", sparsity = 0.3}]', env=PLUGIN_ENV)
    assert proc.returncode == 0 and proc.stdout.startswith("toy_prune(sparsity=0.3): "), proc.stderr
    assert events(workdir, "post")[-1]["params"] == {"sparsity": 0.3}


def test_load_run_gives_the_trained_model(pruned_run):
    workdir, result = pruned_run
    model, config = experiments.load_run(workdir)
    built = build(config, lambda m: make_optimizer(config, model=m))
    metrics = evaluate(model, built.task, config, built.eval_batches, built.eval_key, step=0)
    assert metrics["accuracy"] == result.summary["final"]["accuracy"]
    with pytest.raises(ConfigError, match="model.teacher"):
        experiments.load_run(workdir / "nothing", key="model.teacher")


def test_frozen_teacher_is_read_not_trained_nor_checkpointed(pruned_run, tmp_path, capsys):
    teacher_dir, teacher_result = pruned_run
    cfg = load_config(QUICKSTART, TINY + ["model={name = \"toy_residual\", hidden = [16]}",
                                          f"model.teacher={json.dumps(str(teacher_dir))}"])
    result = experiments.run(cfg, tmp_path, quiet=True)
    assert result.summary["param_count"] == 64 * 16 + 16 + 16 * 10 + 10  # the student's only
    teacher, _ = experiments.load_run(teacher_dir)
    model, _ = experiments.load_run(tmp_path)
    _, _, frozen, _ = split(model)
    want = split(teacher)[1]
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)  # restored from the teacher's run, unchanged by training
    # The teacher is in the forward: with it, the untrained student starts near the teacher's accuracy.
    assert events(tmp_path, "eval")[0]["accuracy"] > teacher_result.summary["final"]["accuracy"] - 0.15
    stored = json.loads((tmp_path / "checkpoints" / "40" / "default" / "_METADATA").read_text())["tree_metadata"]
    assert not [k for k in stored if "teacher" in k] and [k for k in stored if "student" in k]
    code = main(["run", str(QUICKSTART), *TINY, "model.name=toy_residual", "model.teacher=nowhere", "--workdir",
                 str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "model.teacher" in err and len(err.strip().splitlines()) == 1


def test_compare_tables_and_plots_metrics_against_a_stage_parameter(pruned_run, tmp_path):
    workdir, _ = pruned_run
    report = experiments.compare([workdir], tmp_path).read_text()
    assert "## Post-training stages" in report
    row = next(line for line in report.splitlines() if "toy_prune(sparsity=0.9)" in line)
    assert row.startswith("| all runs | toy_prune(sparsity=0.9) | 1 |")
    assert (tmp_path / "post_accuracy_vs_sparsity.png").stat().st_size > 10_000
    proc = cli("compare", workdir, "--post", "sparsity", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "--post" in proc.stderr


def test_a_sweep_reruns_a_finished_teacher_whose_checkpoint_is_gone(tmp_path):
    """Run records are kept in git and checkpoints are not: on a fresh clone a student still to run would find its
    teacher finished but unrestorable. The sweep reruns that teacher first (same config and seed: the same
    numbers), then the student; a finished student's teacher is left alone."""
    path = tmp_path / "kd.json"
    path.write_text(json.dumps(apply_overrides(read_file(QUICKSTART), TINY + [
        "sweep.seeds=[0]", ('sweep.variants={teacher={}, student={model={name="toy_residual", hidden=[16], '
                            'teacher="{sweep}/teacher__seed={seed}"}}}')])))
    runs = tmp_path / "runs"
    run_sweep(path, runs, quiet=True, log=lambda _: None)
    teacher = runs / "teacher__seed=0"
    before = json.loads((teacher / "summary.json").read_text())["final"], len(events(teacher, "eval"))
    shutil.rmtree(teacher / "checkpoints")
    said = []
    run_sweep(path, runs, quiet=True, log=said.append)  # the student is finished: nothing reads the teacher
    assert not (teacher / "checkpoints").exists() and sum("complete, skipped" in s for s in said) == 2
    (runs / "student__seed=0" / "summary.json").unlink()
    said = []
    run_sweep(path, runs, quiet=True, log=said.append)
    assert any(s.startswith("teacher__seed=0: finished, but its checkpoint") for s in said)
    after = json.loads((teacher / "summary.json").read_text())["final"], len(events(teacher, "eval"))
    assert after == before  # the same numbers, and the old events replaced, not appended to
    assert (runs / "student__seed=0" / "summary.json").exists()
