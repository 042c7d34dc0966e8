"""Speed of the JAX simulator (``quantum_opt.make_circuit``) against PennyLane's ``default.qubit`` under ``jax.jit``.

The same circuit on both sides, a quantum layer's forward and backward pass: an ansatz on 8 qubits (2 layers) fed a
batch of 256 inputs ``[256, 8]`` (``jax.vmap``), the loss the batch mean of Σ_q <Z_q>, timed as its value and its
gradient in the weights (``jax.value_and_grad``), each in one ``jax.jit``, float32.

- this toolkit: ``make_circuit(8, 2, ansatz).expval`` — the PennyLane ansatz recorded once and compiled onto
  ``quantum_opt.simulator`` (pure JAX).
- PennyLane: a QNode on ``default.qubit`` with ``interface="jax", diff_method="backprop"`` running the same ansatz
  function. PennyLane's JAX interface needs jax <= 0.10 (it calls ``jax.core.is_concrete``, removed in jax 0.11);
  on a newer jax this side is reported as not runnable.

Both must give the same values (the max absolute difference is printed). Times are medians over ``--rounds``
interleaved rounds of ``--repeats`` calls each; compile time is reported apart. Run:
    python experiments/benchmarks/simulator_speed.py [--qubits 8] [--layers 2] [--batch 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from quantum_opt import ANSATZE, make_circuit


def pennylane_expval(ansatz, n):
    """``(params, x [d]) -> [n]`` on PennyLane's default.qubit with the JAX interface (backprop)."""

    @qml.qnode(qml.device("default.qubit", wires=n), interface="jax", diff_method="backprop")
    def qnode(params, x):
        ANSATZE[ansatz](params, range(n), x)
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    return lambda params, x: jnp.stack(qnode(params, x))


def loss_fn(expval):
    return lambda params, xs: jnp.mean(jnp.sum(jax.vmap(expval, in_axes=(None, 0))(params, xs), axis=-1))


def timed(fn, args, repeats):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    return compiled, compile_s


def run_once(compiled, args, repeats):
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(compiled(*args))
    return (time.perf_counter() - t0) / repeats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--ansatz", nargs="+", default=["hardware_efficient", "reuploading"], choices=sorted(ANSATZE))
    args = ap.parse_args()
    n, L, B = args.qubits, args.layers, args.batch
    print(f"machine: jax {jax.__version__} device={jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"cpu_count={os.cpu_count()}, pennylane {qml.__version__}")
    print(f"circuit: {n} qubits, {L} layers, batch {B} of inputs [{B}, {n}], loss = batch mean of sum_q <Z_q>, float32")
    for ansatz in args.ansatz:
        c = make_circuit(n, L, ansatz)
        params = c.init(jax.random.key(0))
        xs = jax.random.uniform(jax.random.key(1), (B, n), jnp.float32, -np.pi, np.pi)
        sides = {"simulator": c.expval}
        try:
            sides["default.qubit"] = pennylane_expval(ansatz, n)
            jax.jit(sides["default.qubit"])(params, xs[0])
        except Exception as err:  # noqa: BLE001 - PennyLane's JAX interface on a jax it does not support
            sides.pop("default.qubit")
            print(f"\n[{ansatz}] PennyLane default.qubit under jax.jit cannot run on jax {jax.__version__}: "
                  f"{type(err).__name__}: {str(err).splitlines()[0][:100]}")
        fns, compile_s, values = {}, {}, {}
        for side, expval in sides.items():
            for kind, fn in (("value", loss_fn(expval)), ("value+grad", jax.value_and_grad(loss_fn(expval)))):
                fns[side, kind], compile_s[side, kind] = timed(fn, (params, xs), args.repeats)
            values[side] = np.asarray(jax.jit(jax.vmap(expval, in_axes=(None, 0)))(params, xs))
        times = {key: [] for key in fns}
        for _ in range(args.rounds):  # interleaved, so drifting load hits both sides alike
            for key, compiled in fns.items():
                times[key].append(run_once(compiled, (params, xs), args.repeats))
        print(f"\n[{ansatz}, {c.n_params} parameters]")
        for kind in ("value", "value+grad"):
            ours = statistics.median(times["simulator", kind])
            line = f"  {kind:10s}: simulator {ours * 1e3:8.2f} ms (compile {compile_s['simulator', kind]:.2f} s)"
            if ("default.qubit", kind) in times:
                theirs = statistics.median(times["default.qubit", kind])
                ratios = [t / o for t, o in zip(times["default.qubit", kind], times["simulator", kind])]
                line += (f" | default.qubit {theirs * 1e3:8.2f} ms (compile {compile_s['default.qubit', kind]:.2f} s)"
                         f" | ratio {theirs / ours:.1f}x (rounds {min(ratios):.1f}-{max(ratios):.1f}x)")
            print(line)
        if "default.qubit" in values:
            print(f"  values max |difference|: {np.abs(values['simulator'] - values['default.qubit']).max():.1e}")


if __name__ == "__main__":
    main()
