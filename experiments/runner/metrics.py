"""Run records: ``metrics.jsonl`` events, ``summary.json``, cost accounting read off the compiled step.

Each event is one JSON object with ``step``, ``split`` (``train`` / ``eval``), ``wall_time`` and metric values.
Optimizer counters are read from the optimizer state by convention: every NamedTuple field whose name ends in
``_evals`` (loss, gradient or any other evaluations) is summed over the state and reported under that name.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import flax
import jax
import numpy as np
import optax


def to_builtin(x: Any) -> Any:
    """JSON-friendly scalars: numpy / jax scalars → float or int; NaN/Inf kept as floats (JSON allows them here)."""
    if isinstance(x, dict):
        return {k: to_builtin(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_builtin(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray, jax.Array)):
        arr = np.asarray(x)
        if arr.ndim == 0:
            return arr.item()
        return arr.tolist()
    return x


class MetricsWriter:
    """Appends events to ``metrics.jsonl``; on resume drops the events after the restored step."""

    def __init__(self, path: str | Path, *, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        if not (self.enabled and self.path.exists()):
            return
        keep = [line for line in self.path.read_text().splitlines() if line.strip()
                and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def reset(self) -> None:
        if self.enabled and self.path.exists():
            self.path.unlink()

    def write(self, event: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(to_builtin(event)) + "\n")


def optimizer_counters(opt_state, names=()) -> dict[str, int]:
    """Sum of every ``*_evals`` field, and of every field named in ``names`` (the counters registered optimizers
    declare: accepted jumps, perturbations), of every NamedTuple in ``opt_state``: one walk of the state."""
    totals: dict[str, int] = {}

    def visit(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name in node._fields:
                value = getattr(node, name)
                if name.endswith("_evals") or name in names:
                    totals[name] = totals.get(name, 0) + int(np.sum(np.asarray(value)))
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            for item in node.values():
                visit(item)

    visit(opt_state)
    return totals


def compiled_flops(compiled) -> float | None:
    """FLOPs of one call of a compiled function from XLA's cost analysis, or None where the backend gives none."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning nothing
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    flops = float(analysis["flops"])
    return flops if math.isfinite(flops) and flops > 0 else None


def peak_memory_bytes() -> int | None:
    """Peak bytes in use on the first local device, where the backend reports it (GPU/TPU; None on CPU)."""
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not stats:
        return None
    return int(stats.get("peak_bytes_in_use", stats.get("bytes_in_use", 0))) or None


def environment() -> dict:
    """Device kind and count, host, library versions: recorded with every run."""
    device = jax.devices()[0]
    return {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
    }


def param_count(params) -> int:
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))


def write_json(path: str | Path, obj: dict) -> None:
    """Write ``obj`` as JSON atomically (a temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_builtin(obj), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
