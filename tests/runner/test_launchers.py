"""Sweeps whose runs execute elsewhere: a pool of local processes (``--jobs``), Ray tasks on a local Ray cluster, a
submitit job array on submitit's local executor. Each must give the run folders of a sequential sweep."""

import json
import os
import sys
from pathlib import Path

import pytest

from experiments.errors import ConfigError

from .helpers import QUICKSTART, cli, events

SMALL = ["train.steps=20", "train.eval_every=10", "train.log_every=10", "train.steps_per_call=10"]
NAMES = ["optimizer.learning_rate=0.001__seed=0", "optimizer.learning_rate=0.001__seed=1"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "sweep.toml"
    path.write_text(QUICKSTART.read_text() + '\n[sweep]\nseeds = [0, 1]\n[sweep.grid]\n'
                    '"optimizer.learning_rate" = [0.001]\n')
    return path


@pytest.fixture(scope="module")
def sequential(config, tmp_path_factory):
    """The reference: the same sweep, one run after another in one process (``--jobs 1``)."""
    from experiments.sweeps import run_sweep

    out = tmp_path_factory.mktemp("sequential")
    run_sweep(config, out, SMALL, quiet=True)
    return out


def _assert_same_runs(ours: Path, ref: Path, names=NAMES):
    """The same run folders: config.json, every event's values (wall times aside) and the final metrics."""
    assert sorted(p.name for p in ours.iterdir() if (p / "summary.json").exists()) == sorted(names)
    for name in names:
        assert (ours / name / "config.json").read_text() == (ref / name / "config.json").read_text()
        strip = [{k: v for k, v in e.items() if k != "wall_time"} for e in events(ours / name)]
        assert strip == [{k: v for k, v in e.items() if k != "wall_time"} for e in events(ref / name)]
        final = json.loads((ours / name / "summary.json").read_text())["final"]
        assert final == json.loads((ref / name / "summary.json").read_text())["final"]


@pytest.mark.slow
def test_jobs_run_in_parallel_processes_go_on_past_a_failure_and_a_rerun_skips_finished_runs(
        config, sequential, tmp_path):
    out = tmp_path / "runs"
    bad = ['sweep.grid."optimizer.learning_rate"=[0.001, 1e38]', "sweep.seeds=[1]"]  # 1e38 diverges at once
    first = cli("sweep", config, *SMALL, *bad, "--jobs", "2", "--workdir", out)
    assert first.returncode == 1, first.stderr
    lines = first.stdout.splitlines()
    assert any("] optimizer.learning_rate=0.001__seed=1: done in" in line for line in lines), first.stdout
    failed = [line for line in lines if "optimizer.learning_rate=1e+38__seed=1: FAILED" in line]
    assert len(failed) == 1 and "diverged: loss is nan" in failed[0], first.stdout
    assert lines[-1].startswith("[1/2 done, 0 running, 1 failed] ")
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("sweep failed: 1 of 2 runs failed: optimizer.learning_rate=1e+38__seed=1;"), first.stderr
    assert (out / "logs" / "optimizer.learning_rate=1e+38__seed=1.log").exists()
    stamp = (out / NAMES[1] / "summary.json").stat().st_mtime_ns

    from experiments.sweeps import LocalPool, run_sweep

    said = []  # the planned sweep again: seed 1 is finished, seed 0 still to do
    run_sweep(config, out, SMALL, launcher=LocalPool(2), log=said.append)
    assert any(f"{NAMES[1]}: complete, skipped" in line for line in said), said
    assert any(f"{NAMES[0]}: done in" in line for line in said), said
    assert (out / NAMES[1] / "summary.json").stat().st_mtime_ns == stamp
    _assert_same_runs(out, sequential)


@pytest.mark.slow
def test_ray_tasks_on_a_local_cluster_give_the_sequential_run_folders(config, sequential, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from experiments.sweeps import make_launcher, run_sweep

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # a new cluster, no GPU
    try:  # no --gpus-per-run / --cpus-per-run: on a cluster without GPUs a run asks for one CPU, and says so
        run_sweep(config, tmp_path, SMALL + ["sweep.seeds=[1]"], launcher=make_launcher("ray"))
    finally:
        ray.shutdown()
    assert capsys.readouterr().out.startswith("ray: the cluster has no GPU, so each run asks for 1 CPU")
    _assert_same_runs(tmp_path, sequential, NAMES[1:])  # one task: a Ray worker costs a process start


@pytest.mark.slow
def test_a_submitit_job_array_on_the_local_executor_gives_the_sequential_run_folders(
        config, sequential, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from experiments.sweeps import make_launcher, run_sweep

    monkeypatch.setenv("BEYONDSCALE_SUBMITIT_CLUSTER", "local")
    run_sweep(config, tmp_path, SMALL + ["sweep.seeds=[0]"], launcher=make_launcher("slurm", cpus=1, time_min=10))
    _assert_same_runs(tmp_path, sequential, NAMES[:1])
    assert (tmp_path / "logs" / "slurm").is_dir()  # submitit's own records stay out of the run folders


def _main(args, capsys) -> tuple[int, str]:
    from experiments.__main__ import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args,words", [
    (["--jobs", "0"], "--jobs: 0 is not allowed"),
    (["--jobs", "100000"], "--jobs: 100000 is more than the"),
    (["--address", "10.0.0.1:6379"], "--address: not used by --launcher local; it goes with --launcher ray"),
    (["--launcher", "slurm", "--slurm-option", "account"], "--slurm-option: 'account' is malformed"),
    (["--launcher", "mpi"], "invalid choice: 'mpi'"),
])
def test_bad_launcher_options_are_one_line_errors(config, args, words, capsys, monkeypatch):
    monkeypatch.setenv("BEYONDSCALE_SUBMITIT_CLUSTER", "local")
    code, err = _main(["sweep", config, *args], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("launcher,package", [("ray", "ray"), ("slurm", "submitit")])
def test_a_launcher_whose_package_is_missing_names_the_extra(config, launcher, package, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    code, err = _main(["sweep", config, "--launcher", launcher], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"the {package!r} package is not installed" in err and "pip install 'beyondscale[cluster]'" in err


def test_slurm_without_sbatch_says_where_to_submit(config, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.delenv("BEYONDSCALE_SUBMITIT_CLUSTER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    code, err = _main(["sweep", config, "--launcher", "slurm"], capsys)
    assert code == 2 and "sbatch is not on this machine's PATH" in err and len(err.strip().splitlines()) == 1


def test_each_local_job_gets_its_own_share_of_the_devices(monkeypatch):
    from experiments.sweeps import slot_envs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in slot_envs(4)] == ["2", "3", "5", "7"]
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in slot_envs(2)] == ["2,3", "5,7"]
    with pytest.raises(ConfigError, match="--jobs: 5 is more than the 4 GPUs"):
        slot_envs(5)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # CPU: cores split evenly, thread pools limited to the share
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    slots = slot_envs(2)
    assert [s["cpus"] for s in slots] == [[0, 1], [2, 3]]
    assert all(s["env"]["OMP_NUM_THREADS"] == "2" and s["env"]["OPENBLAS_NUM_THREADS"] == "2" for s in slots)
