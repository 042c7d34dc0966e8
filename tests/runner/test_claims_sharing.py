"""Claims that share an experiment share its runs; a side can read a post-training stage; a skipped size says why."""

import math
from pathlib import Path

from experiments import claims
from experiments.claims import Claim, describe_condition, judge, runs_folder, skipped_section


def _claim(sizes, experiment="lm_front.toml"):
    return Claim(Path("x.toml"), "9", "t", "s", "src", Path("/cfg") / experiment, [], sizes, [], [])


def test_claims_of_one_experiment_and_overrides_share_a_folder():
    small = {"smoke": {"variants": ["a"], "overrides": {"train.steps": 6}}, "cpu": {"variants": ["b"]}}
    other = {"smoke": {"seeds": [0], "overrides": {"train.steps": 6}}, "cpu": {}}
    assert runs_folder(_claim(small), "smoke") == runs_folder(_claim(other), "smoke")  # variants/seeds: run names
    assert runs_folder(_claim(small), "cpu") == "lm_front"
    changed = {"smoke": {"overrides": {"train.steps": 7}}}
    assert runs_folder(_claim(changed), "smoke") != runs_folder(_claim(small), "smoke")
    assert runs_folder(_claim(small, "other.toml"), "cpu") == "other"


def _run(seed, bits, stages):
    return {"variant": "dense", "dir": f"/r/dense__seed={seed}", "flat": {"seed": seed}, "values": {"bits": bits},
            "summary": {"post": [{"label": label, "metrics": {"bits": b}} for label, b in stages.items()]}}


def test_a_side_reads_the_post_stage_of_each_run():
    runs = [_run(s, 2.0 + 0.01 * s, {"prune(sparsity=0.5)": 2.1 + 0.01 * s, "prune(sparsity=0.9)": 4.0})
            for s in range(3)]
    cond = {"a": {"variant": "dense", "post": "prune(sparsity=0.5)"}, "b": {"variant": "dense"}, "metric": "bits",
            "compare": "ratio", "op": "<=", "threshold": 1.10}
    out = judge(cond, runs)  # a stage is paired with its own run: the geometric mean of the per-seed ratios
    ratios = [(2.1 + 0.01 * s) / (2.0 + 0.01 * s) for s in range(3)]
    assert out["state"] == "holds" and out["n"] == (3, 3) and out["paired"]
    assert abs(out["estimate"] - math.exp(sum(map(math.log, ratios)) / 3)) < 1e-12
    assert judge({**cond, "a": {"variant": "dense", "post": "prune(sparsity=0.9)"}}, runs)["state"] == "fails"
    assert judge({**cond, "a": {"variant": "dense", "post": "quantize"}}, runs)["state"] == "missing"
    assert "dense + prune(sparsity=0.5) / of dense" in describe_condition(cond)


def test_a_skipped_size_plans_nothing_and_says_why():
    claim = _claim({"cpu": {"skip": "needs a GPU: no cuDNN here"}})
    assert claims.plan(claim, "cpu") == []
    text = "\n".join(skipped_section(claim, "cpu"))
    assert "Not run at size `cpu`:** needs a GPU: no cuDNN here" in text and "Verdict: not run" in text


def test_a_run_names_an_earlier_run_of_its_sweep(tmp_path):
    import json

    from experiments.analysis import own_seed_named
    from experiments.runner import from_dict
    from experiments.sweeps import in_folder

    cfg = from_dict({"seed": 2, "data": {"name": "digits"}, "model": {"name": "mlp"},
                     "train": {"target_metric": "{sweep}/teacher__seed={seed}"}})
    filled = in_folder(cfg, tmp_path)
    assert filled.train.target_metric == f"{tmp_path.resolve()}/teacher__seed=2" and filled.seed == 2
    plain = from_dict({"data": {"name": "digits"}, "model": {"name": "mlp"}})
    assert in_folder(plain, tmp_path) is plain
    flats = [own_seed_named(json.loads(json.dumps({**filled.raw, "seed": s,
                                                    "train": {"target_metric": f"/x/teacher__seed={s}"}})))
             for s in (2, 12)]
    assert flats[0]["train.target_metric"] == flats[1]["train.target_metric"] == "/x/teacher__seed={seed}"
