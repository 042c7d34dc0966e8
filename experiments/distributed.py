"""Multi-host start-up: ``jax.distributed.initialize`` from the environment (see the README)."""

from __future__ import annotations

import os

import jax


def setup_distributed() -> None:
    """``jax.distributed.initialize()`` when the environment asks for multi-host (see the README)."""
    wanted = os.environ.get("BEYONDSCALE_DISTRIBUTED") == "1" or "JAX_COORDINATOR_ADDRESS" in os.environ
    if wanted and not jax.distributed.is_initialized():
        jax.distributed.initialize()
