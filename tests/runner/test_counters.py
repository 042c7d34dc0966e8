"""Counts are summed, not averaged, and every ``*_evals`` counter is treated alike by stats and report."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.analysis import stats
from experiments.reports import compare
from experiments.runner import Task, evaluate, load_config

from .helpers import QUICKSTART


def _task(counts):
    def loss(model, batch, key, train):
        n = batch["x"].shape[0]
        return jnp.float32(0), {"calls": jnp.float32(n * n), "mean_x": batch["x"].mean()}

    x = np.arange(10, dtype=np.float32)
    return Task("toy", {"x": x}, {"x": x}, loss, counts=counts)


def test_a_declared_count_is_summed_over_eval_batches():
    config = load_config(QUICKSTART)
    batches = [{"x": jnp.arange(6, dtype=jnp.float32)}, {"x": jnp.arange(6, 10, dtype=jnp.float32)}]
    model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
    summed = evaluate(model, _task(("calls",)), config, batches, jax.random.key(0), step=0)
    averaged = evaluate(model, _task(()), config, batches, jax.random.key(0), step=0)
    assert summed["calls"] == 36 + 16  # a count: the batches' own counts added up
    assert averaged["calls"] == (36 * 6 + 16 * 4) / 10  # a metric: the batch-weighted mean (about sum n^2 / sum n)
    assert summed["mean_x"] == averaged["mean_x"] == 4.5


def _fake_run(path, seed, reach_step, metric_evals, optimizer="adam"):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed, "model": {"name": "m"}, "optimizer": {
        "name": optimizer}, "train": {
        "target_metric": "accuracy", "target_value": 0.9, "target_mode": "max"}}))
    events = [{"step": s, "split": "eval", "accuracy": 0.95 if s >= reach_step else 0.5, "loss_evals": 2 * s,
               **({"metric_evals": metric_evals * s} if metric_evals is not None else {})} for s in (0, 10, 20, 30)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (path / "summary.json").write_text(json.dumps({"status": "finished", "final": {"accuracy": 0.95}}))


def test_every_evals_counter_reaches_stats_and_the_report(tmp_path):
    for seed in (0, 1, 2):
        _fake_run(tmp_path / f"seed={seed}", seed, 20, 3)
    out = stats.epochs_to_target(tmp_path / "seed=0")
    assert out["step"] == 20 and out["metric_evals"] == 60 and out["forward_evals"] == 20 + 40
    assert stats.to_target_key("metric_evals_to_target") == "metric_evals"
    assert stats.to_target_key("steps_to_target") == "step" and stats.to_target_key("bits") is None
    report = compare([tmp_path], tmp_path / "report").read_text()
    assert "metric evals" in report and "60" in report


def test_baseline_prefers_an_exact_value_over_a_substring(tmp_path):
    for seed in (0, 1, 2):
        _fake_run(tmp_path / f"qng_adam-{seed}", seed, 10, 0, optimizer="qng_adam")
        _fake_run(tmp_path / f"adam-{seed}", seed, 20, None, optimizer="adam")
    report = compare([tmp_path], tmp_path / "report", baseline="adam").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| optimizer.name=qng_adam |"))
    assert row.rstrip(" |").endswith("0.5 [0.5, 0.5]")  # 10 steps against adam's 20, not against itself
    adam = next(line for line in report.splitlines() if line.startswith("| optimizer.name=adam |"))
    assert "| n/a |" in adam and "| n/a |" not in row  # a counter adam never logged is not "not reached"
