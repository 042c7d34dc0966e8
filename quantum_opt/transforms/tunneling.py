"""``tunneling(inner)``: any optax optimizer plus sampled jumps off plateaus ("QAdam" with ``optax.adam``).

The claim under test (no paper found): a quantum-enhanced Adam escapes flat minima by "quantum tunnelling" and needs
~10% fewer epochs. This module makes it concrete and gives it classical twins that see the same loss evaluations.

Plateau rule (``rule``):
  - ``"window"``: with L_t the loss passed as ``value`` at step t, a plateau is declared when at least ``window``
    steps have passed since the last jump attempt and L_{t-window} - L_t < ``threshold`` (absolute improvement over
    the last ``window`` steps below the threshold).
  - ``"small_grad"`` (Jin, Ge, Netrapalli, Kakade & Jordan 2017, "How to escape saddle points efficiently",
    arXiv:1703.00887): ||g_t|| <= ``threshold`` and at least ``window`` steps since the last jump attempt
    (their t_thres cooldown).
Jump: with 2^n candidates (n = ``n_qubits``), D = 2^n / len(step_sizes) unit directions in parameter space
(``"random"``: Gaussian; ``"momentum"``: the first is minus an EMA of the gradients, the rest Gaussian;
``"curvature"``: top-|eigenvalue| Hessian directions by ``power_iters`` rounds of subspace iteration with
central-difference Hessian-vector products of ``grad_fn``, each counted as 2 gradient evaluations) times the
``step_sizes`` (norms), candidate c = d_{c // S} * s_{c % S}. The loss of all candidates is evaluated in ONE
vmapped call of ``value_fn`` (2^n loss evaluations) and the sampler (``quantum_opt.samplers``) picks one:
``"quantum"`` (annealing circuit, best of ``shots`` samples), ``"argmin"``, ``"anneal"`` (simulated annealing over
the same losses), ``"random"`` (a uniformly random candidate: a random jump of the candidates' norm; only its own
loss is evaluated, 1 evaluation). Acceptance (``accept``): ``"improve"`` takes the jump iff its loss is finite and
below the current loss ``value`` (same batch), else the step is the inner optimizer's update; ``"always"`` takes
any finite jump. The inner optimizer's state advances on every step. Off a plateau the update IS the inner update.

Counters in the state: ``loss_evals``, ``grad_evals``, ``circuit_evals`` (the runner reports every ``*_evals``
field) and ``jumps`` (accepted jumps). The runner's own value-and-grad per step is not counted here.

Also here, the baselines of the same comparison: ``sam`` (optax.contrib.sam in opaque mode, Foret et al. 2021,
arXiv:2010.01412, counting its extra gradient evaluations) and ``perturbed`` (perturbed gradient descent, Jin et al.
2017: a uniform jump in a ball of radius r when the gradient is small, no extra evaluations).

Call ``update(grads, state, params, value=loss, value_fn=f, grad_fn=g)``; params may be any pytree (an nnx.State).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from quantum_opt import samplers
from quantum_opt.transforms.keys import key_data

RULES = ("window", "small_grad")
DIRECTIONS = ("random", "momentum", "curvature")
ACCEPT = ("improve", "always")


class TunnelingState(NamedTuple):
    inner_state: Any
    key: jax.Array  # raw uint32 key data
    history: jax.Array  # [window] ring of recent losses
    count: jax.Array  # steps since the last jump attempt
    trace: Any  # EMA of the gradients ("momentum" directions) or ()
    loss_evals: jax.Array
    grad_evals: jax.Array
    circuit_evals: jax.Array
    jumps: jax.Array


def _unit(v, axis=-1):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=axis, keepdims=True), 1e-12)


def _check_args(sampler, rule, directions, accept, window, n_qubits, shots, step_sizes) -> tuple[float, ...]:
    """``tunneling``'s arguments checked (one ValueError naming the bad one); the step sizes as floats."""
    _check(sampler, "sampler", samplers.SAMPLERS)
    _check(rule, "rule", RULES)
    _check(directions, "directions", DIRECTIONS)
    _check(accept, "accept", ACCEPT)
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window: got {window!r}; allowed: an int >= 1")
    if not isinstance(n_qubits, int) or not 1 <= n_qubits <= 12:
        raise ValueError(f"n_qubits: got {n_qubits!r}; allowed: an int in 1..12")
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots: got {shots!r}; allowed: an int >= 1")
    step_sizes = tuple(float(s) for s in step_sizes)
    n_cand = 2 ** n_qubits
    if not step_sizes or n_cand % len(step_sizes):
        raise ValueError(f"step_sizes: got {step_sizes!r}; allowed: 1..{n_cand} sizes whose count divides 2^n_qubits")
    return step_sizes


