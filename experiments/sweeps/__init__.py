"""Sweeps: a config's grid, variants and seeds expanded into runs, and the launchers that run them (this process,
local processes, a Ray cluster, a SLURM job array). Restartable: finished runs are skipped."""

from experiments.sweeps import tuning
from experiments.sweeps.expand import apply_variant, expand, slug
from experiments.sweeps.launchers import (
    Job,
    LocalPool,
    RayLauncher,
    Sequential,
    SlurmLauncher,
    last_error,
    local_devices,
    make_launcher,
    parse_options,
    slot_envs,
    worker_main,
)
from experiments.sweeps.sweep import SweepFailed, finished, in_folder, plan, run_sweep, validated

__all__ = [
    "apply_variant",
    "expand",
    "finished",
    "in_folder",
    "Job",
    "last_error",
    "local_devices",
    "LocalPool",
    "make_launcher",
    "parse_options",
    "plan",
    "RayLauncher",
    "run_sweep",
    "tuning",
    "validated",
    "Sequential",
    "slot_envs",
    "slug",
    "SlurmLauncher",
    "SweepFailed",
    "worker_main",
]
