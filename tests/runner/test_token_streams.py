"""Token files at scale, in subprocesses: training on a 200 MB token file keeps resident memory flat, and 2 processes
× 4 simulated devices read disjoint shares of every global batch whose union is one process's batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import TokenDir, TokenReader

from .helpers import REPO, devices_env

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
        "train": {"steps": 80, "batch_size": 64, "eval_every": 20, "log_every": 20, "steps_per_call": 10}})
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
    evaluation: steps 0, 20, 40, 60 and the end, 80) is the same for both, and flat from step 40 (every program compiled) to the
    end."""
    small, big = (_rss(tmp_path, _token_dir(tmp_path / name, n)) for name, n in (("small", 2**20), ("big", 100 * 2**20)))
    print(f"RSS (MB) at steps 0, 20, 40, 60 and the end (80): 200 MiB file {[round(x) for x in big['rss_mb']]}; 2 MiB file "
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
def test_two_processes_of_four_devices_read_disjoint_shares_of_one_global_batch(tmp_path):
    token_dir = _token_dir(tmp_path / "tokens", 2**16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = devices_env(4, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=2)
    procs = [subprocess.Popen([sys.executable, "-c", MULTI_CHILD, str(token_dir)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env, JAX_PROCESS_ID=str(i)))
             for i in (0, 1)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = sorted((json.loads(o[0].strip().splitlines()[-1]) for o in outs), key=lambda r: r["process"])
    assert [r["rows"] for r in res] == [[0, 8], [8, 16]]  # disjoint halves of the batch
    reference = TokenReader(TokenDir(token_dir), "train", 16, seed=5)  # one process, all 16 rows
    for i, step in enumerate((3, 4, 5)):
        whole = reference(step, slice(0, 16), 16)["tokens"]
        np.testing.assert_array_equal(np.concatenate([res[0]["local"][i], res[1]["local"][i]]), whole)
        for r in res:  # the assembled global array is that batch, on every process
            np.testing.assert_array_equal(np.asarray(r["global"])[i], whole)
