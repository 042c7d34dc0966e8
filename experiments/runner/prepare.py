"""``prepare-data``: text files of any size → nanoGPT-style token files, streamed in chunks.

The format is nanoGPT's (Karpathy, ``data/openwebtext/prepare.py``): ``train.bin`` / ``val.bin`` / ``test.bin``
flat arrays of token ids with no header, read back with ``np.memmap`` (``experiments.runner.data``). Beside them
``meta.json`` records what was done (the tokenizer, the vocabulary, the dtype, the files, the split, the bytes and
tokens of each split), ``token_bytes.npy [vocab]`` the UTF-8 bytes each token stands for (bits per byte for any
tokenizer) and, for BPE, the ``tokenizer.json`` used.

* The files are read one after another, as ``cat`` joins them, ``chunk_bytes`` at a time: memory does not grow
  with the corpus. The split is by position (train first, then val, then test, as SpikeGPT splits enwik8 90/5/5),
  cut at the same byte offsets (moved forward to a UTF-8 character start) whatever the tokenizer, so a byte-level
  and a BPE preparation of one text evaluate the same bytes.
* ``bytes``: every byte is a token (vocabulary 256, uint8); any file, UTF-8 or not.
* ``bpe:VOCAB``: a byte-level BPE (GPT-2's scheme) trained here with Hugging Face ``tokenizers`` on the train
  split only (``bpe_train_bytes`` caps how much of it), offline. ``PATH.json``: a ``tokenizer.json`` the user
  names, loaded with ``tokenizers``. BPE input must be UTF-8; it is encoded in pieces cut at line ends, so a token
  never spans two pieces (the ids can differ from encoding the whole text at once only at those cuts).

Everything is written to a sibling ``DIR.partial`` folder and renamed to ``DIR`` at the end; a failure removes the
partial folder, so nothing already there is lost and no half-written directory is left.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm

from experiments.errors import ConfigError
from experiments.runner.data import META, TOKEN_BYTES, token_dtype

CHUNK_BYTES = 1 << 22  # what is read at once
PIECE_CHARS = 1 << 16  # what tokenizers encodes at once (pieces end at a newline when one is near)


def parse_tokenizer(spec: str) -> tuple[str, object]:
    """``"bytes"`` → ("bytes", 256); ``"bpe:8192"`` → ("bpe", 8192); ``"path/tokenizer.json"`` → ("file", path)."""
    allowed = "use bytes, bpe:VOCAB (an integer from 257 to 2**32) or the path of an existing tokenizer.json"
    if spec == "bytes":
        return "bytes", 256
    if spec.startswith("bpe:"):
        text = spec[4:]
        if not text.isdigit() or not 257 <= int(text) <= 2**32:
            raise ConfigError(f"--tokenizer: {spec!r} is not allowed; {allowed}")
        return "bpe", int(text)
    if spec.endswith(".json") and os.path.isfile(spec):
        return "file", spec
    raise ConfigError(f"--tokenizer: {spec!r} is not allowed; {allowed}")


def parse_split(text: str) -> tuple[float, ...]:
    """``"0.9,0.1"`` or ``"0.9,0.05,0.05"`` → fractions of train, val (and test), each > 0, summing to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) not in (2, 3) or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-9:
        raise ConfigError(f"--split: {text!r} is not allowed; give TRAIN,VAL or TRAIN,VAL,TEST fractions > 0 that "
                          "sum to 1, e.g. 0.9,0.05,0.05")
    return parts


def _check_inputs(files, out: Path) -> int:
    total = 0
    for f in files:
        if not os.path.isfile(f):
            raise ConfigError(f"FILES: {str(f)!r} does not exist or is not a file; give existing text files")
        total += os.path.getsize(f)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {str(out)!r} exists and is not empty; choose a new folder (nothing was written)")
    return total


class _Stream:
    """The concatenated files as one byte stream: ``chunks()`` yields ``(offset, bytes)``; ``at(offset)`` one byte."""

    def __init__(self, files, chunk_bytes: int):
        self.files, self.chunk_bytes = [str(f) for f in files], chunk_bytes
        self.sizes = [os.path.getsize(f) for f in self.files]

    def chunks(self, start: int = 0, stop: int | None = None):
        offset = 0
        for f, size in zip(self.files, self.sizes):
            if stop is not None and offset >= stop:
                return
            if offset + size > start:
                with open(f, "rb") as fh:
                    fh.seek(max(0, start - offset))
                    pos = offset + max(0, start - offset)
                    while block := fh.read(self.chunk_bytes if stop is None else max(0, min(self.chunk_bytes, stop - pos))):
                        yield pos, block
                        pos += len(block)
            offset += size

    def char_start(self, offset: int) -> int:
        """``offset`` moved forward past UTF-8 continuation bytes (0b10xxxxxx) to a character's first byte."""
        for pos, block in self.chunks(offset):
            for i, b in enumerate(block[:4]):
                if b & 0xC0 != 0x80:
                    return pos + i
            return pos + min(4, len(block))
        return offset


class _Text:
    """Incremental UTF-8 decoding of a byte stream, released up to its last newline (a token never spans a cut)."""

    def __init__(self):
        self.decoder, self.pending, self.seen = codecs.getincrementaldecoder("utf-8")(), "", 0

    def push(self, data: bytes, final: bool = False) -> str:
        try:
            text = self.pending + self.decoder.decode(data, final)
        except UnicodeDecodeError as e:
            raise ConfigError(f"FILES: the text is not UTF-8 near byte {self.seen + e.start} of its split; BPE needs "
                              "UTF-8 text (use --tokenizer bytes for any bytes)") from None
        self.seen += len(data)
        cut = len(text) if final else text.rfind("\n") + 1
        if cut == 0 and len(text) > 4 * CHUNK_BYTES:  # no line end for long: cut anyway
            cut = len(text)
        self.pending = text[cut:]
        return text[:cut]


