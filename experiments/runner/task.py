"""What a task gives the runner: data on the device and a pure sampler (or a host-side batch reader), a pure loss.

A task is plain data plus pure functions, so the runner can put the data on the device once, draw batches
inside the jitted (and scanned) step, and shard them over the mesh's ``data`` axis. Nothing here is specific to
any model path; each path builds ``Task`` objects in its own task factories.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any
# (model, batch, key, train) -> (scalar loss, {name: scalar metric}); pure, traced inside jit.
LossFn = Callable[[Any, PyTree, jax.Array, bool], tuple[jax.Array, dict[str, jax.Array]]]
# (train_data, key, batch_size) -> batch whose leaves are [batch_size, ...]; pure, traced inside jit.
SampleFn = Callable[[PyTree, jax.Array, int], PyTree]


def sample_rows(data: PyTree, key: jax.Array, batch_size: int) -> PyTree:
    """The default sampler: ``batch_size`` rows drawn uniformly (with replacement) from leaves ``[N, ...]``."""
    n = jax.tree.leaves(data)[0].shape[0]
    idx = jax.random.randint(key, (batch_size,), 0, n)
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)


def chunk_rows(data: PyTree, batch_size: int) -> list[PyTree]:
    """The default evaluation batches: consecutive ``[batch_size, ...]`` slices covering every row once."""
    n = jax.tree.leaves(data)[0].shape[0]
    return [jax.tree.map(lambda x, s=s: x[s:s + batch_size], data) for s in range(0, n, batch_size)]


@dataclasses.dataclass
class Task:
    """A training task.

    Attributes:
      name: the registered name.
      train_data: pytree of arrays (numpy or jax) the sampler reads; put on the device once, replicated.
      eval_data: pytree of held-out arrays, leaves ``[N_eval, ...]``.
      loss: ``(model, batch, key, train) -> (loss, metrics)``; metrics are scalars (means over the batch).
      sample: ``(train_data, key, batch_size) -> batch``; defaults to uniform rows.
      eval_batches: ``(eval_data, batch_size) -> [batch, ...]``; defaults to consecutive slices.
      spec: facts a model factory needs (``num_classes``, ``vocab_size``, ``input_shape``...).
      examples_per_epoch: size of one pass over the training data, for epoch accounting.
      facts: what the task records of its data in ``summary.json["task"]`` (a corpus's name and size, ...).
      counts: names of metrics that are counts (calls, evaluations): evaluation sums them over batches
        instead of averaging them.
      host_batch: ``(step, rows, batch_size) -> batch rows [rows, ...]`` as numpy arrays, for data too large for
        the device: when set, the runner makes each step's batch on the host (``experiments.runner.data.HostFeed``:
        this process's rows, read ahead on a thread) and feeds it to the jitted step instead of calling ``sample``;
        ``train_data`` is then unused. It must depend on ``(step, rows)`` only, so resumption keeps the batches.
    """

    name: str
    train_data: PyTree
    eval_data: PyTree
    loss: LossFn
    sample: SampleFn = sample_rows
    eval_batches: Callable[[PyTree, int], list[PyTree]] = chunk_rows
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    examples_per_epoch: int | None = None
    counts: tuple[str, ...] = ()
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # recorded in summary.json["task"]
    host_batch: Callable[[int, slice, int], PyTree] | None = None