def _directions(kind, n_dir, x, unravel, key, trace, grad_fn, power_iters, hvp_eps):
    """``n_dir`` unit jump directions ``[n_dir, P]`` of ``kind`` and the gradient evaluations they cost."""
    rand = _unit(jax.random.normal(key, (n_dir, x.shape[0]), x.dtype))
    if kind == "random":
        return rand, jnp.int32(0)
    if kind == "momentum":
        m, _ = ravel_pytree(trace)
        return rand.at[0].set(_unit(-m)), jnp.int32(0)
    flat_grad = lambda v: ravel_pytree(grad_fn(unravel(v)))[0]
    basis = curvature_directions(flat_grad, x, rand, power_iters=power_iters, eps=hvp_eps)
    return basis, jnp.int32(2 * n_dir * power_iters)


def _pick_jump(cands, x, unravel, value, value_fn, inner_updates, g_evals, key, *, pick, pick_kw, sampler, accept):
    """The sampler's candidate among ``cands [N, P]`` as an update (the inner one where it is not accepted), and
    the evaluation counts ``[loss, grad, circuit, jumped]``."""
    n_cand = cands.shape[0]
    f = lambda v: jnp.asarray(value_fn(unravel(v)), jnp.float32)
    if sampler == "random":
        idx, c_evals = pick(jnp.zeros((n_cand,)), key)
        cand_loss, l_evals = f(cands[idx]), 1
    else:
        losses = jax.vmap(f)(cands)
        idx, c_evals = pick(losses, key, **pick_kw)
        cand_loss, l_evals = losses[idx], n_cand
    ok = jnp.isfinite(cand_loss) & ((cand_loss < value) if accept == "improve" else True)
    delta = unravel(cands[idx] - x)
    out = jax.tree.map(lambda d, u: jnp.where(ok, d.astype(u.dtype), u), delta, inner_updates)
    return out, jnp.stack([jnp.int32(l_evals), g_evals, c_evals, ok.astype(jnp.int32)])


