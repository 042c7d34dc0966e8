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
    lines = tuning.table(raw, chosen)  # a blank line first: it ends the table above it in a report
    assert "| model.hidden=8 | 0.01 (grid edge) |" in "\n".join(lines) and lines[0] == ""
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
    ('{field="optimizer.learning_rate", values=[1e-3, 2e-3], seed=9, metric="accuracy", mode="max", pick={g=["a"]}}',
     "sweep.tuning.pick.g: ['a'] is not allowed; give a list of >= 2 of the sweep's variants"),
])
def test_bad_tuning_tables_are_one_line(table, message):
    raw = apply_overrides(read_file(QUICKSTART), ["sweep.seeds=[0, 1]", f"sweep.tuning={table}"])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate(raw)


def test_pick_keeps_only_the_best_of_a_group_at_each_grid_point(tmp_path):
    """Alternatives (``pick``) are tuned like any arm; on the verdict seeds only the group's best runs, per grid
    point, chosen by its best score; an arm outside the group always runs."""
    raw = apply_overrides(read_file(QUICKSTART), [
        "sweep.seeds=[0, 1]", 'sweep.grid."model.hidden"=[[8], [32]]',
        'sweep.variants={relu={"model.activation"="relu"}, gelu={"model.activation"="gelu"}, tanh={"model.activation"="tanh"}}',
        'sweep.tuning={field="optimizer.learning_rate", values=[1e-3, 1e-2], seed=100, metric="accuracy", '
        'mode="max", pick={act=["relu", "gelu"]}}'])
    validate(raw)
    score = {("relu", 8): (0.5, 0.7), ("gelu", 8): (0.6, 0.9), ("relu", 32): (0.8, float("nan")),
             ("gelu", 32): (0.4, 0.79), ("tanh", 8): (0.1, 0.2), ("tanh", 32): (0.3, 0.2)}
    for name, cfg in tuning.expand(tuning.tuning_raw(raw)):  # the tuning runs' results, written as they would be
        key = (name.split("__")[0], cfg["model"]["hidden"][0])
        (tmp_path / name).mkdir()
        value = score[key][[1e-3, 1e-2].index(cfg["optimizer"]["learning_rate"])]
        (tmp_path / name / "summary.json").write_text(json.dumps({"final": {"accuracy": value}}))
    chosen = tuning.choose(raw, tmp_path)
    assert tuning.left_out(raw, chosen) == {"relu__model.hidden=8": "gelu__model.hidden=8",
                                            "gelu__model.hidden=32": "relu__model.hidden=32"}
    runs = {name: cfg["optimizer"]["learning_rate"] for name, cfg in tuning.apply(raw, chosen)}
    assert runs == {**{f"gelu__model.hidden=8__seed={s}": 1e-2 for s in (0, 1)},
                    **{f"relu__model.hidden=32__seed={s}": 1e-3 for s in (0, 1)},  # NaN at 1e-2 counts as worst
                    **{f"tanh__model.hidden={h}__seed={s}": v for h, v in ((8, 1e-2), (32, 1e-3)) for s in (0, 1)}}
    assert "gelu__model.hidden=8 over relu__model.hidden=8" in "\n".join(tuning.table(raw, chosen))


def test_a_run_that_reads_an_earlier_run_is_tuned_second_against_the_tuned_one(tmp_path):
    """A student (a run naming ``{sweep}/teacher__seed={seed}``) is tuned after the teacher: ``link`` names the
    teacher's chosen tuning run as a verdict run of the tuning seed would be named, and the student reads it."""
    raw = apply_overrides(read_file(QUICKSTART), [
        "sweep.seeds=[0]", 'sweep.variants={teacher={}, student={"train.target_metric"="{sweep}/teacher__seed={seed}"}}',
        'sweep.tuning={field="optimizer.learning_rate", values=[1e-3, 1e-2], seed=100, metric="accuracy", mode="max"}'])
    tune = tuning.expand(tuning.tuning_raw(raw))
    first, second = tuning.stages(tune)
    assert [n for n, _ in first] == [f"teacher__optimizer.learning_rate={v}__seed=100" for v in ("0.001", "0.01")]
    assert [n for n, _ in second] == [f"student__optimizer.learning_rate={v}__seed=100" for v in ("0.001", "0.01")]
    for name, accuracy in zip((n for n, _ in first), (0.9, 0.4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"final": {"accuracy": accuracy}}))
    tuning.link(raw, tmp_path, tuning.choose(raw, tmp_path, first))
    alias = tmp_path / "teacher__seed=100"
    assert alias.is_symlink() and alias.resolve() == (tmp_path / first[0][0]).resolve()
    assert json.loads((alias / "summary.json").read_text())["final"]["accuracy"] == 0.9
    tuning.link(raw, tmp_path, {"teacher": {"value": 1e-2, "scores": {}}})  # relinked when the choice changes
    assert alias.resolve() == (tmp_path / first[1][0]).resolve()
