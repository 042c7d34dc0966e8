"""Runs for tests/runner/test_sharding.py on 8 simulated CPU devices; prints one JSON line of results.

Started as a subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX starts):
python tests/runner/sharded_runs.py WORKDIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

import experiments
from experiments.runner import registry
from experiments.runner.build import build, sharded_init
from experiments.runner.mesh import make_mesh, per_device_bytes
from experiments.runner.train import TrainStep, make_optimizer

LM = {"name": "dense_lm", "width": 32, "depth": 1, "heads": 4, "mlp_ratio": 2}
MOE = {**LM, "ffn": "moe", "experts": 4, "top_k": 2, "capacity_factor": 0.0}
BASE = {"seed": 0, "data": {"name": "text", "seq_len": 16}, "optimizer": {"name": "adamw", "learning_rate": 3e-3},
        "train": {"steps": 20, "batch_size": 16, "eval_every": 0, "log_every": 1, "max_eval_batches": 1,
                  "eval_batch_size": 8}}


def losses(workdir: Path, name: str, model: dict, mesh: dict, n: int, **train) -> list[float]:
    config = experiments.from_dict({**BASE, "model": model, "mesh": mesh,
                                    "train": {**BASE["train"], **train}})
    result = experiments.run(config, workdir / name, quiet=True, devices=jax.devices()[:n])
    return [float(x) for x in result.train["loss"]]


def fsdp_memory(mesh: dict) -> dict:
    """Per-device state bytes (the compiled step's memory analysis) against the state's total."""
    config = experiments.from_dict({**BASE, "model": {**LM, "width": 64}, "mesh": mesh})
    built = build(config, lambda model: make_optimizer(config, model=model))
    step = TrainStep(built, config)
    stats = step.memory(step.leaves(built.state))
    total = sum(x.nbytes for x in jax.tree.leaves(built.state))
    return {**stats, "total_state_bytes": total, "held_bytes": per_device_bytes(built.state)}


def creation_memory() -> dict:
    """The fsdp=8 creation program's bytes per device (outputs and temporaries) against the parameters' total."""
    config = experiments.from_dict({**BASE, "model": {**LM, "width": 256}, "mesh": {"data": 1, "fsdp": 8}})
    task = registry.get("task", "text").factory(config.data.cfg, key=jax.random.key(0))
    factory = registry.get("model", "dense_lm").factory
    _, init, _ = sharded_init(lambda: factory(config.model.cfg, task=task, rngs=nnx.Rngs(0)),
                              make_mesh(config.mesh), config.mesh.all_rules())
    stats = init.lower().compile().memory_analysis()
    total = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(jax.eval_shape(init)[0]))
    return {"output_bytes": int(stats.output_size_in_bytes), "temp_bytes": int(stats.temp_size_in_bytes),
            "param_bytes": int(total)}


def main(workdir: Path) -> None:
    out = {"devices": jax.device_count()}
    out["ref"] = losses(workdir, "ref", LM, {}, 1)
    out["data8"] = losses(workdir, "data8", LM, {"data": 8}, 8)
    out["fsdp8"] = losses(workdir, "fsdp8", LM, {"data": 1, "fsdp": 8}, 8, checkpoint_every=10)
    out["dp2_fsdp2_tp2"] = losses(workdir, "mixed", LM, {"data": 2, "fsdp": 2, "tensor": 2}, 8)
    out["moe_ref"] = losses(workdir, "moe_ref", MOE, {}, 1)
    out["moe_ep4_dp2"] = losses(workdir, "moe_ep", MOE, {"data": 2, "expert": 4}, 8)
    # the fsdp=8 run's checkpoint at step 10, resumed on 4 devices (fsdp=4) to step 20
    resumed = workdir / "resumed"
    shutil.copytree(workdir / "fsdp8", resumed)
    (resumed / "summary.json").unlink()
    shutil.rmtree(resumed / "checkpoints" / "20")
    out["resumed_on_4"] = losses(workdir, "resumed", LM, {"data": 1, "fsdp": 4}, 4, checkpoint_every=10)
    out["memory_fsdp8"] = fsdp_memory({"data": 1, "fsdp": 8})
    out["memory_fsdp1"] = fsdp_memory({})
    out["creation_fsdp8"] = creation_memory()
    out["ref_head"] = np.round(out["ref"][:3], 4).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    assert "device_count=8" in os.environ.get("XLA_FLAGS", ""), "set XLA_FLAGS before JAX starts"
    main(Path(sys.argv[1]))
