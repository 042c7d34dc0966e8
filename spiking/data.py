"""Byte-level language-modelling data: a corpus as bytes, a deterministic split, a pure window sampler.

Character-level (byte-level, vocabulary 256) language modelling as in SpikeGPT's enwik8 experiments (Zhu et al.
2023, "SpikeGPT: Generative Pre-trained Language Model with Spiking Neural Networks") and the classic char-RNN
setting. Nothing is downloaded: the default corpus is the English text of CPython's ``pydoc_data.topics`` (about
465k characters, present on every Python); ``stdlib`` is the Python standard library's own source (every ``*.py``
under ``sysconfig.get_paths()["stdlib"]``, tests and site-packages left out: about 12 MB on Python 3.11, 26 times
the pydoc text, for experiments that must not run out of data); any UTF-8 text file can be named instead.

Shapes: a corpus is ``[N]`` uint8; a batch is ``{"tokens": [B, L + 1] int32}`` (inputs ``[:, :-1]``, targets
``[:, 1:]``). ``sample_windows`` is pure and jittable (random windows inside the training split only);
``eval_windows`` is deterministic (consecutive windows of the validation split).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

VOCAB_SIZE = 256
CORPORA = ("pydoc", "stdlib")
_NOT_SOURCE = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


def default_text() -> str:
    """The embedded corpus: every ``pydoc_data.topics`` entry, joined in sorted-key order by blank lines."""
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def stdlib_files() -> list[Path]:
    """The standard library's ``*.py`` files in a fixed order (sorted relative paths), tests and site-packages out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted((p for p in root.rglob("*.py") if not _NOT_SOURCE & set(p.relative_to(root).parts[:-1])
                   and not p.name.startswith("test_")), key=lambda p: p.relative_to(root).as_posix())


def stdlib_text() -> bytes:
    """The ``stdlib`` corpus: each file's UTF-8 bytes (files that are not UTF-8 are left out), one newline between."""
    parts = []
    for p in stdlib_files():
        data = p.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        parts.append(data)
    return b"\n".join(parts)


def load_corpus(path: str = "", corpus: str = "pydoc") -> np.ndarray:
    """The corpus as UTF-8 bytes ``[N]`` uint8: the file at ``path``, or with no path the embedded ``corpus``
    (``pydoc`` or ``stdlib``).

    Raises ValueError (one line) when the file is missing, unreadable, not UTF-8 or too short.
    """
    if not path and corpus not in CORPORA:
        raise ValueError(f"corpus: {corpus!r} is not allowed; use one of {', '.join(CORPORA)}")
    if not path:
        data = default_text().encode("utf-8") if corpus == "pydoc" else stdlib_text()
    else:
        if not os.path.isfile(path):
            raise ValueError(f"path: file {path!r} does not exist; give an existing UTF-8 text file or '' for the "
                             "embedded corpus")
        with open(path, "rb") as f:
            data = f.read()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"path: file {path!r} is not UTF-8 text (byte {e.start}); give a UTF-8 text file") from None
    if len(data) < 16:
        raise ValueError(f"path: corpus {path or '<embedded>'!r} has {len(data)} bytes; at least 16 are needed")
    return np.frombuffer(data, dtype=np.uint8).copy()


def split(corpus: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split: the first ``1 - val_fraction`` of the bytes train, the last ``val_fraction`` validate.

    The two parts are disjoint, contiguous ranges of the corpus, so no training window overlaps a validation one.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: {val_fraction!r} is not allowed; use a number strictly between 0 and 1")
    n_val = max(1, round(len(corpus) * val_fraction))
    return corpus[:-n_val], corpus[-n_val:]


def sample_windows(tokens: jax.Array, key: jax.Array, batch_size: int, seq_len: int) -> jax.Array:
    """``batch_size`` random windows of ``seq_len + 1`` consecutive bytes of ``tokens [N]`` -> ``[B, L + 1]`` int32.

    Pure and jittable (``batch_size`` and ``seq_len`` static): start offsets are uniform over every full window.
    """
    n = tokens.shape[0]
    if n < seq_len + 1:
        raise ValueError(f"seq_len: {seq_len} needs at least {seq_len + 1} tokens, the split has {n}")
    starts = jax.random.randint(key, (batch_size,), 0, n - seq_len)
    take = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(tokens, s, seq_len + 1))
    return take(starts).astype(jnp.int32)


def eval_windows(tokens: np.ndarray, seq_len: int, max_windows: int = 0) -> np.ndarray:
    """Deterministic evaluation windows ``[N_w, L + 1]`` int32: consecutive, each target predicted once.

    Window ``i`` covers bytes ``[i L, i L + L]``; neighbours share one byte (the last target of one window is the
    first input of the next). ``max_windows > 0`` keeps only the first ``max_windows``.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len: {seq_len!r} is not allowed; use an integer >= 1")
    n_w = (len(tokens) - 1) // seq_len
    if n_w < 1:
        raise ValueError(f"seq_len: {seq_len} is longer than the validation split ({len(tokens)} bytes)")
    if max_windows > 0:
        n_w = min(n_w, max_windows)
    idx = np.arange(n_w)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return np.asarray(tokens, dtype=np.int32)[idx]


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy in bits of the byte frequencies of ``tokens [N]``: the loss of the best context-free predictor."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=VOCAB_SIZE).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())
