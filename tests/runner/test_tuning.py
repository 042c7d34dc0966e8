"""Every arm tuned alike: a sweep's tuning runs pick each arm's value on a seed no verdict uses, and its own runs
get it; a tuning seed among the verdict seeds, or a malformed table, is one line."""

import json

import pytest

from experiments import ConfigError
from experiments.runner import apply_overrides, read_file, validate
from experiments.sweeps import run_sweep, tuning

from .helpers import QUICKSTART

TUNED = ["train.steps=30", "train.steps_per_call=10", "train.eval_every=0", "train.log_every=10",
         "sweep.seeds=[0, 1]", 'sweep.grid."model.hidden"=[[8], [32]]',
         'sweep.tuning={field="optimizer.learning_rate", values=[1e-5, 1e-2], seed=100, metric="accuracy", mode="max"}']


def test_each_arm_takes_the_best_value_of_the_grid_from_its_tuning_runs(tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(apply_overrides(read_file(QUICKSTART), TUNED)))
    said = []
    dirs = run_sweep(path, tmp_path / "runs", quiet=True, log=said.append)
    tuned = sorted(p.name for p in (tmp_path / "runs" / "tuning").iterdir() if p.name != "logs")
    assert tuned == [f"model.hidden={h}__optimizer.learning_rate={v}__seed=100" for h in (32, 8) for v in ("0.01", "1e-05")]
    raw = read_file(path)
    chosen = tuning.choose(raw, tmp_path / "runs" / "tuning")
    assert {a: c["value"] for a, c in chosen.items()} == {"model.hidden=8": 1e-2, "model.hidden=32": 1e-2}
    scores = chosen["model.hidden=8"]["scores"]
    assert scores[1e-2] > scores[1e-5]  # 30 steps at 1e-5 barely move: the grid decides, not a default
    rates = {d.name: json.loads((d / "config.json").read_text())["optimizer"]["learning_rate"] for d in dirs}
    assert sorted(rates) == ["model.hidden=32__seed=0", "model.hidden=32__seed=1", "model.hidden=8__seed=0",
                             "model.hidden=8__seed=1"] and set(rates.values()) == {1e-2}
    assert said[0].startswith("tuning optimizer.learning_rate: 4 runs on seed 100")
    assert "| model.hidden=8 | 0.01 |" in "\n".join(tuning.table(raw, chosen))
    at = dict(raw, sweep={**raw["sweep"], "tuning": {**raw["sweep"]["tuning"], "at": {"model.hidden": [32]}}})
    names = [name for name, _ in tuning.expand(tuning.tuning_raw(at))]  # tuned at one grid point, for all of them
    assert names == [f"model.hidden=32__optimizer.learning_rate={v}__seed=100" for v in ("1e-05", "0.01")]
    one = tuning.choose(at, tmp_path / "runs" / "tuning")
    assert list(one) == [""] and {n: c["optimizer"]["learning_rate"] for n, c in tuning.apply(at, one)} == {
        f"model.hidden={h}__seed={s}": 1e-2 for h in (8, 32) for s in (0, 1)}
    again = []
    run_sweep(path, tmp_path / "runs", quiet=True, log=again.append)  # a rerun reuses tuning and verdict runs
    assert sum("complete, skipped" in line for line in again) == 8


@pytest.mark.parametrize("table, message", [
    ('{field="optimizer.learning_rate", values=[1e-3, 2e-3], seed=0, metric="accuracy", mode="max"}',
     "sweep.tuning.seed: 0 is not allowed; it is a verdict seed"),
    ('{field="optimizer.learning_rate", values=[1e-3], seed=9, metric="accuracy", mode="max"}',
     "sweep.tuning.values: [0.001] is not allowed; give >= 2 values"),
    ('{field="optimizer.learning_rate", values=[1e-3, 2e-3], seed=9, metric="accuracy"}',
     "sweep.tuning.mode: missing key"),
    ('{field="lr", values=[1e-3, 2e-3], seed=9, metric="accuracy", mode="max"}', "sweep.tuning.field: 'lr'"),
    ('{field="optimizer.learning_rate", values=[1e-3, 2e-3], seed=9, metric="accuracy", mode="max", at={"model.hidden"=[9]}}',
     "sweep.tuning.at.model.hidden: [9] is not allowed; give a value of sweep.grid.model.hidden"),
    ('{field="optimizer.learning_rate", values=[1e-3, 2e-3], seed=9, metric="accuracy", mode="best"}',
     "sweep.tuning.mode: 'best' is not allowed"),
])
def test_bad_tuning_tables_are_one_line(table, message):
    raw = apply_overrides(read_file(QUICKSTART), ["sweep.seeds=[0, 1]", f"sweep.tuning={table}"])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate(raw)
