"""The experiment runner: typed configs, the one training loop, sweeps, comparisons and reports.

In Python::

    import experiments
    config = experiments.load_config("experiments/configs/quickstart.toml", overrides=["train.steps=100"])
    result = experiments.run(config, workdir="runs/quickstart")
    result.metrics        # every logged event as a pandas DataFrame
"""

from experiments.config import Config, from_dict, load_config
from experiments.errors import ConfigError, TrainingDiverged
from experiments.registry import register_hook, register_model, register_optimizer, register_task
from experiments.report import compare
from experiments.sweep import run_sweep
from experiments.task import Task
from experiments.train import RunResult, run

__all__ = [
    "Config",
    "ConfigError",
    "RunResult",
    "Task",
    "TrainingDiverged",
    "compare",
    "from_dict",
    "load_config",
    "register_hook",
    "register_model",
    "register_optimizer",
    "register_task",
    "run",
    "run_sweep",
]
