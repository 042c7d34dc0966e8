"""One run over several processes, on 127.0.0.1: the README's launch (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID; gloo collectives on CPU). Two processes of 4 simulated CPU devices each must give the metrics of one
process of 8, written once; both killed mid-run and restarted must resume to the uninterrupted run's metrics; a
process that cannot reach the coordinator must stop with one line, not hang."""

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from .helpers import QUICKSTART, REPO, cli, devices_env, events

ARGS = ["train.steps=60", "train.eval_every=30", "train.log_every=10", "train.steps_per_call=10",
        "train.checkpoint_every=20"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_two(workdir, port):
    """Processes 0 and 1 of one run, each with 4 devices; returns the Popen objects."""
    cmd = [sys.executable, "-m", "experiments", "run", str(QUICKSTART), *ARGS, "--workdir", str(workdir), "--quiet"]
    return [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=devices_env(4, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=2,
                                      JAX_PROCESS_ID=pid))
            for pid in (0, 1)]


def _finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def _assert_same_metrics(run_dir, reference):
    """Every event (steps, splits, losses, eval metrics) equal within 1e-5, each written once."""
    ours, ref = events(run_dir), events(reference)
    assert [(e["step"], e["split"]) for e in ours] == [(e["step"], e["split"]) for e in ref]
    for a, b in zip(ours, ref):
        keys = sorted(k for k in b if isinstance(b[k], float) and k not in ("wall_time", "epoch"))
        assert keys and sorted(k for k in a if k in keys) == keys
        np.testing.assert_allclose([a[k] for k in keys], [b[k] for k in keys], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process with 8 devices."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    proc = cli("run", QUICKSTART, *ARGS, "--workdir", run_dir, "--quiet", env=devices_env(8))
    assert proc.returncode == 0, proc.stderr
    return run_dir


@pytest.mark.slow
def test_two_processes_match_one_of_eight_write_once_and_resume_after_both_are_killed(tmp_path, one_process):
    """(a) and (b) in one run, to save two process starts: 2 x 4 devices killed with SIGKILL after the first
    checkpoint, restarted with the same command; every event, written once, equals the 1 x 8 run's."""
    run_dir, port = tmp_path / "run", _free_port()
    procs = _start_two(run_dir, port)
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "20").is_dir():  # the first checkpoint is committed
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no checkpoint written"
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate()
    assert not (run_dir / "summary.json").exists(), "the run finished before it was killed: make it longer"
    saved = sorted(int(d.name) for d in (run_dir / "checkpoints").iterdir() if d.name.isdigit())
    before = (run_dir / "metrics.jsonl").read_text().splitlines()
    outs = _finish(_start_two(run_dir, port))  # the same command again, on the same port
    after = (run_dir / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in before if json.loads(line)["step"] <= saved[-1]]
    assert kept and after[:len(kept)] == kept  # resumed from the last checkpoint: its earlier events untouched
    assert all("results after 60 steps" in out for out in outs)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device_count"] == 8
    _assert_same_metrics(run_dir, one_process)  # the same events, each once (process 0 writes)
    ref = json.loads((one_process / "summary.json").read_text())["final"]
    assert summary["final"] == pytest.approx(ref, abs=1e-5)


def test_a_process_that_cannot_reach_the_coordinator_fails_with_one_line(tmp_path):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.monotonic()
    proc = cli("run", QUICKSTART, "--workdir", tmp_path / "run", "--quiet", timeout=120,
               env=devices_env(4, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=1,
                        BEYONDSCALE_DISTRIBUTED_TIMEOUT=2))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "coordinator" in lines[0], proc.stderr
    assert time.monotonic() - t0 < 60 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("env,words", [
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     "JAX_PROCESS_ID: 2 is not allowed with JAX_NUM_PROCESSES=2; give 0 to 1"),
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1", "JAX_NUM_PROCESSES": "2"}, "give HOST:PORT"),
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES: 'two'"),
])
def test_malformed_distributed_variables_are_one_line_errors(monkeypatch, env, words):
    from experiments.errors import ConfigError
    from experiments.runner import setup_distributed

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=words):
        setup_distributed()
