"""Token files (``prepare-data``, ``experiments.runner.data``): what prepare-data writes and refuses, the host-side
batches (a function of (seed, step) alone, each process reading only its rows), bits per byte over the same bytes
for a byte-level and a BPE run, and the same batches after a resumption or on 4 devices. The 200 MB and
multi-process checks are in ``test_token_streams.py``."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from tokenizers import Tokenizer

from experiments import TokenDir, TokenReader, eval_windows, from_dict, prepare_data, run, window_starts
from experiments.__main__ import main

from .helpers import REPO, devices_env


def _text(tmp_path, n=3000):
    words = ["spike", "token", "naïve", "über", "byte", "pair", "merge", "λ", "the", "of", "a"]
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(n)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prep")
    text = _text(tmp)
    out = {}
    for name, spec in (("bytes", "bytes"), ("bpe", "bpe:300")):
        out[name] = tmp / name
        prepare_data([text], spec, out[name], split="0.8,0.1,0.1", chunk_bytes=4096, quiet=True)
    return text, out


def test_bytes_and_bpe_files_hold_the_same_text_split_at_the_same_bytes(prepared):
    text, dirs = prepared
    raw, tok = text.read_bytes(), Tokenizer.from_file(str(dirs["bpe"] / "tokenizer.json"))
    meta_b, meta_p = (json.loads((dirs[k] / "meta.json").read_text()) for k in ("bytes", "bpe"))
    assert 256 < meta_p["vocab_size"] <= 300  # a small text may have fewer merges to make
    assert (meta_b["dtype"], meta_b["vocab_size"], meta_p["dtype"]) == ("uint8", 256, "uint16")
    assert meta_b["bytes"] == meta_p["bytes"] and sum(meta_b["bytes"].values()) == len(raw)
    offset = 0
    for split in ("train", "val", "test"):
        b = np.fromfile(dirs["bytes"] / f"{split}.bin", np.uint8).tobytes()
        ids = np.fromfile(dirs["bpe"] / f"{split}.bin", np.uint16)
        assert b == raw[offset:offset + len(b)] and tok.decode(ids.tolist()).encode() == b
        assert TokenDir(dirs["bpe"]).token_bytes[ids].sum() == len(b) and len(ids) < len(b)  # exact bytes per token
        offset += len(b)


def test_prepare_data_bad_input_is_one_line_exit_2_and_loses_nothing(tmp_path, capsys):
    text = _text(tmp_path, 50)
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("mine")
    cases = [([str(tmp_path / "missing.txt")], "bytes", "does not exist"), ([str(text)], "bpe:12", "bpe:VOCAB"),
             ([str(text)], "wordpiece", "--tokenizer"), ([str(text)], "bytes", "exists and is not empty")]
    for files, spec, words in cases:
        out = kept if "not empty" in words else tmp_path / "new"
        assert main(["prepare-data", *files, "--tokenizer", spec, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / "new").exists() and os.listdir(kept) == ["mine.txt"]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1") * 10)
    assert main(["prepare-data", str(bad), "--tokenizer", "bpe:260", "--out", str(tmp_path / "new"), "--quiet"]) == 2
    assert "not UTF-8" in capsys.readouterr().err and not list(tmp_path.glob("new*"))  # no partial folder left


def test_batches_depend_on_seed_and_step_alone_and_rows_split_the_global_batch(prepared):
    files = TokenDir(prepared[1]["bpe"])
    reader = TokenReader(files, "train", 16, seed=3)
    whole = reader(7, slice(0, 8), 8)["tokens"]
    parts = np.concatenate([reader(7, slice(i, i + 2), 8)["tokens"] for i in range(0, 8, 2)])
    np.testing.assert_array_equal(whole, parts)  # 4 "processes" of 2 rows = 1 of 8
    starts = window_starts(3, 7, reader.n_tokens, 16, 8)
    np.testing.assert_array_equal(whole[:, 0], np.asarray(files.split("train"))[starts])
    assert not np.array_equal(whole, reader(8, slice(0, 8), 8)["tokens"])


def test_eval_windows_score_every_token_once():
    tokens = np.arange(1, 24)
    w = eval_windows(tokens, 0, 5, np.full(30, 2), 0)
    scored = w["tokens"][:, 1:][w["weights"] > 0]
    np.testing.assert_array_equal(np.sort(scored), tokens)
    assert w["bytes"].sum() == 2 * len(tokens) and w["tokens"][0, 0] == 0  # the context token is read, not scored


def _config(dirname, **train):
    return from_dict({"data": {"name": "tokens", "dir": str(dirname), "seq_len": 16, "eval_tokens": 0},
                      "model": {"name": "dense_lm", "width": 16, "depth": 1, "heads": 2},
                      "optimizer": {"name": "adam", "learning_rate": 1e-2}, "hooks": [],
                      "train": {"steps": 20, "batch_size": 8, "eval_every": 0, "log_every": 10,
                                "eval_batch_size": 256, "steps_per_call": 5, **train}})


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    """One finished run (20 steps) on each of the byte-level and the BPE files."""
    tmp = tmp_path_factory.mktemp("runs")
    return {k: run(_config(d), tmp / k, quiet=True) for k, d in prepared[1].items()}


def test_bpe_bits_per_byte_are_over_the_same_bytes_as_the_byte_level_run(prepared, runs):
    finals = {k: r.summary["final"] for k, r in runs.items()}
    val_bytes = json.loads((prepared[1]["bytes"] / "meta.json").read_text())["bytes"]["val"]
    assert finals["bytes"]["bytes"] == finals["bpe"]["bytes"] == val_bytes  # the whole val split, both runs
    for f in finals.values():  # bits per byte = loss x tokens / bytes / ln 2
        assert f["bits_per_byte"] == pytest.approx(f["loss"] * f["tokens"] / f["bytes"] / np.log(2), rel=1e-5)
    assert finals["bpe"]["tokens"] < finals["bytes"]["tokens"] == val_bytes
    assert finals["bytes"]["bits_per_byte"] == pytest.approx(finals["bytes"]["bits_per_token"], rel=1e-6)


def test_a_resumed_token_file_run_sees_the_same_batches(prepared, runs, tmp_path):
    straight = runs["bpe"].summary["final"]
    run(_config(prepared[1]["bpe"], steps=10, checkpoint_every=10), tmp_path / "b", quiet=True)
    (tmp_path / "b" / "summary.json").unlink()  # an unfinished run of 10 steps, resumed to 20
    (tmp_path / "b" / "config.json").unlink()
    resumed = run(_config(prepared[1]["bpe"], checkpoint_every=10), tmp_path / "b", quiet=True).summary["final"]
    assert resumed["loss"] == pytest.approx(straight["loss"], abs=1e-5)


def test_four_devices_see_the_batches_of_one(runs, tmp_path):
    """The same token-file run on 1 device (here) and on 4 simulated devices (a subprocess): the same losses."""
    if jax.device_count() != 1:
        pytest.skip("needs a 1-device parent process")
    one = runs["bpe"]
    config = one.config
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", str(tmp_path / "config.json"), "--workdir",
                           str(tmp_path / "four"), "--quiet"], check=False, capture_output=True, text=True, cwd=REPO,
                          timeout=300, env=devices_env(4))
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert four["device_count"] == 4
    losses = [[json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
              for d in (one.workdir, tmp_path / "four")]
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-5, rtol=0)
    assert four["final"]["loss"] == pytest.approx(one.summary["final"]["loss"], abs=1e-5)
