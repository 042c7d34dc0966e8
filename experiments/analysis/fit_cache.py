"""Bootstrap fits remembered: the claims report asks for the same fit in several places (a claim's scaling table
and its verdict, claims that share runs, every regeneration of the report), and each is thousands of refits.

A fit is a pure function of its points, replicate count and seed, so a result keyed by those (and by the source of
the fitting modules, so a changed fit is never served stale) is exact. Kept in memory for the process, and on disk
in a folder named by ``use_folder`` (the claims suite names ``<out>/fit_cache``; pickles, local and disposable)."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import pickle
import sys
from pathlib import Path

_memory: dict[str, object] = {}
MEMORY = 256  # fits kept in memory (the oldest dropped first)
_folder: Path | None = None


def use_folder(folder: str | Path | None) -> None:
    """Keep fits on disk in ``folder`` too (None: memory only)."""
    global _folder
    _folder = Path(folder) if folder is not None else None


@functools.cache
def _source_digest(modules: tuple[str, ...]) -> str:
    return hashlib.sha256("".join(inspect.getsource(sys.modules[m]) for m in modules).encode()).hexdigest()


def _key(kind: str, points, n_boot: int, seed: int, modules: tuple[str, ...]) -> str:
    text = json.dumps([kind, [list(p) for p in points], n_boot, seed, _source_digest(modules)], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(kind: str, fit, points, n_boot: int, seed: int, modules: tuple[str, ...]):
    """``fit(points, n_boot, seed)``, computed once per distinct input and source of ``modules``."""
    key = _key(kind, points, n_boot, seed, modules)
    if key in _memory:
        return _memory[key]
    path = _folder / f"{kind}-{key[:32]}.pkl" if _folder is not None else None
    if path is not None and path.is_file():
        _memory[key] = pickle.loads(path.read_bytes())
        return _memory[key]
    _memory[key] = result = fit(points, n_boot, seed)
    while len(_memory) > MEMORY:
        _memory.pop(next(iter(_memory)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(result))
        tmp.replace(path)
    return result
