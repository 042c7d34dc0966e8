"""Random keys kept in optimizer states as raw key data (``uint32`` arrays), so a state checkpoints as plain arrays.

``key_data(key)``: a typed ``jax.random.key``, a raw ``uint32[2]`` ``PRNGKey`` or an int seed → its raw key data
(unwrap it with ``jax.random.wrap_key_data``). Shared by ``spsa``, ``tunneling`` and ``perturbed``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["key_data"]


def key_data(key) -> jax.Array:
    """The raw key data of ``key`` (a ``jax.random.key``, a raw ``uint32[2]`` key or an int seed)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key_data(jax.random.key(int(key)))
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return jax.random.key_data(key)
    if dtype == jnp.uint32 and shape == (2,):
        return jnp.asarray(key)
    raise ValueError(f"key: got {key!r}; allowed: a jax.random.key, a raw uint32[2] PRNGKey or an int seed")
