"""The training loop: learning, determinism, scanned steps, resume after a kill, NaN stop, devices, files."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import experiments
from experiments import ConfigError, TrainingDiverged, load_config

from .helpers import QUICKSTART, REPO, TINY, cli, devices_env, events


def test_quickstart_learns_digits_and_records_everything(tmp_path):
    result = experiments.run(load_config(QUICKSTART, ["train.steps=300", "train.eval_every=100"]), tmp_path,
                             quiet=True)
    s = result.summary
    assert s["final"]["accuracy"] > 0.9  # chance is 0.1
    ev = result.eval
    assert list(ev["step"]) == [0, 100, 200, 300] and ev["accuracy"].iloc[-1] > ev["accuracy"].iloc[0]
    assert s["param_count"] == 64 * 128 + 128 + 128 * 10 + 10
    # FLOPs of one training step: forward+backward of a 64-128-10 MLP on 64 examples is ~3 x 2 x 9,472 x 64.
    assert 2.5e6 < s["flops_per_step"] < 6e6
    for key in ("step_time_s", "examples_per_s", "device_kind", "device_count", "jax", "flax", "optax"):
        assert s[key] is not None
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["steps"] == 300 and saved["model"]["name"] == "mlp"
    for e in events(tmp_path):
        assert {"step", "split", "wall_time"} <= set(e)


def test_same_seed_same_metrics_and_steps_per_call_does_not_change_them(tmp_path):
    a = experiments.run(load_config(QUICKSTART, TINY), tmp_path / "a", quiet=True)
    b = experiments.run(load_config(QUICKSTART, TINY), tmp_path / "b", quiet=True)
    c = experiments.run(load_config(QUICKSTART, TINY + ["train.steps_per_call=1"]), tmp_path / "c", quiet=True)
    d = experiments.run(load_config(QUICKSTART, TINY + ["seed=1"]), tmp_path / "d", quiet=True)
    la, lb, lc, ld = (list(r.train["loss"]) for r in (a, b, c, d))
    assert la == lb
    np.testing.assert_allclose(la, lc, rtol=1e-6)
    assert la != ld


def test_finished_run_is_not_overwritten(tmp_path):
    experiments.run(load_config(QUICKSTART, TINY), tmp_path, quiet=True)
    before = (tmp_path / "summary.json").read_text()
    with pytest.raises(ConfigError, match="finished run"):
        experiments.run(load_config(QUICKSTART, TINY), tmp_path, quiet=True)
    assert (tmp_path / "summary.json").read_text() == before
    proc = cli("run", QUICKSTART, *TINY, "--workdir", tmp_path, "--quiet")
    assert proc.returncode == 2 and "finished run" in proc.stderr and "Traceback" not in proc.stderr


def test_nan_loss_stops_naming_the_step_and_keeps_last_checkpoint(tmp_path):
    cfg = load_config(QUICKSTART, ["optimizer.name=sgd", "optimizer.learning_rate=1e38", "train.steps=200",
                                   "train.checkpoint_every=1", "train.steps_per_call=1", "train.eval_every=0"])
    with pytest.raises(TrainingDiverged, match=r"at step (\d+)") as err:
        experiments.run(cfg, tmp_path, quiet=True)
    bad_step = int(err.value.args[0].split("at step ")[1].split(";")[0])
    kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert kept and kept[-1] == bad_step - 1
    assert not (tmp_path / "summary.json").exists()


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    args = ["train.steps=1500", "train.checkpoint_every=100", "train.steps_per_call=20", "train.eval_every=500",
            "train.log_every=100"]
    whole = experiments.run(load_config(QUICKSTART, args), tmp_path / "whole", quiet=True)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "run", str(QUICKSTART), *args, "--workdir",
                             str(run_dir), "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        ckpts = run_dir / "checkpoints"
        if ckpts.exists() and sum(p.name.isdigit() for p in ckpts.iterdir()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"
    done = cli("run", QUICKSTART, *args, "--workdir", run_dir, "--quiet")
    assert done.returncode == 0, done.stderr
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["final"] == whole.summary["final"]
    train_whole = [(e["step"], e["loss"]) for e in events(tmp_path / "whole", "train")]
    train_resumed = [(e["step"], e["loss"]) for e in events(run_dir, "train")]
    assert train_resumed == train_whole  # no duplicated or missing events after the resume


def test_one_and_eight_devices_give_the_same_losses(tmp_path):
    env = devices_env(8)
    args = ["train.steps=30", "train.log_every=1", "train.eval_every=0", "train.steps_per_call=10"]
    eight = cli("run", QUICKSTART, *args, "--workdir", tmp_path / "eight", "--quiet", env=env)
    assert eight.returncode == 0, eight.stderr
    experiments.run(load_config(QUICKSTART, args), tmp_path / "one", quiet=True)  # this process: one device
    assert json.loads((tmp_path / "eight" / "summary.json").read_text())["device_count"] == 8
    l8 = [e["loss"] for e in events(tmp_path / "eight", "train")]
    l1 = [e["loss"] for e in events(tmp_path / "one", "train")]
    assert len(l1) == 30
    np.testing.assert_allclose(l8, l1, atol=1e-5)


def test_batch_not_divisible_by_devices_is_a_config_error(tmp_path):
    env = devices_env(8)
    proc = cli("run", QUICKSTART, "train.batch_size=60", "--workdir", tmp_path, env=env)
    assert proc.returncode == 2 and "train.batch_size: 60" in proc.stderr and "multiple of 8" in proc.stderr


def test_models_with_batch_statistics_train_and_keep_their_running_averages(tmp_path):
    import tomllib

    from flax import nnx

    from experiments.runner import registry

    class BatchNormMLP(nnx.Module):
        def __init__(self, rngs):
            self.l1, self.bn = nnx.Linear(64, 32, rngs=rngs), nnx.BatchNorm(32, momentum=0.9, rngs=rngs)
            self.l2 = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.bn(self.l1(x.reshape(x.shape[0], -1)))))

    registry.register_model("batchnorm_mlp_test", lambda cfg, *, task, rngs: BatchNormMLP(rngs))
    raw = tomllib.loads(QUICKSTART.read_text())
    raw["model"] = {"name": "batchnorm_mlp_test"}
    result = experiments.run(experiments.from_dict(raw, ["train.steps=300", "train.eval_every=0"]), tmp_path,
                             quiet=True)
    assert result.summary["final"]["accuracy"] > 0.85  # eval mode uses the running averages the steps updated


def test_progress_bar_only_in_a_terminal_or_notebook_and_not_when_quiet(monkeypatch):
    from experiments.runner import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert progress_bar(10, 0, quiet=False) is None  # piped output: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(10, 3, quiet=False)
    assert bar is not None and bar.total == 10 and bar.n == 3
    bar.close()
    assert progress_bar(10, 0, quiet=True) is None  # --quiet wins


def test_compilation_cache_keeps_every_program_unless_the_user_sets_a_minimum(tmp_path):
    code = ("import jax; from experiments.runner import enable_compilation_cache; enable_compilation_cache(); "
            "print(jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_PERSISTENT_CACHE", "BEYONDSCALE_COMP"))}
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "cache")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(tmp_path / "cache"), "0.0"]
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "2.5"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(tmp_path / "cache"), "2.5"]
