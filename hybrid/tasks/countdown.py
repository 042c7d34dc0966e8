"""Countdown / game-of-24 arithmetic search: an exact symbolic environment for MCTS (mctx).

The model-based search setting of MuZero (Schrittwieser et al., Nature 2020) with the true transition as the model,
searched with Gumbel MuZero (Danihelka et al., "Policy improvement by planning with Gumbel", ICLR 2022), on the
arithmetic puzzle used to test LLM search (Yao et al., "Tree of Thoughts", NeurIPS 2023: game of 24; Countdown).

A state holds ``N`` integer slots with an ``alive`` mask and a target. An action picks an ordered pair of live
slots ``(i, j)``, ``i != j``, and an operator; the result ``numbers[i] op numbers[j]`` goes to slot ``i`` and slot
``j`` dies. Only exact positive-integer arithmetic is legal: ``+`` and ``*`` with ``i < j`` (commutative, so one
order only) and a product at most ``max_value``; ``-`` when ``numbers[i] > numbers[j]``; ``/`` when
``numbers[j]`` divides ``numbers[i]``. Action index ``((i * N) + j) * 4 + op`` with op 0..3 = + - * /.

Rules: with ``use_all=True`` (game of 24) the episode ends when one number is left, with reward 1 if it equals
the target; with ``use_all=False`` (Countdown) it ends with reward 1 as soon as a result equals the target, or
with reward 0 when one number is left. An illegal (or out-of-range) action ends the episode with reward 0. All functions are pure,
batched (leading axis ``B``) and jittable; ``Countdown`` is a frozen dataclass, safe to close over in ``jit``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Countdown",
    "CountdownState",
    "countdown_instances",
]

OPS = "+-*/"


class CountdownState(NamedTuple):
    """``numbers [B, N]`` int32, ``alive [B, N]`` bool, ``target [B]`` int32, ``done [B]`` bool."""

    numbers: jax.Array
    alive: jax.Array
    target: jax.Array
    done: jax.Array


@dataclasses.dataclass(frozen=True)
class Countdown:
    """The environment (static configuration). ``num_actions = 4 * n_numbers ** 2``."""

    n_numbers: int = 4
    use_all: bool = True
    max_value: int = 1_000_000

    def __post_init__(self):
        if not isinstance(self.n_numbers, int) or self.n_numbers < 2:
            raise ValueError(f"n_numbers={self.n_numbers!r} must be an int >= 2")
        if not isinstance(self.max_value, int) or not 1 <= self.max_value <= 2**31 - 1:
            raise ValueError(f"max_value={self.max_value!r} must be an int in [1, 2**31 - 1]")

    @property
    def num_actions(self) -> int:
        return 4 * self.n_numbers ** 2

    def init(self, numbers, target) -> CountdownState:
        """``numbers [B, N]``, ``target [B]`` -> a fresh state (all slots alive)."""
        numbers = jnp.asarray(numbers, jnp.int32)
        if numbers.ndim != 2 or numbers.shape[1] != self.n_numbers:
            raise ValueError(f"numbers has shape {numbers.shape}; expected [B, {self.n_numbers}]")
        target = jnp.broadcast_to(jnp.asarray(target, jnp.int32), numbers.shape[:1])
        b = numbers.shape[0]
        return CountdownState(numbers, jnp.ones(numbers.shape, bool), target, jnp.zeros((b,), bool))

    def decode(self, action: jax.Array):
        """``action [B]`` -> ``(i, j, op)`` each ``[B]`` int32."""
        n = self.n_numbers
        return action // (4 * n), (action // 4) % n, action % 4

    def _results(self, state: CountdownState):
        """All ``[B, N, N, 4]`` results ``numbers[i] op numbers[j]`` and their legality."""
        a = state.numbers[:, :, None].astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.float32)
        b = state.numbers[:, None, :].astype(a.dtype)
        n = self.n_numbers
        pair = state.alive[:, :, None] & state.alive[:, None, :] & ~jnp.eye(n, dtype=bool)[None]
        pair = pair & ~state.done[:, None, None]
        upper = jnp.triu(jnp.ones((n, n), bool), 1)[None]
        safe_b = jnp.where(b > 0, b, 1)
        prod = a * b  # float32 (or int64): no int32 overflow before the bound check
        divisible = (b > 0) & (jnp.fmod(a, safe_b) == 0)
        legal = jnp.stack([pair & upper & (a + b <= self.max_value),
                           pair & (a > b),
                           pair & upper & (prod <= self.max_value),
                           pair & divisible], axis=-1)
        ai, bi = state.numbers[:, :, None], state.numbers[:, None, :]
        res = jnp.stack([ai + bi, ai - bi, jnp.where(legal[..., 2], ai * bi, 0),
                         jnp.where(legal[..., 3], ai // jnp.where(bi > 0, bi, 1), 0)], axis=-1)
        return res, legal

    def legal_actions(self, state: CountdownState) -> jax.Array:
        """``[B, num_actions]`` bool; all False once the episode is done."""
        return self._results(state)[1].reshape(state.numbers.shape[0], self.num_actions)

    def step(self, state: CountdownState, action: jax.Array):
        """Exact transition: ``(state, action [B]) -> (next_state, reward [B] float32, done [B] bool)``.

        A done state is absorbing (unchanged, reward 0).
        """
        b = state.numbers.shape[0]
        res, legal = self._results(state)
        bidx = jnp.arange(b)
        action = jnp.asarray(action, jnp.int32)
        i, j, op = self.decode(action)
        ok = legal[bidx, i, j, op] & (action >= 0) & (action < self.num_actions)
        value = res[bidx, i, j, op]
        numbers = state.numbers.at[bidx, i].set(jnp.where(ok, value, state.numbers[bidx, i]))
        numbers = numbers.at[bidx, j].set(jnp.where(ok, 0, numbers[bidx, j]))
        alive = state.alive.at[bidx, j].set(jnp.where(ok, False, state.alive[bidx, j]))
        hit = ok & (value == state.target)
        one_left = alive.sum(axis=1) == 1
        if self.use_all:
            solved, done = hit & one_left, one_left
        else:
            solved, done = hit, hit | one_left
        done = state.done | done | ~ok
        live = ~state.done
        nxt = CountdownState(jnp.where(live[:, None], numbers, state.numbers),
                             jnp.where(live[:, None], alive, state.alive), state.target, done)
        return nxt, (solved & live).astype(jnp.float32), done

    def observe(self, state: CountdownState) -> jax.Array:
        """Features for a prior/value network: ``[B, 2 N + 1]`` float32 (log1p numbers, alive, log1p target)."""
        return jnp.concatenate([jnp.log1p(state.numbers.astype(jnp.float32)) * state.alive,
                                state.alive.astype(jnp.float32),
                                jnp.log1p(state.target.astype(jnp.float32))[:, None]], axis=1)


def _random_rollout(env: Countdown, key, state: CountdownState):
    """Uniformly random legal actions until done; the last number left (use_all) is a reachable target."""

    def step(s, k):
        legal = env.legal_actions(s)
        logits = jnp.where(legal, 0.0, -jnp.inf)
        a = jax.random.categorical(k, jnp.where(legal.any(1, keepdims=True), logits, 0.0))
        s2, _, _ = env.step(s, a)
        return s2, None

    final, _ = jax.lax.scan(step, state, jax.random.split(key, env.n_numbers - 1))
    return final


def countdown_instances(key, num: int, env: Countdown = Countdown(), low: int = 1, high: int = 13,
                        max_target: int = 100) -> CountdownState:
    """``num`` solvable instances: numbers uniform in ``[low, high]``, target = the result of a random legal
    expression using all the numbers (so solvable under both rules), kept when in ``[1, max_target]`` and not equal
    to one of the starting numbers. Deterministic per key.

    Returns:
      A fresh ``CountdownState`` with leaves ``[num, ...]``.
    """
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num={num!r} must be a positive int")
    if not 1 <= low <= high:
        raise ValueError(f"low={low!r}, high={high!r} must satisfy 1 <= low <= high")
    rollout = jax.jit(lambda k, nums: _random_rollout(env, k, env.init(nums, jnp.zeros(nums.shape[:1], jnp.int32))))
    numbers, targets, got, chunk = [], [], 0, max(64, 2 * num)
    for attempt in range(1000):
        k_num, k_roll = jax.random.split(jax.random.fold_in(key, attempt))
        nums = jax.random.randint(k_num, (chunk, env.n_numbers), low, high + 1)
        final = rollout(k_roll, nums)
        tgt = np.asarray(jnp.sum(jnp.where(final.alive, final.numbers, 0), axis=1))
        keep = (np.asarray(final.alive).sum(1) == 1) & (tgt >= 1) & (tgt <= max_target)
        keep &= ~np.any(np.asarray(nums) == tgt[:, None], axis=1)
        numbers.append(np.asarray(nums)[keep])
        targets.append(tgt[keep])
        got += int(keep.sum())
        if got >= num:
            break
    else:
        raise ValueError(f"max_target={max_target!r}: too few reachable targets for numbers in [{low}, {high}]")
    return env.init(np.concatenate(numbers)[:num], np.concatenate(targets)[:num])
