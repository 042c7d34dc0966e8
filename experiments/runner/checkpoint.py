"""Orbax checkpoints of the training state, and resume.

The state is a pytree ``{params, rest, opt_state, step}``. Typed PRNG keys (NNX ``RngState``) are stored as their
raw key data and wrapped back on restore, since array checkpointers store plain arrays only. Saves are synchronous,
so a process killed after ``save`` returns leaves a readable checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _from_storable(tree, like):
    def back(stored, ref):
        if _is_key(ref):
            return jax.random.wrap_key_data(stored, impl=jax.random.key_impl(ref))
        return stored

    return jax.tree.map(back, tree, like)


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of a run under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | Path, max_to_keep: int = 2):
        self.directory = Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                               create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.StandardSave(_to_storable(state)))
        self.manager.wait_until_finished()

    def restore(self, state_like, step: int | None = None):
        """The saved state at ``step`` (latest by default), with the shardings and dtypes of ``state_like``."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_storable(state_like))
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return _from_storable(restored, state_like)

    def close(self) -> None:
        self.manager.close()
