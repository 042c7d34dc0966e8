"""The memory levers on one device: ``train.grad_accum`` gives the large batch's losses (1e-5) with less temporary
memory; ``model.remat`` gives the same losses and lowers the compiled step's temporary memory."""

import numpy as np
import pytest

import experiments
from experiments.runner.build import build
from experiments.runner.train import TrainStep, make_optimizer

LM = {"name": "dense_lm", "width": 32, "depth": 2, "heads": 4, "mlp_ratio": 2}


def _config(model=None, **train):
    return experiments.from_dict({
        "seed": 0, "data": {"name": "text", "seq_len": 32}, "model": {**LM, **(model or {})},
        "optimizer": {"name": "adamw", "learning_rate": 3e-3},
        "train": {"steps": 10, "batch_size": 16, "eval_every": 0, "log_every": 1, "max_eval_batches": 1,
                  "eval_batch_size": 8, **train}})


def _losses(tmp_path, name, config):
    return experiments.run(config, tmp_path / name, quiet=True).train["loss"].to_numpy()


def _memory(config) -> dict:
    built = build(config, lambda model: make_optimizer(config, model=model))
    step = TrainStep(built, config)
    return step.memory(step.leaves(built.state))


def test_grad_accum_equals_the_large_batch(tmp_path):
    ref = _losses(tmp_path, "ref", _config())
    accum = _losses(tmp_path, "accum", _config(grad_accum=4))
    assert len(ref) == 10 and ref[-1] < ref[0] - 0.5
    np.testing.assert_allclose(accum, ref, atol=1e-5, rtol=0)
    assert _memory(_config(grad_accum=4))["temp_bytes"] < _memory(_config())["temp_bytes"]


def test_remat_keeps_losses_and_lowers_temporary_memory(tmp_path):
    model = {"width": 64, "depth": 4}
    ref = _losses(tmp_path, "none", _config(model, steps=3))
    block = _losses(tmp_path, "block", _config({**model, "remat": "block"}, steps=3))
    np.testing.assert_allclose(block, ref, atol=1e-5, rtol=0)
    temp = {r: _memory(_config({**model, "remat": r}))["temp_bytes"] for r in ("none", "dots_saveable", "block")}
    assert temp["block"] < temp["none"], temp
    assert temp["block"] <= temp["dots_saveable"] <= temp["none"], temp


@pytest.mark.parametrize("override, message", [
    ({"train": {"batch_size": 16, "grad_accum": 3}}, "train.grad_accum: 3 is not allowed with batch_size 16"),
    ({"model": {**LM, "remat": "sometimes"}}, "model.remat: 'sometimes' is not allowed"),
])
def test_bad_lever_is_one_line(override, message):
    with pytest.raises(experiments.ConfigError) as err:
        experiments.from_dict({"data": {"name": "text"}, "model": LM, **override})
    assert message in str(err.value) and "\n" not in str(err.value)