def tunneling(inner: optax.GradientTransformation, *, key, sampler: str = "quantum", rule: str = "window",
              window: int = 20, threshold: float = 1e-3, n_qubits: int = 4,
              directions: str = "random", step_sizes: Sequence[float] = (0.25, 0.5, 1.0, 2.0), shots: int = 1,
              layers: int = 8, total_time: float = 12.0, accept: str = "improve", momentum: float = 0.9,
              power_iters: int = 3, hvp_eps: float = 1e-3) -> optax.GradientTransformationExtraArgs:
    """Wrap ``inner`` with plateau jumps picked by ``sampler`` (see the module docstring for every rule).

    Args:
      inner: any optax transformation (its extra args are passed through).
      key: a jax.random key (required keyword) for the jump directions and the sampler.
      sampler: "quantum" | "argmin" | "anneal" | "random".
      rule: "window" | "small_grad"; window: steps (window / cooldown); threshold: loss improvement or grad norm.
      n_qubits: 2^n_qubits candidates; directions: "random" | "momentum" | "curvature";
      step_sizes: jump norms (len must divide 2^n_qubits); shots, layers, total_time: the annealing circuit and
      the simulated-annealing twin; accept: "improve" | "always".
    """
    step_sizes = _check_args(sampler, rule, directions, accept, window, n_qubits, shots, step_sizes)
    n_cand = 2 ** n_qubits
    n_dir = n_cand // len(step_sizes)
    sizes = jnp.asarray(step_sizes, jnp.float32)
    pick = samplers.get(sampler)
    pick_kw = {"shots": shots, "layers": layers, "total_time": total_time}
    inner = optax.with_extra_args_support(inner)
    key0 = key_data(key)

    def init(params):
        trace = jax.tree.map(jnp.zeros_like, params) if directions == "momentum" else ()
        zero = lambda: jnp.zeros((), jnp.int32)  # distinct buffers: a runner may donate the whole state
        return TunnelingState(inner.init(params), jnp.array(key0), jnp.zeros((window,), jnp.float32), zero(), trace,
                              zero(), zero(), zero(), zero())

    def update(updates, state, params=None, *, value=None, value_fn=None, grad_fn=None, **extra):
        if params is None or value is None or value_fn is None:
            raise ValueError("update: tunneling needs params, value=loss and value_fn=f (the runner passes them)")
        if directions == "curvature" and grad_fn is None:
            raise ValueError("grad_fn: got None; directions='curvature' needs grad_fn")
        inner_updates, inner_state = inner.update(updates, state.inner_state, params, value=value,
                                                  value_fn=value_fn, grad_fn=grad_fn, **extra)
        # The barrier keeps XLA from fusing the inner update with the jump code, so off a plateau the result is
        # bit-for-bit the inner optimizer's (without it, a different fusion can change the last bit).
        inner_updates = jax.lax.optimization_barrier(inner_updates)
        value = jnp.asarray(value, jnp.float32)
        trace = state.trace
        if directions == "momentum":
            trace = jax.tree.map(lambda t, g: momentum * t + (1 - momentum) * g, trace, updates)
        key, k_dir, k_pick = jax.random.split(jax.random.wrap_key_data(state.key), 3)
        slot = state.count % window
        if rule == "window":
            plateau = (state.count >= window) & (state.history[slot] - value < threshold)
        else:
            plateau = (state.count >= window) & (optax.tree.norm(updates) <= threshold)

        def jump(_):
            x, unravel = ravel_pytree(params)
            dirs, g_evals = _directions(directions, n_dir, x, unravel, k_dir, trace, grad_fn, power_iters, hvp_eps)
            cands = x[None] + (dirs[:, None, :] * sizes[None, :, None]).reshape(n_cand, -1)
            return _pick_jump(cands, x, unravel, value, value_fn, inner_updates, g_evals, k_pick,
                              pick=pick, pick_kw=pick_kw, sampler=sampler, accept=accept)

        def keep(_):
            return inner_updates, jnp.zeros((4,), jnp.int32)

        new_updates, counts = jax.lax.cond(plateau, jump, keep, None)
        history = state.history.at[slot].set(value)
        count = jnp.where(plateau, 0, state.count + 1).astype(jnp.int32)
        return new_updates, TunnelingState(
            inner_state, jax.random.key_data(key), history, count, trace, state.loss_evals + counts[0],
            state.grad_evals + counts[1], state.circuit_evals + counts[2], state.jumps + counts[3])

    return optax.GradientTransformationExtraArgs(init, update)


