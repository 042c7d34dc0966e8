"""Mixture-of-experts feed-forward speed against a dense FFN of equal active FLOPs, same process.

MoE: ``spiking.moe.MoEFeedForward`` with E experts of hidden H, top-k, capacity factor c (defaults E = 8, k = 2,
c = 1.25, so the expert matmuls run on c·N·k/E rows each); dense: the two-Linear GELU MLP of hidden k·H, i.e. the
same multiply-accumulates per token as the k experts a token uses (the MoE adds the router, D·E per token, and
the capacity slack, c − 1). One training step = forward + backward to every parameter and the input, loss = sum
of squares of the output, on ``[B, L, D]`` float32 activations. Both are jitted and compiled once (compile time
apart); timings interleave MoE and dense (so background load hits both) and the ratio is taken per pair: its
median and interquartile range are printed, with the machine (device kind, cores, load average).

    python experiments/benchmarks/moe_speed.py                      # D 128, H 256, B·L 32·128, E 8, top-2, c 1.25
    python experiments/benchmarks/moe_speed.py --dispatch einsum    # one-hot einsum dispatch instead of gather
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spiking.moe import MoEFeedForward


class DenseFFN(nnx.Module):
    def __init__(self, width: int, hidden: int, *, rngs: nnx.Rngs):
        self.w1, self.w2 = nnx.Linear(width, hidden, rngs=rngs), nnx.Linear(hidden, width, rngs=rngs)

    def __call__(self, x):
        return self.w2(jax.nn.gelu(self.w1(x)))


def train_step(module):
    """Jitted ``(params, x) -> (loss, grads)`` of ``module``: forward + backward to parameters and input."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def loss(p, x):
        return jnp.sum(nnx.merge(graphdef, p, rest)(x) ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), params


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256, help="each expert's hidden width H")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--capacity", type=float, default=1.25)
    p.add_argument("--dispatch", default="gather", choices=("gather", "einsum"))
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    dev = jax.devices()[0]
    print(f"machine: jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    rngs = nnx.Rngs(0)
    moe = MoEFeedForward(args.width, args.hidden, experts=args.experts, top_k=args.top_k,
                         capacity_factor=args.capacity, dispatch=args.dispatch, rngs=rngs)
    dense = DenseFFN(args.width, args.top_k * args.hidden, rngs=rngs)
    x = jax.random.normal(jax.random.key(1), (args.batch, args.seq, args.width))
    fns = {}
    for name, module in (("moe", moe), ("dense", dense)):
        f, params = train_step(module)
        t0 = time.perf_counter()
        compiled = f.lower(params, x).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        fns[name] = (compiled, params, time.perf_counter() - t0, float(cost.get("flops", float("nan"))))
        jax.block_until_ready(compiled(params, x))  # warm-up
    times = {"moe": [], "dense": []}
    for _ in range(args.repeats):
        for name, (f, params, _, _) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(params, x))
            times[name].append(time.perf_counter() - t0)
    ratios = np.array(times["moe"]) / np.array(times["dense"])
    n = args.batch * args.seq
    print(f"\ntokens {n} (batch {args.batch} x {args.seq}), width {args.width}; MoE: {args.experts} experts of hidden "
          f"{args.hidden}, top-{args.top_k}, capacity {args.capacity}, {args.dispatch} dispatch; dense: hidden "
          f"{args.top_k * args.hidden}; forward + backward, {args.repeats} interleaved pairs")
    for name, (_, _, compile_s, flops) in fns.items():
        t = times[name]
        print(f"  {name:6s} median {statistics.median(t) * 1e3:8.2f} ms  (min {min(t) * 1e3:.2f}, max "
              f"{max(t) * 1e3:.2f})  XLA flops {flops / 1e9:.2f} G  compile {compile_s:.1f} s")
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    print(f"  MoE / dense time: {med:.2f}x (interquartile {q1:.2f}-{q3:.2f}; goal <= 1.3x)")


if __name__ == "__main__":
    main()
