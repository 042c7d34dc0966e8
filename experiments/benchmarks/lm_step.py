"""LM training-step speed: the dense (or spiking, or MoE) LM's useful FLOP/s against a large matmul's, same process,
and its MFU (model FLOPs utilisation, PaLM appendix B: 6·N + 12·L·H·Q·T model FLOPs per token, ``spiking.measure.
model_flops_per_token``, over the device's peak: ``experiments.runner.mfu``, the table's for a GPU or TPU, the large
matmul's measured FLOP/s on a CPU).

One step = the text task's loss (``spiking.registry.lm_loss``: cross-entropy, plus aux losses for MoE), its
gradient, clipping and AdamW, jitted as the runner jits it (split once, pure step, donated state), scanned over
``--steps-per-call`` steps per call. FLOPs per step are XLA's ``cost_analysis()`` of one un-scanned step. The
matmul is a float32 ``[M, M] @ [M, M]`` (2 M³ FLOPs). Timings interleave step calls and matmuls (so background load
hits both); medians of ``--repeats``, and the ratio is printed with the machine (device kind, cores, load).

    python experiments/benchmarks/lm_step.py                           # the shipped dense_lm.toml size
    python experiments/benchmarks/lm_step.py --model spiking_lm --timesteps 1
    python experiments/benchmarks/lm_step.py --width 128 --depth 4 --seq 128 --batch 32   # the issue's old size
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from experiments.runner.mfu import peak_flops
from spiking.lm import DenseLM, SpikingLM
from spiking.measure import model_flops_per_token
from spiking.registry import lm_loss


def lm_step(model, batch: int, seq: int, steps_per_call: int):
    """``(jitted n-step function, state, FLOPs of one step)`` for ``model`` on random byte windows."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3))
    tokens = jax.random.randint(jax.random.key(1), (batch, seq + 1), 0, 256)
    state = {"params": params, "rest": rest, "opt": tx.init(params)}

    def one(state, _):
        def loss(p):
            m = nnx.merge(graphdef, p, state["rest"], copy=True)
            m.train()
            value, _ = lm_loss(m, {"tokens": tokens}, None, True)
            return value, nnx.split(m, nnx.Param, ...)[2]

        (value, rest), g = jax.value_and_grad(loss, has_aux=True)(state["params"])
        upd, opt = tx.update(g, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], upd), "rest": rest, "opt": opt}, value

    cost = jax.jit(lambda s: one(s, None)).lower(state).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    run = jax.jit(lambda s: jax.lax.scan(one, s, None, length=steps_per_call), donate_argnums=0)
    return run, state, float(cost["flops"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="dense_lm", choices=("dense_lm", "spiking_lm", "moe_lm"))
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--timesteps", type=int, default=1)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--steps-per-call", type=int, default=5)
    p.add_argument("--matmul", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--remat", default="none", help="model.remat: none | block | a jax.checkpoint_policies name")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    args = p.parse_args()
    dev = jax.devices()[0]
    print(f"machine: jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    kw = {"width": args.width, "depth": args.depth, "heads": args.heads, "seq_len": args.seq,
          "mlp_ratio": args.mlp_ratio, "remat": args.remat, "dtype": args.dtype, "rngs": nnx.Rngs(0)}
    if args.model == "spiking_lm":
        model = SpikingLM(timesteps=args.timesteps, **kw)
    elif args.model == "moe_lm":
        model = DenseLM(ffn="moe", experts=args.experts, top_k=args.top_k, **kw)
    else:
        model = DenseLM(**kw)
    t0 = time.perf_counter()
    run, state, flops = lm_step(model, args.batch, args.seq, args.steps_per_call)
    state, _ = run(state)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    a = jax.random.normal(jax.random.key(0), (args.matmul, args.matmul), jnp.float32)
    matmul = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(matmul(a, a))
    step_s, mm_s = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state, _ = run(state)
        jax.block_until_ready(state)
        step_s.append((time.perf_counter() - t0) / args.steps_per_call)
        t0 = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        mm_s.append(time.perf_counter() - t0)
    step, mm = statistics.median(step_s), statistics.median(mm_s)
    mm_rate = 2.0 * args.matmul ** 3 / mm
    params = sum(x.size for x in jax.tree.leaves(state["params"]))
    print(f"{args.model} width {args.width}, depth {args.depth}, heads {args.heads}, batch {args.batch} x "
          f"{args.seq}, {params / 1e6:.2f} M parameters: {flops / 1e9:.1f} GFLOP per step (XLA cost analysis), "
          f"{step * 1e3:.0f} ms per step, {flops / step / 1e9:.1f} GFLOP/s (first call with compile "
          f"{compile_s:.1f} s)")
    print(f"matmul {args.matmul}^3 float32: {mm * 1e3:.0f} ms, {mm_rate / 1e9:.1f} GFLOP/s")
    print(f"LM step FLOP/s / matmul FLOP/s: {flops / step / mm_rate:.1%} (goal >= 50%)")
    per_token = model_flops_per_token(model, args.seq)
    tokens_s = args.batch * args.seq / step
    peak, source = (mm_rate, f"measured: this {args.matmul}^3 float32 matmul") if dev.platform == "cpu" else \
        peak_flops(dev, args.dtype)
    print(f"MFU: {per_token / 1e6:.2f} MFLOP per token (6N + 12LHQT) x {tokens_s:,.0f} tokens/s = "
          f"{per_token * tokens_s / 1e9:.1f} GFLOP/s model FLOPs over a peak of {peak / 1e9:.1f} GFLOP/s ({source}): "
          f"MFU {per_token * tokens_s / peak:.1%}")


if __name__ == "__main__":
    main()
