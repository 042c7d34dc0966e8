"""Test-wide setting: XLA compiles with LLVM's optimisation off (``--xla_backend_optimization_level=0``).

The tests' programs are tiny, so compiling them is most of the suite's time: the claims suite's smoke size from an
empty cache took 202 s with the default and 146 s with it, the 8-device sharded runs 89 s and 69 s. The level
changes how fast the generated code runs, not what it computes; subprocesses inherit it through the environment
(``tests.runner.helpers.devices_env`` keeps it when a test asks for several CPU devices)."""

import os

FAST_COMPILE = "--xla_backend_optimization_level=0"

if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
