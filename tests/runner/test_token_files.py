"""Token files (``prepare-data``, ``experiments.runner.data``): what prepare-data writes and refuses, the host-side
batches (a function of (seed, step) alone, each process reading only its rows), and two subprocess checks: a 200 MB
token file trained on keeps resident memory flat, and 2 processes × 4 devices read disjoint shares whose union is
one process's global batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from tokenizers import Tokenizer

from experiments import TokenDir, TokenReader, eval_windows, from_dict, prepare_data, run, window_starts
from experiments.__main__ import main

from .helpers import REPO


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


def test_bpe_bits_per_byte_are_over_the_same_bytes_as_the_byte_level_run(prepared, tmp_path):
    finals = {k: run(_config(d), tmp_path / k, quiet=True).summary["final"] for k, d in prepared[1].items()}
    val_bytes = json.loads((prepared[1]["bytes"] / "meta.json").read_text())["bytes"]["val"]
    assert finals["bytes"]["bytes"] == finals["bpe"]["bytes"] == val_bytes  # the whole val split, both runs
    for f in finals.values():  # bits per byte = loss x tokens / bytes / ln 2
        assert f["bits_per_byte"] == pytest.approx(f["loss"] * f["tokens"] / f["bytes"] / np.log(2), rel=1e-5)
    assert finals["bpe"]["tokens"] < finals["bytes"]["tokens"] == val_bytes
    assert finals["bytes"]["bits_per_byte"] == pytest.approx(finals["bytes"]["bits_per_token"], rel=1e-6)


def test_a_resumed_token_file_run_sees_the_same_batches(prepared, tmp_path):
    straight = run(_config(prepared[1]["bpe"]), tmp_path / "a", quiet=True).summary["final"]
    run(_config(prepared[1]["bpe"], steps=10, checkpoint_every=10), tmp_path / "b", quiet=True)
    (tmp_path / "b" / "summary.json").unlink()  # an unfinished run of 10 steps, resumed to 20
    (tmp_path / "b" / "config.json").unlink()
    resumed = run(_config(prepared[1]["bpe"], checkpoint_every=10), tmp_path / "b", quiet=True).summary["final"]
    assert resumed["loss"] == pytest.approx(straight["loss"], abs=1e-5)


def test_four_devices_see_the_batches_of_one(prepared, tmp_path):
    """The same token-file run on 1 device (here) and on 4 simulated devices (a subprocess): the same losses."""
    if jax.device_count() != 1:
        pytest.skip("needs a 1-device parent process")
    config = _config(prepared[1]["bpe"], log_every=5)
    one = run(config, tmp_path / "one", quiet=True)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", str(tmp_path / "config.json"), "--workdir",
                           str(tmp_path / "four"), "--quiet"], check=False, capture_output=True, text=True, cwd=REPO,
                          timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu",
                                                XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    four = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert four["device_count"] == 4
    losses = [[json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
              for d in (tmp_path / "one", tmp_path / "four")]
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-5, rtol=0)
    assert four["final"]["loss"] == pytest.approx(one.summary["final"]["loss"], abs=1e-5)


RSS_CHILD = textwrap.dedent("""
    import json, sys
    import experiments

    def rss_mb():
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(status["VmRSS"].split()[0]) / 1024

    experiments.register_hook("rss", lambda ctx: {"rss_mb": rss_mb()})
    import jax; jax.numpy.zeros(1).block_until_ready()
    before = rss_mb()
    config = experiments.from_dict({"data": {"name": "tokens", "dir": sys.argv[1], "seq_len": 64, "eval_tokens": 512},
        "model": {"name": "dense_lm", "width": 16, "depth": 1, "heads": 2}, "hooks": ["rss"],
        "train": {"steps": 120, "batch_size": 64, "eval_every": 20, "log_every": 20, "steps_per_call": 10}})
    experiments.run(config, sys.argv[2], quiet=True)
    rss = [e["rss_mb"] for e in map(json.loads, open(sys.argv[2] + "/metrics.jsonl")) if "rss_mb" in e]
    print(json.dumps({"before_mb": before, "rss_mb": rss}))