def _pieces(text: str):
    """``text`` cut into pieces of about PIECE_CHARS characters, each ending just after a newline when one is near."""
    start = 0
    while start < len(text):
        end = start + PIECE_CHARS
        if end < len(text):
            nl = text.rfind("\n", start + PIECE_CHARS // 2, end)
            end = nl + 1 if nl >= 0 else end
        yield text[start:end]
        start = end


class _SplitWriter:
    """Appends one split's tokens to ``NAME.bin``: bytes as they come, BPE text up to the last newline seen."""

    def __init__(self, path: Path, tokenizer, dtype):
        self.fh, self.tok, self.dtype = open(path, "wb"), tokenizer, dtype  # noqa: SIM115 - closed by close()
        self.text, self.bytes, self.tokens = _Text(), 0, 0

    def _write(self, ids) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        arr.tofile(self.fh)
        self.tokens += len(arr)

    def feed(self, data: bytes, final: bool = False) -> None:
        self.bytes += len(data)
        if self.tok is None:
            self._write(np.frombuffer(data, np.uint8))
            return
        pieces = list(_pieces(self.text.push(data, final)))
        if pieces:
            for enc in self.tok.encode_batch(pieces, add_special_tokens=False):
                self._write(enc.ids)

    def close(self) -> None:
        if self.tok is not None:
            self.feed(b"", final=True)
        self.fh.close()


def train_bpe(stream: _Stream, stop: int, vocab_size: int, quiet: bool) -> Tokenizer:
    """A byte-level BPE (GPT-2's pre-tokenizer and byte alphabet) trained on the stream's bytes ``[0, stop)``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=not quiet, special_tokens=[])

    def texts():
        text = _Text()
        for _, block in stream.chunks(0, stop):
            yield from _pieces(text.push(block))
        yield from _pieces(text.push(b"", final=True))

    tok.train_from_iterator(texts(), trainer)
    return tok


def token_bytes_of(tok: Tokenizer | None) -> tuple[np.ndarray, str]:
    """``[vocab]`` UTF-8 bytes per token id and how they were found (exact for byte-level tokenizers)."""
    if tok is None:
        return np.ones(256, np.int64), "exact (one byte a token)"
    vocab = tok.get_vocab_size(with_added_tokens=True)
    if "ByteLevel" in json.dumps(json.loads(tok.to_str()).get("pre_tokenizer")):
        special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
        lengths = [0 if (s := tok.id_to_token(i)) is None or s in special else len(s) for i in range(vocab)]
        return np.asarray(lengths, np.int64), "exact (byte-level alphabet: one character a byte)"
    lengths = [len(tok.decode([i]).encode("utf-8")) for i in range(vocab)]
    return np.asarray(lengths, np.int64), "approximate (each token decoded alone)"


def prepare_data(files, tokenizer: str, out: str | Path, *, split: str = "0.9,0.1",
                 chunk_bytes: int = CHUNK_BYTES, bpe_train_bytes: int = 0, quiet: bool = False) -> dict:
    """Tokenize ``files`` into ``out`` (see the module docstring); returns the ``meta.json`` written.

    Bad input (a missing file, a malformed ``tokenizer`` or ``split``, a non-empty ``out``, BPE on non-UTF-8 text)
    raises ConfigError with one line; nothing in ``out`` is touched."""
    kind, arg = parse_tokenizer(tokenizer)
    fractions = parse_split(split)
    out = Path(out)
    if not files:
        raise ConfigError("FILES: none given; name at least one text file")
    total = _check_inputs(files, out)
    stream = _Stream(files, chunk_bytes)
    bounds = [0]
    for frac in np.cumsum(fractions)[:-1]:
        bounds.append(max(bounds[-1], stream.char_start(round(total * float(frac)))))
    bounds.append(total)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        tok = None
        if kind == "bpe":
            cap = bounds[1] if not bpe_train_bytes else min(bounds[1], stream.char_start(bpe_train_bytes))
            tok = train_bpe(stream, cap, arg, quiet)
        elif kind == "file":
            tok = Tokenizer.from_file(arg)
        vocab = 256 if tok is None else tok.get_vocab_size(with_added_tokens=True)
        dtype = token_dtype(vocab)
        names = ("train", "val", "test")[: len(fractions)]
        writers = [_SplitWriter(partial / f"{n}.bin", tok, dtype) for n in names]
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing", disable=quiet, dynamic_ncols=True)
        for pos, block in stream.chunks():
            for i, w in enumerate(writers):
                lo, hi = max(bounds[i], pos) - pos, min(bounds[i + 1], pos + len(block)) - pos
                if hi > lo:
                    w.feed(block[lo:hi])
            bar.update(len(block))
        bar.close()
        for w in writers:
            w.close()
        lengths, how = token_bytes_of(tok)
        np.save(partial / TOKEN_BYTES, lengths)
        if tok is not None:
            tok.save(str(partial / "tokenizer.json"))
        meta = {"tokenizer": tokenizer if kind != "file" else f"file:{Path(arg).resolve()}", "kind": kind,
                "vocab_size": vocab, "dtype": dtype.name, "files": [str(Path(f).resolve()) for f in files],
                "split": dict(zip(names, fractions)), "bytes": {n: w.bytes for n, w in zip(names, writers)},
                "tokens": {n: w.tokens for n, w in zip(names, writers)}, "token_bytes": how,
                "bpe_train_bytes": (bounds[1] if not bpe_train_bytes else cap) if kind == "bpe" else None}
        (partial / META).write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        partial.rename(out)
        return meta
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
