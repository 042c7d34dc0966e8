"""The experiment runner: typed configs, the one training loop, sweeps, comparisons and reports.

In Python::

    import experiments
    config = experiments.load_config("experiments/configs/quickstart.toml", overrides=["train.steps=100"])
    result = experiments.run(config, workdir="runs/quickstart")
    result.metrics        # every logged event as a pandas DataFrame
    model, config = experiments.load_run("runs/quickstart")   # a finished run back as a model
"""

from experiments.build import Frozen, frozen
from experiments.config import Config, from_dict, load_config
from experiments.errors import ConfigError, TrainingDiverged
from experiments.registry import register_hook, register_model, register_optimizer, register_task, register_transform
from experiments.report import compare
from experiments.runs import evaluate_run, load_run
from experiments.sweep import run_sweep
from experiments.task import Task
from experiments.train import RunResult, run

__all__ = [
    "Config",
    "ConfigError",
    "Frozen",
    "RunResult",
    "Task",
    "TrainingDiverged",
    "compare",
    "evaluate_run",
    "from_dict",
    "frozen",
    "load_config",
    "load_run",
    "register_hook",
    "register_model",
    "register_optimizer",
    "register_task",
    "register_transform",
    "run",
    "run_sweep",
]
