"""Spiking layer speed: this toolkit (JAX) against snntorch (PyTorch), same network, same process.

Network: Linear N→N (+ bias) followed by a LIF (β = 0.9, θ = 1, reset by subtraction, atan surrogate), run for T
steps on a batch of 16 binary input spike trains; loss = sum of output spikes; one training step = forward +
backward to the weights and bias. snntorch runs the usual per-step loop (``fc(x[t])`` then ``Leaky``) on CPU
torch, timed with 1 thread and with all cores (the faster one is the baseline: under load torch's
spinning threads can be many times slower than one thread); JAX runs three variants, each jitted and compiled once (compile time printed apart):

  per-step scan   ``lax.scan`` over T with the matmul inside the body, autodiff (the "straightforward" port)
  folded + scan   ONE ``[T·16, N] @ [N, N]`` matmul, then the LIF scan differentiated by autodiff
  folded + vjp    ONE matmul, then ``spiking.lif``'s hand-written custom_vjp (elementwise forward scan; backward
                  = one reverse FMA recurrence), the default path of ``spiking.SpikingDense``

A second peer, spyx (Heckel and Nowotny, "Spyx: a library for just-in-time compiled optimization of spiking neural
networks", arXiv:2402.18994; the JAX SNN library on PyPI; 1.0.0 is Flax NNX and installs with jax 0.10.2), runs
its usual pattern: a ``lax.scan`` over T of the Linear and ``spyx.nn.LIF`` (β = 0.9, θ = 1, ``spyx.axn.arctan``
surrogate; spyx's LIF fires from the membrane before the step's input, so its spike trains differ from snntorch's
by that convention: the work per step is the same). It is skipped with a note when spyx is not installed.

Timings are medians of ``--repeats`` alternating runs (JAX and torch interleaved, so background load hits both).
With ``--lm`` it also measures the spiking LM's training step (``spiking.lm.SpikingLM`` + Adam): its useful FLOP/s,
from XLA's ``cost_analysis()["flops"]``, as a fraction of a large matmul's FLOP/s measured in the same run.

    python experiments/benchmarks/spiking_vs_snntorch.py                       # (1024, 200) and (4096, 100)
    python experiments/benchmarks/spiking_vs_snntorch.py --sizes 256x50 --repeats 3 --lm
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if "--xla-single-thread" in sys.argv:  # must be set before jax starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from spiking import lif, spike_fn  # noqa: E402

BATCH = 16
BETA, THRESHOLD = 0.9, 1.0


def jax_steps(n: int, t: int):
    """The three JAX variants as jitted ``(params, x) -> (loss, grads)``."""

    def per_step(params, x):
        w, b = params

        def step(u, xt):
            i = xt @ w + b
            r = jax.lax.stop_gradient((u - THRESHOLD > 0).astype(u.dtype))
            u = (BETA * u + i) - r * THRESHOLD
            return u, spike_fn("atan")(u - THRESHOLD)

        _, s = jax.lax.scan(step, jnp.zeros((x.shape[1], n), x.dtype), x)
        return s.sum()

    def folded(impl):
        def loss(params, x):
            w, b = params
            cur = (x.reshape(-1, n) @ w + b).reshape(x.shape[0], x.shape[1], n)
            s, _ = lif(cur, beta=BETA, threshold=THRESHOLD, impl=impl)
            return s.sum()
        return loss

    fns = {"per-step scan": per_step, "folded + scan": folded("scan"), "folded + vjp": folded("fast")}
    return {k: jax.jit(jax.value_and_grad(f)) for k, f in fns.items()}


def spyx_step(n: int, t: int):
    """spyx's Linear + LIF per-step scan as a jitted ``(params, x) -> (loss, grads)``, or None without spyx."""
    try:
        import spyx
    except ImportError:
        return None
    from flax import nnx

    neuron = spyx.nn.LIF((n,), beta=BETA, threshold=THRESHOLD, activation=spyx.axn.arctan(), rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(neuron)

    def loss(params, x):
        w, b = params
        lif_ = nnx.merge(graphdef, state)

        def step(v, xt):
            s, v = lif_(xt @ w + b, v)
            return v, s

        _, s = jax.lax.scan(step, lif_.initial_state(x.shape[1]), x)
        return s.sum()

    return jax.jit(jax.value_and_grad(loss))


def torch_step(n: int, t: int):
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    fc = torch.nn.Linear(n, n)
    neuron = snn.Leaky(beta=BETA, threshold=THRESHOLD)  # atan surrogate, subtract reset: the defaults

    def run(x):
        fc.zero_grad(set_to_none=True)
        mem = neuron.reset_mem()
        total = 0.0
        for step in range(x.shape[0]):
            spk, mem = neuron(fc(x[step]), mem)
            total = total + spk.sum()
        total.backward()
        return float(total.detach())

    return run


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


def bench_size(n: int, t: int, repeats: int, variants: list[str], threads: list[int]):
    import torch

    key = jax.random.PRNGKey(0)
    x_np = (np.asarray(jax.random.uniform(key, (t, BATCH, n))) < 0.2).astype(np.float32)
    bound = 1 / np.sqrt(n)
    w = jax.random.uniform(jax.random.PRNGKey(1), (n, n), jnp.float32, -bound, bound) * 4
    b = jnp.zeros((n,), jnp.float32)
    x = jnp.asarray(x_np)
    steps = {k: v for k, v in jax_steps(n, t).items() if k in variants}
    peer = spyx_step(n, t) if "spyx" in variants else None
    if peer is not None:
        steps["spyx"] = peer
    elif "spyx" in variants:
        print("spyx is not installed (pip install spyx): the spyx peer is skipped")
    compile_s, losses = {}, {}
    for name, f in steps.items():
        t0 = time.perf_counter()
        f = f.lower((w, b), x).compile()
        compile_s[name] = time.perf_counter() - t0
        steps[name] = f
        losses[name] = float(f((w, b), x)[0])  # warm-up run
    run_torch = torch_step(n, t)
    xt = torch.from_numpy(x_np)
    torch_names = [f"snntorch, {th} thread{'s' if th > 1 else ''}" for th in threads]
    for th in threads:
        torch.set_num_threads(th)
        run_torch(xt)  # warm-up
    times = {k: [] for k in [*steps, *torch_names]}
    for _ in range(repeats):
        for name, f in steps.items():
            times[name].append(timed(f, (w, b), x)[0])
        for th, name in zip(threads, torch_names):
            torch.set_num_threads(th)
            t0 = time.perf_counter()
            run_torch(xt)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["snntorch"] = min(med[k] for k in torch_names)
    print(f"\n(N, T) = ({n}, {t}), batch {BATCH}, forward + backward, median of {repeats}")
    for name in torch_names:
        print(f"  {name:24s} {med[name] * 1e3:10.1f} ms")
    for name in steps:
        label = name if name == "spyx" else "jax " + name
        vs_spyx = f", x{med['spyx'] / med[name]:5.2f} over spyx" if "spyx" in med and name != "spyx" else ""
        print(f"  {label:24s} {med[name] * 1e3:10.1f} ms   speed-up x{med['snntorch'] / med[name]:6.2f} "
              f"over the faster snntorch{vs_spyx}   (compile {compile_s[name]:.2f} s, spikes {losses[name]:.0f})")
    return med


def bench_lm(repeats: int, width: int, depth: int, seq_len: int, batch: int, timesteps: int, mm: int):
    """Spiking LM training step: useful FLOP/s (XLA cost analysis) as a fraction of a large matmul's FLOP/s."""
    import optax
    from flax import nnx

    from spiking.lm import SpikingLM

    a = jax.random.normal(jax.random.PRNGKey(0), (mm, mm), jnp.float32)
    matmul = jax.jit(lambda a, b: a @ b).lower(a, a).compile()
    mm_flops = 2.0 * mm ** 3
    jax.block_until_ready(matmul(a, a))
    mm_s = statistics.median(timed(matmul, a, a)[0] for _ in range(repeats))

    model = SpikingLM(width=width, depth=depth, heads=4, seq_len=seq_len, timesteps=timesteps, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    tokens = jax.random.randint(jax.random.PRNGKey(1), (batch, seq_len + 1), 0, 256)

    def step(params, opt, tokens):
        def loss(p):
            logits = nnx.merge(graphdef, p, rest)(tokens[:, :-1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
        val, g = jax.value_and_grad(loss)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, val

    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(params, opt, tokens).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost["flops"])
    jax.block_until_ready(compiled(params, opt, tokens))
    lm_s = statistics.median(timed(compiled, params, opt, tokens)[0] for _ in range(repeats))
    print(f"\nSpikingLM training step (width {width}, depth {depth}, T {timesteps}, batch {batch}x{seq_len}): "
          f"{flops / 1e9:.2f} GFLOP (XLA cost analysis), {lm_s * 1e3:.1f} ms, {flops / lm_s / 1e9:.1f} GFLOP/s "
          f"(compile {compile_s:.1f} s)")
    print(f"matmul {mm}x{mm}x{mm}: {mm_flops / mm_s / 1e9:.1f} GFLOP/s")
    print(f"LM useful FLOP/s as a fraction of the matmul's: {flops / lm_s / (mm_flops / mm_s):.1%}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1024x200,4096x100", help="comma-separated NxT")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--variants", default="per-step scan,folded + scan,folded + vjp,spyx")
    p.add_argument("--torch-threads", default="1,all", help="comma-separated torch thread counts to time")
    p.add_argument("--xla-single-thread", action="store_true", help="run XLA's CPU backend on one thread")
    p.add_argument("--lm", action="store_true", help="also measure the spiking LM step against a large matmul")
    p.add_argument("--lm-width", type=int, default=256)
    p.add_argument("--lm-depth", type=int, default=4)
    p.add_argument("--lm-seq", type=int, default=128)
    p.add_argument("--lm-batch", type=int, default=16)
    p.add_argument("--lm-timesteps", type=int, default=4)
    p.add_argument("--matmul", type=int, default=2048)
    args = p.parse_args()
    import torch
    dev = jax.devices()[0]
    try:
        from importlib.metadata import version
        spyx_version = f"spyx {version('spyx')}"
    except Exception:
        spyx_version = "no spyx"
    print(f"machine: jax {jax.__version__} on {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}; {spyx_version}; load average "
          f"{os.getloadavg()[0]:.1f}")
    variants = [v.strip() for v in args.variants.split(",")]
    # torch's threads spin under load: by default time 1 thread and all cores, and keep the faster as the baseline
    threads = sorted({int(v) if v != "all" else (os.cpu_count() or 1) for v in args.torch_threads.split(",")})
    for size in filter(None, args.sizes.split(",")):
        n, t = (int(v) for v in size.lower().split("x"))
        bench_size(n, t, args.repeats, variants, threads)
    if args.lm:
        bench_lm(args.repeats, args.lm_width, args.lm_depth, args.lm_seq, args.lm_batch, args.lm_timesteps,
                 args.matmul)


if __name__ == "__main__":
    main()
