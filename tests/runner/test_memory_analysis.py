"""``train.memory_analysis``: a run records what its compiled training step holds per device (XLA's memory
analysis), so a precision claim compares training memory, not weight bytes alone."""

import experiments

from .helpers import QUICKSTART


def test_a_run_records_its_training_steps_memory(tmp_path):
    config = experiments.load_config(QUICKSTART, ["train.steps=20", "train.steps_per_call=10", "train.eval_every=0",
                                                  "train.memory_analysis=true"])
    summary = experiments.run(config, tmp_path / "run", quiet=True).summary
    params = summary["param_count"] * 4  # float32 bytes
    # parameters, Adam's two moments, the step counters and the key: three copies of the parameters and a little
    assert 3 * params <= summary["step_state_bytes"] < 3 * params + 1024
    assert summary["step_temp_bytes"] > 0
    assert summary["step_memory_bytes"] == summary["step_state_bytes"] + summary["step_temp_bytes"]