def curvature_directions(flat_grad: Callable[[jax.Array], jax.Array], x: jax.Array, init: jax.Array, *,
                         power_iters: int = 3, eps: float = 1e-3) -> jax.Array:
    """Top-|eigenvalue| Hessian directions ``[D, P]`` at ``x [P]`` by subspace iteration from ``init [D, P]``, with
    central-difference Hessian-vector products Hv = (g(x + eps v) - g(x - eps v)) / (2 eps) of ``flat_grad``
    (2 * D * power_iters gradient evaluations); rows orthonormal."""
    hvp = lambda v: (flat_grad(x + eps * v) - flat_grad(x - eps * v)) / (2 * eps)
    basis = _unit(init)
    for _ in range(power_iters):
        q, _ = jnp.linalg.qr(jax.vmap(hvp)(basis).T)
        basis = q.T
    return basis


class SamState(NamedTuple):
    inner: Any  # optax.contrib.SAMState
    grad_evals: jax.Array


def sam(inner: optax.GradientTransformation, *, rho: float = 0.05, sync_period: int = 2
        ) -> optax.GradientTransformationExtraArgs:
    """``optax.contrib.sam`` (opaque mode: the adversarial step x + rho g/||g|| is taken inside ``update`` through
    ``grad_fn``) with ``inner`` as the outer optimizer; counts its ``sync_period - 1`` extra gradient evaluations."""
    if not rho > 0:
        raise ValueError(f"rho: got {rho!r}; allowed: a float > 0")
    if not isinstance(sync_period, int) or sync_period < 2:
        raise ValueError(f"sync_period: got {sync_period!r}; allowed: an int >= 2")
    adv = optax.chain(optax.contrib.normalize(), optax.sgd(rho))
    tx = optax.contrib.sam(inner, adv, sync_period=sync_period, opaque_mode=True)

    def init(params):
        return SamState(tx.init(params), jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *, grad_fn=None, **extra):
        if grad_fn is None:
            raise ValueError("grad_fn: got None; sam needs grad_fn (the runner passes it)")
        new, inner_state = tx.update(updates, state.inner, params, grad_fn=lambda p, i: grad_fn(p))
        return new, SamState(inner_state, state.grad_evals + (sync_period - 1))

    return optax.GradientTransformationExtraArgs(init, update)


class PerturbedState(NamedTuple):
    inner_state: Any
    key: jax.Array
    count: jax.Array
    perturbations: jax.Array


def perturbed(inner: optax.GradientTransformation, *, key, radius: float = 0.1, threshold: float = 1e-3,
              cooldown: int = 20) -> optax.GradientTransformationExtraArgs:
    """Perturbed gradient descent (Jin et al. 2017, Algorithm 1): the inner update, plus a jump drawn uniformly from
    the ball of ``radius`` when ||g|| <= ``threshold`` and at least ``cooldown`` steps passed since the last one.
    ``key``: a jax.random key (required keyword) for the jumps."""
    if not radius > 0:
        raise ValueError(f"radius: got {radius!r}; allowed: a float > 0")
    key0 = key_data(key)
    inner = optax.with_extra_args_support(inner)

    def init(params):
        return PerturbedState(inner.init(params), jnp.array(key0), jnp.full((), cooldown, jnp.int32),
                              jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        new, inner_state = inner.update(updates, state.inner_state, params, **extra)
        key, kd, kr = jax.random.split(jax.random.wrap_key_data(state.key), 3)
        fire = (state.count >= cooldown) & (optax.tree.norm(updates) <= threshold)
        flat, unravel = ravel_pytree(new)
        r = radius * jax.random.uniform(kr) ** (1.0 / max(flat.shape[0], 1))
        xi = unravel(r * _unit(jax.random.normal(kd, flat.shape, flat.dtype)))
        new = jax.tree.map(lambda u, e: u + jnp.where(fire, e, 0).astype(u.dtype), new, xi)
        count = jnp.where(fire, 0, state.count + 1).astype(jnp.int32)
        return new, PerturbedState(inner_state, jax.random.key_data(key), count,
                                   state.perturbations + fire.astype(jnp.int32))

    return optax.GradientTransformationExtraArgs(init, update)


def _check(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: got {value!r}; allowed: {', '.join(allowed)}")
