"""Multi-host start-up: ``jax.distributed.initialize`` from the environment (see the README, "Several hosts").

One run over several processes (a TPU pod slice, GPU nodes, or several processes on one machine) starts the same
command in every process. It is multi-host when ``JAX_COORDINATOR_ADDRESS`` is set (then ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` name the process count and this process's id) or when ``BEYONDSCALE_DISTRIBUTED=1`` (then JAX's
cluster detection finds all three: Cloud TPU metadata, SLURM's ``srun`` variables, Open MPI, Kubernetes). A variable
left unset is left to that detection. On CPU the cross-process collectives are gloo's (TCP).

A process that cannot reach the coordinator within ``BEYONDSCALE_DISTRIBUTED_TIMEOUT`` seconds (default 300, JAX's
own default) stops with one line naming the address instead of waiting for ever.
"""

from __future__ import annotations

import os
import socket
import time

import jax

from experiments.errors import ConfigError

DEFAULT_TIMEOUT_S = 300


def _int_env(name: str, minimum: int) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"{name}: {text!r} is not allowed; give an integer >= {minimum}")
    return value


def distributed_requested() -> bool:
    """Whether the environment asks for a multi-process run."""
    return os.environ.get("BEYONDSCALE_DISTRIBUTED") == "1" or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))


def setup_distributed() -> None:
    """``jax.distributed.initialize`` with the coordinator, process count and id from the environment, once.

    Must run before anything touches a device. Raises ConfigError (one line) for a malformed variable or a
    coordinator that cannot be reached in time."""
    if not distributed_requested() or jax.distributed.is_initialized():
        return
    address = os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if address is not None and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
        raise ConfigError(f"JAX_COORDINATOR_ADDRESS: {address!r} is not allowed; give HOST:PORT, e.g. host0:1234")
    count = _int_env("JAX_NUM_PROCESSES", 1)
    pid = _int_env("JAX_PROCESS_ID", 0)
    if count is not None and pid is not None and pid >= count:
        raise ConfigError(f"JAX_PROCESS_ID: {pid} is not allowed with JAX_NUM_PROCESSES={count}; "
                          f"give 0 to {count - 1}")
    timeout = _int_env("BEYONDSCALE_DISTRIBUTED_TIMEOUT", 1) or DEFAULT_TIMEOUT_S
    if jax.config.jax_cpu_collectives_implementation is None:  # older jax has no CPU default: take gloo
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if address is not None and pid != 0:
        _wait_for_coordinator(address, pid, count, timeout)
    try:
        jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=pid,
                                   initialization_timeout=timeout)
    except Exception as err:  # noqa: BLE001 - JAX raises several types here; the user needs one line
        where = address or "the auto-detected coordinator"
        reason = " ".join(str(err).split())[:200]
        if "DEADLINE_EXCEEDED" in reason or "timed out" in reason.lower() or "unavailable" in reason.lower():
            reason = f"no answer within {timeout} s (BEYONDSCALE_DISTRIBUTED_TIMEOUT)"
        raise ConfigError(_unreachable(where, pid, count, reason)) from None


def _unreachable(where: str, pid, count, reason: str) -> str:
    return (f"JAX_COORDINATOR_ADDRESS: cannot reach the coordinator at {where} as process "
            f"{pid if pid is not None else '?'} of {count if count is not None else '?'}: {reason}; "
            "start process 0 there, or check the address and port")


def _wait_for_coordinator(address: str, pid, count, timeout: float) -> None:
    """Wait until the coordinator's port accepts a TCP connection. JAX's own client aborts the process (a C++
    fatal error and a stack trace) when it cannot connect in time; this fails first, with one line."""
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, timeout)):
                return
        except socket.gaierror:
            raise ConfigError(_unreachable(address, pid, count, f"host {host!r} not found")) from None
        except OSError as err:
            if time.monotonic() >= deadline:
                why = err.strerror or type(err).__name__
                raise ConfigError(_unreachable(address, pid, count, f"{why.lower()} for {timeout:g} s "
                                               "(BEYONDSCALE_DISTRIBUTED_TIMEOUT)")) from None
            time.sleep(0.25)
