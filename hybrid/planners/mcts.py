"""MCTS with an exact symbolic model: Gumbel MuZero search (mctx) over a deterministic environment.

The search is ``mctx.gumbel_muzero_policy`` (Danihelka et al., "Policy improvement by planning with Gumbel",
ICLR 2022); as in MuZero (Schrittwieser et al., Nature 2020) a network gives prior logits and a value, but the
transition is the task's exact symbolic one (AlphaZero-style), so the tree never drifts from the real game.

Environment protocol (duck-typed, batched over a leading ``B`` axis, pure and jittable; see
``hybrid.tasks.countdown.Countdown``):

- ``env.num_actions``: int ``A``;
- ``env.legal_actions(state) -> [B, A]`` bool (all False in a terminal state);
- ``env.step(state, action [B]) -> (next_state, reward [B], done [B])``, terminal states absorbing.

Network: any callable ``network(params, state) -> (prior_logits [B, A], value [B])``; ``params`` is any pytree
(``None`` for a plain function). ``from_nnx(module)`` turns a Flax NNX module ``module(state)`` into such a pair.
Illegal actions are passed to mctx as ``invalid_actions`` at the root and masked in the prior logits of every
interior node; after a terminal transition the discount is 0 and the value 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mctx

__all__ = [
    "Episodes",
    "from_nnx",
    "mcts_policy",
    "play_episodes",
    "uniform_network",
]

NEG = -1e9  # logit of an illegal action inside the tree (finite: mctx takes softmaxes of it)


def uniform_network(params, state, *, num_actions: int):
    """Uniform prior (zero logits) and zero value: search guided by the rewards alone."""
    b = jax.tree.leaves(state)[0].shape[0]
    return jnp.zeros((b, num_actions), jnp.float32), jnp.zeros((b,), jnp.float32)


def from_nnx(module) -> tuple[Callable, Any]:
    """``(network, params)`` for a Flax NNX module called as ``module(state) -> (logits, value)``.

    ``params`` is the module's ``nnx.State``; ``network(params, state)`` merges it back inside the trace.
    """
    from flax import nnx

    graphdef, params = nnx.split(module)

    def network(p, state):
        return nnx.merge(graphdef, p)(state)

    return network, params


def _masked(logits: jax.Array, legal: jax.Array) -> jax.Array:
    return jnp.where(legal, logits.astype(jnp.float32), NEG)


def mcts_policy(key: jax.Array, env, state, network: Callable, params: Any = None, *, num_simulations: int = 64,
                max_depth: int | None = None, gumbel_scale: float = 1.0, max_num_considered_actions: int = 16,
                discount: float = 1.0) -> mctx.PolicyOutput:
    """One Gumbel MuZero search from each root state.

    Args:
      key: ``jax.random`` key.
      env: the environment (protocol above).
      state: root states, leaves ``[B, ...]``.
      network: ``(params, state) -> (prior_logits [B, A], value [B])``.
      params: the network's parameters (any pytree).
      num_simulations: simulations per root.
      max_depth: optional cap on the simulated depth.
      gumbel_scale: Gumbel noise scale at the root (0 = deterministic, for evaluation).
      max_num_considered_actions: root actions considered by sequential halving.
      discount: per-step discount of non-terminal transitions.

    Returns:
      ``mctx.PolicyOutput``: ``action [B]`` (always legal when a legal action exists), ``action_weights [B, A]``
      (the improved policy, zero on illegal actions, a training target) and ``search_tree``.
    """
    if not isinstance(num_simulations, int) or num_simulations < 1:
        raise ValueError(f"num_simulations={num_simulations!r} must be a positive int")
    legal = env.legal_actions(state)
    logits, value = network(params, state)
    root = mctx.RootFnOutput(prior_logits=_masked(logits, legal), value=value.astype(jnp.float32),
                             embedding=(state, jnp.zeros(legal.shape[:1], bool)))

    def recurrent_fn(p, _key, action, embedding):
        s, was_done = embedding
        s2, reward, done = env.step(s, action)
        done = done | was_done
        logits2, value2 = network(p, s2)
        out = mctx.RecurrentFnOutput(
            reward=jnp.where(was_done, 0.0, reward).astype(jnp.float32),
            discount=jnp.where(done, 0.0, discount).astype(jnp.float32),
            prior_logits=_masked(logits2, env.legal_actions(s2)),
            value=jnp.where(done, 0.0, value2).astype(jnp.float32))
        return out, (s2, done)

    return mctx.gumbel_muzero_policy(params, key, root, recurrent_fn, num_simulations=num_simulations,
                                     invalid_actions=~legal, max_depth=max_depth, gumbel_scale=gumbel_scale,
                                     max_num_considered_actions=max_num_considered_actions)


class Episodes(NamedTuple):
    """What ``play_episodes`` returns (time-major ``[T, B, ...]``).

    Attributes:
      returns: ``[B]`` summed rewards.
      actions: ``[T, B]`` actions taken (-1 after the episode ended).
      action_weights: ``[T, B, A]`` search policies (policy-network training targets).
      rewards: ``[T, B]``.
      active: ``[T, B]`` bool, the episode was still running at that step.
      final_state: the states after ``T`` steps.
    """

    returns: jax.Array
    actions: jax.Array
    action_weights: jax.Array
    rewards: jax.Array
    active: jax.Array
    final_state: Any


def play_episodes(key: jax.Array, env, state, network: Callable, params: Any = None, *, max_steps: int,
                  num_simulations: int = 64, gumbel_scale: float = 1.0, **search_kwargs) -> Episodes:
    """Play whole episodes from ``state`` with one MCTS search per move (``lax.scan`` over ``max_steps``).

    ``num_simulations=0`` plays uniformly random legal moves instead (the control).
    """
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive int")
    b = jax.tree.leaves(state)[0].shape[0]

    def move(carry, k):
        s, done = carry
        legal = env.legal_actions(s)
        if num_simulations == 0:
            logits = jnp.where(legal, 0.0, -jnp.inf)
            action = jax.random.categorical(k, jnp.where(legal.any(1, keepdims=True), logits, 0.0))
            weights = legal / jnp.maximum(legal.sum(1, keepdims=True), 1)
        else:
            out = mcts_policy(k, env, s, network, params, num_simulations=num_simulations,
                              gumbel_scale=gumbel_scale, **search_kwargs)
            action, weights = out.action, out.action_weights
        s2, reward, step_done = env.step(s, action)
        s2 = jax.tree.map(lambda new, old: jnp.where(done.reshape((b,) + (1,) * (new.ndim - 1)), old, new), s2, s)
        reward = jnp.where(done, 0.0, reward)
        return (s2, done | step_done), (jnp.where(done, -1, action), weights, reward, ~done)

    (final, _), (actions, weights, rewards, active) = jax.lax.scan(
        move, (state, jnp.zeros((b,), bool)), jax.random.split(key, max_steps))
    return Episodes(rewards.sum(0), actions, weights, rewards, active, final)
