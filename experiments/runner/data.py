"""Token files too large for memory: reading them through ``np.memmap`` and feeding each process its share.

A token directory is what ``python -m experiments prepare-data`` writes (``experiments.runner.prepare``), in
nanoGPT's format (Karpathy, nanoGPT ``data/*/prepare.py``): ``train.bin``, ``val.bin`` (and ``test.bin`` when a test
split was asked for), each a flat array of token ids with no header, of the dtype ``meta.json`` names (uint8 for a
256-token vocabulary, uint16 up to 65,536, uint32 beyond), plus ``token_bytes.npy`` (``[vocab]``: the UTF-8 bytes
each token stands for, so a loss in nats per token becomes bits per byte whatever the tokenizer).

Training batches are drawn on the host, as levanter and MaxText feed multi-host runs: the global batch of step ``s``
is ``batch_size`` windows of ``seq_len + 1`` tokens whose start offsets come from ``np.random.default_rng([seed,
s])`` alone, so every process computes the same offsets, reads from its memory map only the rows its devices hold
(``process_rows``, from the batch sharding) and the pieces are put together with
``jax.make_array_from_process_local_data``. A resumed run, a run with another ``steps_per_call`` and a run on
more devices or processes see the same batches. ``HostFeed`` reads ahead on a background thread (``prefetch``
steps), so the read overlaps the device's step; the pages a memory map touched belong to the page cache, not to
the process, so resident memory stays flat however large the file.

Shapes: token files ``[N]``; a batch ``{"tokens": [B, L + 1] int32}``; evaluation windows add ``"weights" [B, L]``
(1 where a target is scored, 0 where an earlier window already scored it) and ``"bytes" [B]`` (the UTF-8 bytes of
a window's scored targets).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments.errors import ConfigError

META = "meta.json"
TOKEN_BYTES = "token_bytes.npy"
SPLITS = ("train", "val", "test")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type holding ids ``0 .. vocab_size - 1``: uint8, uint16 or uint32."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocab_size: {vocab_size} is not allowed; at most 2**32")


class TokenDir:
    """A prepared token directory, opened read-only: ``meta`` (the JSON prepare-data wrote), ``split(name)`` a
    memory map ``[N]``, ``token_bytes [vocab]`` int64. Raises ConfigError naming ``key`` for a missing or
    malformed directory."""

    def __init__(self, path: str | Path, key: str = "data.dir"):
        self.path = Path(path)
        meta = self.path / META
        if not meta.is_file():
            raise ConfigError(f"{key}: {str(path)!r} holds no {META}; write it with `python -m experiments "
                              "prepare-data FILES... --tokenizer bytes --out DIR`")
        try:
            self.meta = json.loads(meta.read_text())
            self.vocab_size = int(self.meta["vocab_size"])
            self.dtype = np.dtype(self.meta["dtype"])
            self.token_bytes = np.load(self.path / TOKEN_BYTES).astype(np.int64)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{key}: {str(path)!r} is not a complete token directory ({err}); "
                              "write it again with prepare-data") from None

    def split(self, name: str) -> np.ndarray:
        """The tokens of split ``name`` as a read-only memory map ``[N]`` (nothing is read until indexed)."""
        path = self.path / f"{name}.bin"
        if not path.is_file() or path.stat().st_size == 0:
            have = [s for s in SPLITS if (self.path / f"{s}.bin").is_file()]
            raise ConfigError(f"data.eval_split: {name!r} is not in {str(self.path)!r}; it has {', '.join(have)}")
        return np.memmap(path, dtype=self.dtype, mode="r")


def window_starts(seed: int, step: int, n_tokens: int, seq_len: int, batch_size: int) -> np.ndarray:
    """The global batch's window starts ``[batch_size]`` int64 at ``step``: uniform over every full window of a split
    of ``n_tokens``, a function of ``(seed, step)`` only (Philox via ``np.random.default_rng([seed, step])``)."""
    if n_tokens < seq_len + 1:
        raise ConfigError(f"data.seq_len: {seq_len} needs at least {seq_len + 1} training tokens; the split has "
                          f"{n_tokens}")
    return np.random.default_rng([seed, step]).integers(0, n_tokens - seq_len, size=batch_size)


def read_windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """Windows ``[len(starts), seq_len + 1]`` int32 of ``tokens [N]`` (a memory map: only these pages are read)."""
    return np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int32)


class TokenReader:
    """Training batches from one split: ``(step, rows, batch_size) -> {"tokens": [rows, L + 1] int32}``, the rows
    ``rows`` of the global batch ``window_starts(seed, step, ...)``.

    The memory map is opened for each batch and closed after it: file pages a map has touched count in the
    process's resident set until it is unmapped (the page cache maps them in folios of up to 2 MB, so 64 random
    windows of a 200 MB file made 94 MB resident here, and a few hundred made all of it). Closed after each batch,
    resident memory stays flat however large the file; the pages stay in the kernel's page cache for reuse."""

    def __init__(self, files: TokenDir, split: str, seq_len: int, seed: int):
        self.files, self.split_name, self.seq_len, self.seed = files, split, seq_len, seed
        self.n_tokens = len(files.split(split))
        if self.n_tokens < seq_len + 1:
            raise ConfigError(f"data.seq_len: {seq_len} needs at least {seq_len + 1} {split} tokens; the split has "
                              f"{self.n_tokens}")

    def __call__(self, step: int, rows: slice, batch_size: int) -> dict[str, np.ndarray]:
        starts = window_starts(self.seed, step, self.n_tokens, self.seq_len, batch_size)[rows]
        tokens = self.files.split(self.split_name)
        out = read_windows(tokens, starts, self.seq_len)
        del tokens  # the last reference: unmapped now
        return {"tokens": out}