""")


def _token_dir(d, n):
    """A synthetic token directory of ``n`` uint16 tokens (vocabulary 512), written 8 MiB at a time."""
    d.mkdir()
    rng = np.random.default_rng(0)
    with open(d / "train.bin", "wb") as f:
        for start in range(0, n, 2**22):
            rng.integers(0, 512, min(2**22, n - start), dtype=np.uint16).tofile(f)
    rng.integers(0, 512, 4096, dtype=np.uint16).tofile(d / "val.bin")
    np.save(d / "token_bytes.npy", np.ones(512, np.int64))
    (d / "meta.json").write_text(json.dumps({"tokenizer": "synthetic", "vocab_size": 512, "dtype": "uint16",
                                             "bytes": {"train": n, "val": 4096}, "tokens": {"train": n, "val": 4096}}))
    return d


def _rss(tmp_path, d):
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(d), str(tmp_path / f"run-{d.name}")],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_training_on_a_200_mb_token_file_keeps_resident_memory_flat(tmp_path):
    """The same run on a 2 MiB and a 200 MiB token file: the process's resident memory (VmRSS, read at every
    evaluation: steps 0, 20, ..., 120) is the same for both, and flat from step 40 (every program compiled) to the
    end."""
    small, big = (_rss(tmp_path, _token_dir(tmp_path / name, n)) for name, n in (("small", 2**20), ("big", 100 * 2**20)))
    print(f"RSS (MB) at steps 0, 20, ..., 120, end: 200 MiB file {[round(x) for x in big['rss_mb']]}; 2 MiB file "
          f"{[round(x) for x in small['rss_mb']]}")
    # Steps of ~31 MB come and go in both runs, up to two in a run (the allocators'), whatever the file; a memory map
    # kept open grew it by the whole 200 MB here. Flat means: under half the file, and no more than the 2 MiB run's.
    assert big["rss_mb"][-1] - big["rss_mb"][2] < 100, big  # not growing with what was read from the file
    assert max(big["rss_mb"]) - max(small["rss_mb"]) < 64, (big, small)  # nor with the file's size


MULTI_CHILD = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P
    import experiments
    from experiments.runner import setup_distributed

    setup_distributed()
    files = experiments.TokenDir(sys.argv[1])
    reader = experiments.TokenReader(files, "train", 16, seed=5)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    feed = experiments.HostFeed(reader, NamedSharding(mesh, P("data")), 16)
    feed.start(3)
    local = [reader(s, feed.rows, 16)["tokens"].tolist() for s in (3, 4, 5)]
    glob = multihost_utils.process_allgather(feed.take(3)["tokens"], tiled=True)
    feed.close()
    print(json.dumps({"process": jax.process_index(), "rows": [feed.rows.start, feed.rows.stop], "local": local,
                      "global": np.asarray(glob).tolist()}))
""")


@pytest.mark.slow
def test_two_processes_of_four_devices_read_disjoint_shares_of_one_global_batch(prepared):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2")
    procs = [subprocess.Popen([sys.executable, "-c", MULTI_CHILD, str(prepared[1]["bpe"])], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env, JAX_PROCESS_ID=str(i)))
             for i in (0, 1)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = sorted((json.loads(o[0].strip().splitlines()[-1]) for o in outs), key=lambda r: r["process"])
    assert [r["rows"] for r in res] == [[0, 8], [8, 16]]  # disjoint halves of the batch
    reference = TokenReader(TokenDir(prepared[1]["bpe"]), "train", 16, seed=5)  # one process, all 16 rows
    for i, step in enumerate((3, 4, 5)):
        whole = reference(step, slice(0, 16), 16)["tokens"]
        np.testing.assert_array_equal(np.concatenate([res[0]["local"][i], res[1]["local"][i]]), whole)
        for r in res:  # the assembled global array is that batch, on every process
            np.testing.assert_array_equal(np.asarray(r["global"])[i], whole)
