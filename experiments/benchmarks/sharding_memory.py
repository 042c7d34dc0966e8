"""Per-device memory of the LM training step under the memory levers: XLA's memory analysis of the compiled step.

Three tables for one dense LM (default width 512, depth 10: 31.9 M parameters, byte vocabulary, 256-byte windows):

* FSDP: parameter + optimizer (AdamW) bytes per device at fsdp = 1, 2, 4, 8 (data = 8 / fsdp), on 8 simulated
  CPU devices, against the state's total; and the step's temporary bytes per device.
* ``model.remat``: the step's temporary bytes on one device for none / dots_saveable / block.
* ``train.grad_accum``: the same for 1, 2, 4 microbatches.

Compile only: nothing is timed, so the figures do not depend on the machine's load. Run::

    python experiments/benchmarks/sharding_memory.py                 # the 31.9 M LM (several minutes on 2 cores)
    python experiments/benchmarks/sharding_memory.py --width 128 --depth 2   # a quick look
"""

from __future__ import annotations

import argparse
import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import jax

import experiments
from experiments.runner.build import build
from experiments.runner.train import TrainStep, make_optimizer


def measure(args, mesh: dict, devices, model=None, **train) -> dict:
    config = experiments.from_dict({
        "data": {"name": "text", "seq_len": args.seq},
        "model": {"name": "dense_lm", "width": args.width, "depth": args.depth, "heads": args.heads, **(model or {})},
        "optimizer": {"name": "adamw"}, "mesh": mesh,
        "train": {"batch_size": args.batch, "steps": 1, **train}})
    built = build(config, lambda m: make_optimizer(config, model=m), devices)
    step = TrainStep(built, config)
    stats = step.memory(step.leaves(built.state))
    stats["total_state_bytes"] = sum(x.nbytes for x in jax.tree.leaves(built.state))
    stats["params"] = sum(x.size for x in jax.tree.leaves(built.state["params"]))
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--only", default="fsdp,remat,accum")
    p.add_argument("--fsdp-remat", default="none", help="model.remat for the FSDP table")
    p.add_argument("--fsdp-sizes", default="1,2,4,8")
    args = p.parse_args()
    only = args.only.split(",")
    devices = jax.devices()
    print(f"machine: jax {jax.__version__}, {len(devices)} {devices[0].platform} devices "
          f"({devices[0].device_kind}); dense_lm width {args.width}, depth {args.depth}, batch {args.batch} x "
          f"{args.seq}; MB = 2^20 bytes, per device, from the compiled step's memory_analysis()")
    mb = 2.0**-20
    if "fsdp" in only:
        print(f"model.remat = {args.fsdp_remat}")
        print("fsdp  data  params (M)  state total MB  state/device MB  (x total/fsdp)  temp/device MB")
        for fsdp in map(int, args.fsdp_sizes.split(",")):
            s = measure(args, {"data": 8 // fsdp, "fsdp": fsdp}, devices, {"remat": args.fsdp_remat})
            print(f"{fsdp:4d}  {8 // fsdp:4d}  {s['params'] / 1e6:10.2f}  {s['total_state_bytes'] * mb:14.1f}  "
                  f"{s['state_bytes'] * mb:15.1f}  {s['state_bytes'] * fsdp / s['total_state_bytes']:14.3f}  "
                  f"{s['temp_bytes'] * mb:14.1f}", flush=True)
    if "remat" in only:
        print("model.remat (1 device)      temp MB")
        for remat in ("none", "dots_saveable", "block"):
            s = measure(args, {}, devices[:1], {"remat": remat})
            print(f"{remat:26s}  {s['temp_bytes'] * mb:8.1f}", flush=True)
    if "accum" in only:
        print("train.grad_accum (1 device) temp MB")
        for accum in (1, 2, 4):
            s = measure(args, {}, devices[:1], grad_accum=accum)
            print(f"{accum:26d}  {s['temp_bytes'] * mb:8.1f}", flush=True)


if __name__ == "__main__":
    main()