def eval_windows(tokens: np.ndarray, context: int, seq_len: int, token_bytes: np.ndarray,
                 max_tokens: int = 0) -> dict[str, np.ndarray]:
    """Deterministic evaluation windows scoring every one of the first ``max_tokens`` tokens (0 = all) once.

    The sequence read is ``[context] + tokens`` (``context``: the last training token, so the split's first token is
    scored too). Window ``i`` starts at ``i L``; the last one is moved back to end on the last token and its targets
    already scored get weight 0. Returns ``{"tokens" [W, L + 1] int32, "weights" [W, L] float32, "bytes" [W]
    float32}``: the weighted targets are exactly the tokens scored, ``bytes`` the UTF-8 bytes they stand for."""
    n = len(tokens) if not max_tokens else min(len(tokens), max_tokens)
    if n < seq_len:
        raise ConfigError(f"data.seq_len: {seq_len} is longer than the evaluation split ({n} tokens)")
    seq = np.concatenate([np.asarray([context], np.int64), np.asarray(tokens[:n], np.int64)])
    starts = list(range(0, n - seq_len + 1, seq_len))
    weights = np.ones((len(starts), seq_len), np.float32)
    if starts[-1] + seq_len < n:  # a last window ending on the last token; its overlap is not scored twice
        weights = np.concatenate([weights, np.zeros((1, seq_len), np.float32)])
        weights[-1, seq_len - (n - starts[-1] - seq_len):] = 1.0
        starts.append(n - seq_len)
    windows = seq[np.asarray(starts)[:, None] + np.arange(seq_len + 1)]
    nbytes = (token_bytes[windows[:, 1:]] * weights).sum(1).astype(np.float32)
    return {"tokens": windows.astype(np.int32), "weights": weights, "bytes": nbytes}


def process_rows(sharding: NamedSharding, batch_size: int) -> slice:
    """The rows of a ``[batch_size, ...]`` array sharded by ``sharding`` that this process's devices hold: one
    contiguous range (ConfigError if the mesh interleaves processes along the batch)."""
    spans = sorted({(s[0].start or 0, batch_size if s[0].stop is None else s[0].stop)
                    for s in sharding.addressable_devices_indices_map((batch_size,)).values()})
    lo, hi = spans[0][0], spans[-1][1]
    if sum(b - a for a, b in spans) != hi - lo:
        raise ConfigError(f"train.batch_size: the mesh gives process {jax.process_index()} rows {spans}, not one "
                          "contiguous range; order the mesh's devices by process")
    return slice(lo, hi)


class HostFeed:
    """Feeds the jitted step batches made on the host: ``host_batch(step, rows, batch_size)`` returns the rows
    ``rows`` (a slice) of step's global batch as numpy arrays (a ``TokenReader``, or any such function); ``take(n)`` gives the next ``n`` steps' batches as global arrays
    ``[n, batch_size, ...]`` sharded like ``sharding`` on the batch axis. A daemon thread keeps ``prefetch`` steps
    read ahead; an error there is raised by ``take``. ``start(step)`` (re)starts the stream at ``step``."""

    def __init__(self, host_batch: Callable[[int, slice, int], Any], sharding: NamedSharding, batch_size: int,
                 prefetch: int = 4):
        self.host_batch, self.batch_size, self.prefetch = host_batch, batch_size, prefetch
        self.rows = process_rows(sharding, batch_size)
        self.stacked = NamedSharding(sharding.mesh, P(None, *sharding.spec))
        example = host_batch(0, self.rows, batch_size)
        self.spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype,
                                                                sharding=sharding), example)
        self.thread, self.stop, self.queue = None, threading.Event(), None

    def start(self, step: int) -> None:
        self.close()
        self.stop, self.queue = threading.Event(), queue.Queue(maxsize=self.prefetch)
        self.thread = threading.Thread(target=self._produce, args=(step, self.stop, self.queue), daemon=True)
        self.thread.start()

    def _produce(self, step: int, stop: threading.Event, out: queue.Queue) -> None:
        while not stop.is_set():
            try:
                item = self.host_batch(step, self.rows, self.batch_size)
            except Exception as err:  # noqa: BLE001 - handed to the consumer, raised there
                item = err
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, Exception):
                return
            step += 1

    def take(self, n: int):
        """The next ``n`` steps' batches, leaves ``[n, batch_size, ...]`` (global arrays, this process's rows)."""
        if self.thread is None:
            raise RuntimeError("HostFeed.take before start(step)")
        items = [self.queue.get() for _ in range(n)]
        for item in items:
            if isinstance(item, Exception):
                raise item
        local = jax.tree.map(lambda *xs: np.stack(xs), *items)
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
            self.stacked, x, (n, self.batch_size, *x.shape[2:])), local)

    def close(self) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self.thread = None
