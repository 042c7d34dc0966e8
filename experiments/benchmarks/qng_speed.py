"""Speed of one quantum-natural-gradient step: ``quantum_opt.qng`` (jitted) against PennyLane's ``qml.QNGOptimizer``.

Circuit (both sides): ``quantum_opt.hardware_efficient`` on 8 qubits (RY, RZ on every wire + a CNOT ladder per
layer; 2 layers = 32 parameters) with the transverse-field Ising energy H = Σ Z_i Z_{i+1} + 0.5 Σ X_i, on
``default.qubit``. One step = metric + gradient + update, θ ← θ − η (g + λI)^{-1} ∇E.

- this toolkit: ``qng(η, metric_fn=..., regularization=λ)`` with the exact metric from the state Jacobian of the
  JAX simulator (``make_circuit``'s ``state``, ``fubini_study_metric``) or its block-diagonal approximation (``block_diagonal_metric`` with PennyLane's own
  parametrised layers as blocks), gradient by backprop, the whole step in one ``jax.jit``; float64
  (``jax_enable_x64``) so both sides compute in the same precision. Compile time is reported apart; the time is the
  median of ``--repeats`` calls.
- PennyLane: ``qml.QNGOptimizer(stepsize=η, approx=..., lam=λ).step(cost, θ)`` with the **autograd** interface
  (``pennylane.numpy``), because ``qml.metric_tensor`` fails under the JAX interface on jax >= 0.10. ``approx="block-diag"``: one circuit per parametrised layer; ``approx=None`` (full):
  Hadamard tests on an auxiliary wire, so that QNode runs on 9 wires. Timed as the median of ``--pl-repeats`` steps
  after one warm-up step.

Both must give the same first update (the max absolute difference is printed). Run:
    python experiments/benchmarks/qng_speed.py [--qubits 8] [--layers 2] [--repeats 200] [--pl-repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import optax
import pennylane as qml
from pennylane import numpy as pnp

from quantum_opt import block_diagonal_metric, fubini_study_metric, hardware_efficient, make_circuit, qng
from quantum_opt.circuits import time_compile_and_run


def ising(n: int, field: float = 0.5):
    coeffs = [1.0] * (n - 1) + [field] * n
    ops = [qml.PauliZ(i) @ qml.PauliZ(i + 1) for i in range(n - 1)] + [qml.PauliX(i) for i in range(n)]
    return qml.Hamiltonian(coeffs, ops)


def pennylane_qng(n, layers, H, approx, lr, lam):
    """PennyLane's optimizer and its cost QNode (autograd); full metric needs one auxiliary wire."""
    dev = qml.device("default.qubit", wires=n + (1 if approx is None else 0))

    @qml.qnode(dev, interface="autograd")
    def cost(p):
        hardware_efficient(p, range(n))
        return qml.expval(H)

    return qml.QNGOptimizer(stepsize=lr, approx=approx, lam=lam), cost


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--pl-repeats", type=int, default=7)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--approx", choices=["block-diag", "full", "both"], default="both")
    args = ap.parse_args()
    n, L = args.qubits, args.layers
    H = ising(n)
    c = make_circuit(n, L, "hardware_efficient", hamiltonian=H)
    theta0 = np.random.default_rng(0).uniform(-np.pi, np.pi, c.param_shape)
    print(f"machine: jax {jax.__version__} device={jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"cpu_count={os.cpu_count()}, pennylane {qml.__version__}")
    print(f"circuit: hardware_efficient, {n} qubits, {L} layers, {c.n_params} parameters, H = Ising ZZ + 0.5 X")
    approxes = ["block-diag", None] if args.approx == "both" else [None if args.approx == "full" else "block-diag"]
    for approx in approxes:
        name = "full" if approx is None else approx
        opt, cost = pennylane_qng(n, L, H, approx, args.lr, args.lam)
        p_pl = pnp.array(theta0, requires_grad=True)
        t0 = time.perf_counter()
        first_pl = np.asarray(opt.step(cost, p_pl))  # warm-up step, also the reference update
        pl_first_s = time.perf_counter() - t0
        times = []
        p = p_pl
        for _ in range(args.pl_repeats):
            t0 = time.perf_counter()
            p = opt.step(cost, p)
            times.append(time.perf_counter() - t0)
        pl_s = statistics.median(times)

        if approx is None:
            metric_fn = lambda q: fubini_study_metric(c.state, q)
        else:
            layers = [list(lay.param_inds) for lay in qml.workflow.construct_tape(cost)(p_pl).graph.parametrized_layers]
            metric_fn = lambda q, layers=layers: block_diagonal_metric(c.state, q, layers)
        tx = qng(args.lr, metric_fn=metric_fn, regularization=args.lam)

        def step(q, s, tx=tx):
            u, s = tx.update(jax.grad(c.expval)(q), s, q)
            return optax.apply_updates(q, u), s

        q0 = jnp.asarray(theta0)
        timing = time_compile_and_run(step, q0, tx.init(q0), repeats=args.repeats)
        ours_first = np.asarray(jax.jit(step)(q0, tx.init(q0))[0])
        diff = float(np.abs(ours_first - first_pl).max())
        ratio = pl_s / timing["run_s"]
        print(f"\n[{name} metric]")
        print(f"  quantum_opt.qng (jit): {timing['run_s'] * 1e3:9.3f} ms/step (median of {args.repeats}; "
              f"min {timing['run_min_s'] * 1e3:.3f} ms), compile {timing['compile_s']:.2f} s, "
              f"first call {timing['first_call_s'] * 1e3:.2f} ms")
        print(f"  qml.QNGOptimizer (autograd, approx={approx!r}): {pl_s * 1e3:9.1f} ms/step "
              f"(median of {args.pl_repeats}; first step {pl_first_s * 1e3:.1f} ms)")
        print(f"  ratio PennyLane / quantum_opt: {ratio:.1f}x")
        print(f"  first-step update max |difference|: {diff:.2e}")


if __name__ == "__main__":
    main()
