"""Pick one of 2^n candidates from their losses: a quantum annealing circuit and its classical twins.

Every sampler has the same signature ``sampler(losses, key) -> (index, circuit_evals)`` where ``losses`` is
``[2**n]`` (the loss at each candidate, already evaluated in one vmapped call) and ``index`` is an int32 scalar.
All are pure and jittable; the key is a ``jax.random`` key.

- ``quantum``: a discretised adiabatic evolution (a linear-ramp QAOA schedule; Farhi, Goldstone, Gutmann & Sipser
  2000, "Quantum computation by adiabatic evolution", arXiv:quant-ph/0001106; Farhi, Goldstone & Gutmann 2014,
  "A quantum approximate optimization algorithm", arXiv:1411.4028) from the uniform superposition, with the cost
  Hamiltonian DIAGONAL in the candidate losses normalised to [0, 1] (a phase per basis state) and the
  transverse-field mixer ``-sum_i X_i`` (an RX on every wire). It runs on ``quantum_opt.simulator`` (pure JAX,
  ``anneal_state``) and gives the exact computational-basis probabilities; ``shots`` bitstrings are then drawn from
  them with the key (``simulator.sample_bits``: statistically identical to a finite-shot measurement). The
  bitstring's integer value is the candidate index; among the shots the sampled candidate with the lowest loss is
  returned (best of shots).
- ``argmin``: exhaustive search over the same candidates (the bound any simulated quantum sampler obeys).
- ``anneal``: simulated annealing (Kirkpatrick, Gelatt & Vecchi 1983) over the same candidates on the same
  hypercube the mixer acts on (single bit flips), ``shots`` chains of ``layers * n`` Metropolis steps from uniform
  random starts with a geometric temperature schedule; best final state of the chains.
- ``random``: one uniformly random candidate (the perturbed-gradient-descent twin; it needs one loss evaluation,
  see ``quantum_opt.transforms.tunneling``).

No sampler evaluates a loss itself: the caller counts the evaluations (all samplers but ``random`` see all 2^n).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from quantum_opt import simulator as S

SAMPLERS = ("quantum", "argmin", "anneal", "random")


def normalise(losses: jax.Array) -> jax.Array:
    """``[C]`` losses → ``[C]`` energies in [0, 1] (min → 0, max → 1; all 0 when the losses are equal; NaN → 1)."""
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    lo = jnp.min(losses)
    finite = jnp.isfinite(losses)
    hi = jnp.max(jnp.where(finite, losses, lo))
    span = jnp.where(hi > lo, hi - lo, 1.0)
    return jnp.where(finite, (losses - lo) / span, 1.0)


def schedule(layers: int, total_time: float) -> tuple[jax.Array, jax.Array]:
    """Linear-ramp angles ``(gammas [layers], betas [layers])`` of a discretised adiabatic evolution of length
    ``total_time``: gamma_k = t_k * dt, beta_k = (1 - t_k) * dt with t_k = (k + 1/2) / layers, dt = T / layers."""
    t = (jnp.arange(layers) + 0.5) / layers
    dt = total_time / layers
    return t * dt, (1.0 - t) * dt


def anneal_state(energies: jax.Array, gammas: jax.Array, betas: jax.Array) -> jax.Array:
    """The annealing circuit's final state ``(2,)*n`` for ``energies [2**n]``, ``gammas [p]``, ``betas [p]``.

    H(s) = (1 - s) * (-sum_i X_i) + s * diag(energies), from ``|+…+>`` (Hadamard on every wire); each layer applies
    exp(-i gamma_k H_C) (a phase per candidate) then exp(-i beta_k H_M) = RX(-2 beta_k) on every wire. Wire 0 is the
    most significant bit of the candidate index (PennyLane's convention).
    """
    n_qubits = _n_qubits(energies)
    dtype = S.complex_dtype(energies, gammas, betas)
    state = S.uniform_state(n_qubits, dtype)
    wires = tuple(range(n_qubits))
    for k in range(gammas.shape[0]):
        state = S.apply_diagonal(state, jnp.exp(-1j * gammas[k] * energies), wires)
        rx = S.GATES["RX"].fn(-2.0 * betas[k])
        for w in wires:
            state = S.apply_matrix(state, rx, (w,))
    return state


def anneal_probs(losses: jax.Array, *, layers: int = 8, total_time: float = 12.0) -> jax.Array:
    """``[2**n]`` losses → ``[2**n]`` probabilities of the annealing circuit's final measurement."""
    _n_qubits(losses)
    gammas, betas = schedule(layers, total_time)
    return jnp.asarray(S.probs(anneal_state(normalise(losses), gammas, betas)), jnp.float32)


def quantum(losses, key, *, shots: int = 1, layers: int = 8, total_time: float = 12.0):
    """Sample ``shots`` bitstrings of the annealing circuit; return (best sampled index, 1 circuit execution)."""
    probs = anneal_probs(losses, layers=layers, total_time=total_time)
    idx = jax.random.categorical(key, jnp.log(jnp.maximum(probs, 1e-30)), shape=(shots,))  # = simulator shots
    return _best_of(losses, idx), jnp.int32(1)


def argmin(losses, key, **_):
    """The exhaustive twin: the index of the lowest loss (NaN counts as +inf)."""
    del key
    return jnp.argmin(jnp.where(jnp.isnan(losses), jnp.inf, losses)).astype(jnp.int32), jnp.int32(0)


def anneal(losses, key, *, shots: int = 1, layers: int = 8, t_start: float = 1.0, t_end: float = 0.01, **_):
    """Simulated annealing over the hypercube of candidate indices (bit flips), ``shots`` chains of
    ``layers * n`` Metropolis steps on the normalised losses; the best final state of the chains."""
    n_qubits = _n_qubits(losses)
    energy = normalise(losses)
    n_steps = layers * n_qubits
    temps = t_start * (t_end / t_start) ** (jnp.arange(n_steps) / max(n_steps - 1, 1))
    k_start, k_walk = jax.random.split(key)
    start = jax.random.randint(k_start, (shots,), 0, 2 ** n_qubits)

    def step(state, inputs):
        temp, k = inputs
        kb, ku = jax.random.split(k)
        bit = jax.random.randint(kb, state.shape, 0, n_qubits)
        prop = jnp.bitwise_xor(state, jnp.left_shift(1, bit))
        delta = energy[prop] - energy[state]
        ok = jax.random.uniform(ku, state.shape) < jnp.exp(-jnp.maximum(delta, 0.0) / temp)
        return jnp.where(ok, prop, state), None

    final, _ = jax.lax.scan(step, start, (temps, jax.random.split(k_walk, n_steps)))
    return _best_of(losses, final), jnp.int32(0)


def uniform(losses, key, **_):
    """The random twin: one uniformly random index."""
    return jax.random.randint(key, (), 0, losses.shape[0]).astype(jnp.int32), jnp.int32(0)


def get(name: str):
    """The sampler function called ``name`` (one of ``SAMPLERS``)."""
    table = {"quantum": quantum, "argmin": argmin, "anneal": anneal, "random": uniform}
    if name not in table:
        raise ValueError(f"sampler: got {name!r}; allowed: {', '.join(SAMPLERS)}")
    return table[name]


def _best_of(losses, idx):
    safe = jnp.where(jnp.isnan(losses), jnp.inf, losses)
    return idx[jnp.argmin(safe[idx])].astype(jnp.int32)


def _n_qubits(losses) -> int:
    c = losses.shape[0]
    n = c.bit_length() - 1
    if losses.ndim != 1 or c < 2 or 2 ** n != c:
        raise ValueError(f"losses: got shape {losses.shape}; allowed: [2**n] with n >= 1")
    return n
