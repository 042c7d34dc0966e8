"""The experiment runner: typed configs, the one training loop, sweeps, comparisons and reports.

In Python::

    import experiments
    config = experiments.load_config("experiments/configs/quickstart.toml", overrides=["train.steps=100"])
    result = experiments.run(config, workdir="runs/quickstart")
    result.metrics        # every logged event as a pandas DataFrame
    model, config = experiments.load_run("runs/quickstart")   # a finished run back as a model

This module is the public facade: research code and the paths' glue modules (``spiking/registry.py`` ...) import
from here, never from the rooms below, so the rooms can move without reaching them. The rooms, each a subpackage,
with dependencies pointing one way (``tests/runner/test_architecture.py`` checks it):

    errors      the error types (imports nothing)
    analysis    reading run folders, intervals over seeds, power-law fits      → errors
    runner      registry, configs, the training loop, stages, checkpoints      → analysis (its own events), errors
    sweeps      expanding and launching a config's runs                        → runner
    reports     compare tables, post-stage tables, fronts, scaling, plots     → analysis
    claims      claim files, verdicts, fits, the report's sections, the suite  → sweeps, reports, analysis, runner
    __main__    the command line                                               → all
"""

from experiments.errors import ConfigError, TrainingDiverged
from experiments.reports.compare import compare
from experiments.runner.build import Frozen, frozen
from experiments.runner.config import Config, from_dict, load_config
from experiments.runner.data import HostFeed, TokenDir, TokenReader, eval_windows, token_dtype, window_starts
from experiments.runner.fields import at_least, positive
from experiments.runner.prepare import prepare_data
from experiments.runner.registry import (
    HookContext,
    build_optimizer,
    get,
    names,
    register_hook,
    register_model,
    register_optimizer,
    register_task,
    register_transform,
)
from experiments.runner.runs import evaluate_run, load_run
from experiments.runner.task import Task
from experiments.runner.train import RunResult, run
from experiments.sweeps.sweep import run_sweep

__all__ = [
    "Config",
    "ConfigError",
    "Frozen",
    "HookContext",
    "HostFeed",
    "RunResult",
    "Task",
    "TokenDir",
    "TokenReader",
    "TrainingDiverged",
    "at_least",
    "build_optimizer",
    "compare",
    "eval_windows",
    "evaluate_run",
    "from_dict",
    "frozen",
    "get",
    "load_config",
    "load_run",
    "names",
    "positive",
    "prepare_data",
    "register_hook",
    "register_model",
    "register_optimizer",
    "register_task",
    "register_transform",
    "run",
    "run_sweep",
    "token_dtype",
    "window_starts",
]
