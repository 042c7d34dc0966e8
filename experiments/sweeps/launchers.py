"""Where a sweep's runs execute: one small interface, four launchers.

``Sequential`` runs them one after another in this process (``sweep --jobs 1``, the default). The others start each
run as its own process through the same worker (``worker_main``), so a run gives the same folder and the same
metrics wherever it runs:

- ``LocalPool(jobs)``: up to ``jobs`` child processes on this machine, each on its own devices: an equal share of
  the visible GPUs (``CUDA_VISIBLE_DEVICES``) or TPU chips, or on a CPU-only machine an equal share of the cores
  (affinity and thread limits set before JAX starts in the child).
- ``RayLauncher``: each run a Ray task asking for one GPU (or the CPUs named) on an existing Ray cluster.
- ``SlurmLauncher``: one submitit SLURM job array, one array task per run.

Ray and submitit (the ``cluster`` extra) are engines, not code of ours: they get a command and give back its exit
status. A launcher calls ``report(job, status, error)`` with status ``running``, ``done`` or ``failed`` (and the
run's last error line); failing runs are reported and the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from experiments.errors import ConfigError, exit_code
from experiments.runner.config import Config, parse_value, validate
from experiments.runner.distributed import distributed_requested
from experiments.runner.train import run

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
Report = Callable[["Job", str, "str | None"], None]


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of a sweep: its name, validated config and folder; ``log`` collects the child's output."""

    name: str
    config: Config
    rundir: Path
    log: Path

    def payload(self, **extra) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "source": self.config.source,
                "rundir": str(Path(self.rundir).absolute()), "log": str(Path(self.log).absolute()),
                "cwd": os.getcwd(), **extra}


class Launcher(Protocol):
    def launch(self, jobs: list[Job], report: Report) -> None: ...


# ------------------------------------------------------------------------------------------------ the worker


def worker_main(argv: list[str]) -> int:
    """Child process: run one job (a JSON payload) like ``python -m experiments run`` would, quietly."""
    job = json.loads(argv[0])
    cpus = job.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):  # before the backend starts: XLA sizes its pool from this
        os.sched_setaffinity(0, cpus)
    def one_run() -> int:
        run(validate(job["config"], source=job["source"]), job["rundir"], quiet=True)
        return 0

    return exit_code(one_run)


WORKER_CODE = "import sys; from experiments.sweeps.launchers import worker_main; sys.exit(worker_main(sys.argv[1:]))"


def last_error(log: str | Path, returncode: int) -> str:
    """The last non-empty line of a failed run's output (its error), or the exit status."""
    try:
        lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    status = f"exit status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"
    return lines[-1] if lines else status


def _make_execute():
    """``execute(payload) -> exit status``: one job in a child process on a Ray or SLURM node, its output in the
    job's log. Self-contained (it names nothing of this module), so Ray and submitit ship it by value and their
    worker processes start the child without importing JAX themselves."""

    def execute(payload: dict) -> int:
        # imports inside: this function is shipped by value to Ray and SLURM workers, which must not import JAX
        import json
        import os
        import subprocess
        import sys

        env = dict(os.environ)
        for var in payload.get("thread_vars", ()):
            env[var] = str(payload["threads"])
        cwd = payload["cwd"] if os.path.isdir(payload["cwd"]) else None
        os.makedirs(os.path.dirname(payload["log"]), exist_ok=True)
        with open(payload["log"], "w") as out:
            return subprocess.call([sys.executable, "-c", payload["code"], json.dumps(payload)], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=cwd)

    return execute


def _cluster_payload(job: Job, threads: int | None) -> dict:
    return job.payload(code=WORKER_CODE, **({"threads": threads, "thread_vars": list(THREAD_VARS)} if threads else {}))


# ------------------------------------------------------------------------------------------------ launchers


class Sequential:
    """In this process, one after another: today's sweep. An error stops the sweep, as in ``run``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def launch(self, jobs: list[Job], report: Report) -> None:
        for job in jobs:
            report(job, "running", None)
            run(job.config, job.rundir, quiet=self.quiet)
            report(job, "done", None)


def local_devices() -> tuple[str, list[str]]:
    """``(kind, ids)`` of this machine's accelerators, found without starting JAX (which would claim them):
    ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``, then ``TPU_VISIBLE_CHIPS`` or ``/dev/accel*`` / ``/dev/vfio``;
    else ``("cpu", cores this process may use)``. ``JAX_PLATFORMS=cpu`` forces the CPU."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if platforms.split(",")[0].strip() == "cpu":
        return "cpu", [str(c) for c in cores]
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        ids = [d.strip() for d in cuda.split(",") if d.strip() and d.strip() != "-1"]
        if ids:
            return "gpu", ids
    elif shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True).stdout
        ids = [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]
        if ids:
            return "gpu", ids
    tpu = os.environ.get("TPU_VISIBLE_CHIPS") or os.environ.get("TPU_VISIBLE_DEVICES")
    chips = tpu.split(",") if tpu else sorted(p.rsplit("accel", 1)[1] for p in glob.glob("/dev/accel[0-9]*"))
    if not chips:
        chips = sorted(os.path.basename(p) for p in glob.glob("/dev/vfio/[0-9]*"))
    if chips:
        return "tpu", chips
    return "cpu", [str(c) for c in cores]


def slot_envs(jobs: int) -> list[dict]:
    """One environment (plus ``cpus`` for the affinity) per concurrent run: an equal share of the devices."""
    kind, ids = local_devices()
    if jobs > len(ids):
        what = {"gpu": "GPUs", "tpu": "TPU chips", "cpu": "CPU cores"}[kind]
        raise ConfigError(f"--jobs: {jobs} is more than the {len(ids)} {what} here; a run needs its own devices, so "
                          f"use at most {len(ids)}")
    share = len(ids) // jobs
    slots = []
    for i in range(jobs):
        mine = ids[i * share:(i + 1) * share]
        if kind == "gpu":
            slots.append({"env": {"CUDA_VISIBLE_DEVICES": ",".join(mine)}})
        elif kind == "tpu":  # Cloud TPU's variables for several processes on one VM, one port each
            port = str(8476 + i)
            slots.append({"env": {"TPU_VISIBLE_CHIPS": ",".join(mine), "TPU_VISIBLE_DEVICES": ",".join(mine),
                                  "TPU_CHIPS_PER_PROCESS_BOUNDS": f"1,{len(mine)},1" if len(mine) > 1 else "1,1,1",
                                  "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_MESH_CONTROLLER_ADDRESS": f"localhost:{port}",
                                  "TPU_MESH_CONTROLLER_PORT": port}})
        else:
            slots.append({"env": {var: str(share) for var in THREAD_VARS}, "cpus": [int(c) for c in mine]})
    return slots


class LocalPool:
    """Up to ``jobs`` runs at once on this machine, each a child process on its own devices."""

    def __init__(self, jobs: int):
        if jobs < 1:
            raise ConfigError(f"--jobs: {jobs} is not allowed; give 1 or more")
        if distributed_requested():
            raise ConfigError("--jobs: runs over several hosts (JAX_COORDINATOR_ADDRESS or BEYONDSCALE_DISTRIBUTED "
                              "set) cannot share a machine; drop --jobs to run them one after another")
        self.slots = slot_envs(jobs)

    def launch(self, jobs: list[Job], report: Report) -> None:
        queue, free, running = deque(jobs), list(range(len(self.slots))), {}
        try:
            while queue or running:
                while queue and free:
                    job, slot = queue.popleft(), free.pop(0)
                    job.log.parent.mkdir(parents=True, exist_ok=True)
                    payload = job.payload(cpus=self.slots[slot].get("cpus"))
                    with open(job.log, "w") as out:
                        proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE, json.dumps(payload)], stdout=out, stderr=subprocess.STDOUT,
                                                env={**os.environ, **self.slots[slot]["env"]})
                    running[proc] = (job, slot)
                    report(job, "running", None)
                for proc in [p for p in running if p.poll() is not None]:
                    job, slot = running.pop(proc)
                    free.append(slot)
                    ok = proc.returncode == 0
                    report(job, "done" if ok else "failed", None if ok else last_error(job.log, proc.returncode))
                time.sleep(0.1)
        finally:  # interrupted: stop the children; each keeps its last checkpoint, so a rerun resumes them
            for proc in running:
                proc.terminate()
            for proc in running:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _resources(gpus: float | None, cpus: float | None) -> tuple[float, float]:
    """``(gpus, cpus)`` a cluster run asks for: the GPUs named (default 1) unless only CPUs are named."""
    for name, value in (("--gpus-per-run", gpus), ("--cpus-per-run", cpus)):
        if value is not None and value < 0:
            raise ConfigError(f"{name}: {value:g} is not allowed; give 0 or more")
    if gpus is None:
        gpus = 0 if cpus else 1
    return gpus, cpus or 1


def _need(package: str, launcher: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(f"--launcher {launcher}: the {package!r} package is not installed; install the cluster "
                          "extra: pip install 'beyondscale[cluster]'") from None


class RayLauncher:
    """Each run a Ray task (a child process inside it) on the cluster at ``address`` (Ray's default: ``RAY_ADDRESS``
    or a cluster started on this machine). A task asks for ``gpus`` GPUs (default 1; on a cluster without GPUs, one
    CPU, said in the sweep's first line) or, with only ``cpus`` named, that many CPUs. The workdir must be on a filesystem every node sees."""

    def __init__(self, address: str | None = None, *, gpus: float | None = None, cpus: float | None = None,
                 jobs: int | None = None):
        self.ray = _need("ray", "ray")
        self.address, self.jobs = address, jobs
        self.gpus, self.cpus = _resources(gpus, cpus)
        self.gpus_named = gpus is not None

    def launch(self, jobs: list[Job], report: Report) -> None:
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False)
            except Exception as err:  # noqa: BLE001 - ConnectionError, ValueError, ...
                raise ConfigError(f"--address: cannot connect to a Ray cluster at {self.address!r}: "
                                  f"{' '.join(str(err).split())[:200]} (a cluster with token authentication, "
                                  "Ray's default for `ray start` since 2.59, also needs RAY_AUTH_MODE=token here)"
                                  ) from None
        have = ray.cluster_resources().get("GPU", 0)
        if self.gpus and not have and not self.gpus_named:  # the default, on a cluster of CPUs only
            self.gpus, self.cpus = 0, self.cpus or 1
            print(f"ray: the cluster has no GPU, so each run asks for {self.cpus:g} CPU (--gpus-per-run and "
                  "--cpus-per-run choose)", flush=True)
        if self.gpus and have < self.gpus:
            raise ConfigError(f"--launcher ray: a run asks for {self.gpus:g} GPU and the cluster has {have:g}; "
                              "name the CPUs a run takes instead with --cpus-per-run N")
        task = ray.remote(_make_execute()).options(num_gpus=self.gpus, num_cpus=self.cpus, max_retries=0)
        queue, running = deque(jobs), {}
        try:
            while queue or running:
                while queue and (self.jobs is None or len(running) < self.jobs):
                    job = queue.popleft()
                    threads = None if self.gpus else max(1, int(self.cpus))
                    running[task.remote(_cluster_payload(job, threads))] = job
                    report(job, "running", None)
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    job = running.pop(ref)
                    try:
                        rc = ray.get(ref)
                        error = None if rc == 0 else last_error(job.log, rc)
                    except Exception as err:  # noqa: BLE001 - the task itself died (node lost, ...)
                        rc, error = 1, (str(err).strip().splitlines() or [type(err).__name__])[-1]
                    report(job, "done" if rc == 0 else "failed", error)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)


class SlurmLauncher:
    """One SLURM job array through submitit, one array task per run, at most ``jobs`` at once. ``options`` are
    passed to submitit as ``slurm_<key>`` (account, qos, constraint, mem, ...). The workdir must be shared.
    ``cluster="local"`` (or ``BEYONDSCALE_SUBMITIT_CLUSTER=local``) runs the same array with submitit's local
    executor, to try a sweep on a machine without SLURM."""

    def __init__(self, *, partition: str | None = None, time_min: int | None = None, gpus: float | None = None,
                 cpus: float | None = None, jobs: int | None = None, options: dict | None = None,
                 cluster: str | None = None):
        self.submitit = _need("submitit", "slurm")
        self.cluster = cluster or os.environ.get("BEYONDSCALE_SUBMITIT_CLUSTER") or "slurm"
        if self.cluster == "slurm" and not shutil.which("sbatch"):
            raise ConfigError("--launcher slurm: sbatch is not on this machine's PATH; submit from a SLURM login "
                              "node (BEYONDSCALE_SUBMITIT_CLUSTER=local tries the array here)")
        if time_min is not None and time_min < 1:
            raise ConfigError(f"--time: {time_min} is not allowed; give the minutes a run may take (>= 1)")
        self.gpus, self.cpus = _resources(gpus, cpus)
        self.partition, self.time_min, self.jobs = partition, time_min or 60, jobs
        self.options = dict(options or {})

    def launch(self, jobs: list[Job], report: Report) -> None:
        if not jobs:
            return
        folder = Path(jobs[0].log).parent / "slurm"
        folder = folder / "%j" if self.cluster == "slurm" else folder  # SLURM fills in the job id
        ex = self.submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        params = {"timeout_min": self.time_min, "name": "beyondscale-sweep", "cpus_per_task": max(1, int(self.cpus))}
        if self.gpus:
            params["gpus_per_node"] = int(self.gpus)
        if self.cluster == "slurm":
            params.update({f"slurm_{k}": v for k, v in self.options.items()})
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.jobs:
                params["slurm_array_parallelism"] = self.jobs
        try:
            ex.update_parameters(**params)
        except (NameError, ValueError, AssertionError) as err:
            raise ConfigError(f"--slurm-option: {str(err).splitlines()[0]}") from None
        threads = None if self.gpus else max(1, int(self.cpus))
        payloads = [_cluster_payload(job, threads) for job in jobs]
        try:
            handles = ex.map_array(_make_execute(), payloads)
        except Exception as err:  # noqa: BLE001 - sbatch's refusal comes back as several types
            raise ConfigError(f"--launcher slurm: the job array was refused: "
                              f"{(str(err).strip().splitlines() or [type(err).__name__])[-1]}") from None
        pending = dict(zip(handles, jobs))
        for job in jobs:
            report(job, "running", None)
        try:
            while pending:
                for handle in [h for h in pending if h.done()]:
                    job = pending.pop(handle)
                    try:
                        rc = handle.result()
                        error = None if rc == 0 else last_error(job.log, rc)
                    except Exception as err:  # noqa: BLE001 - timeout, node failure, cancelled
                        rc, error = 1, (str(err).strip().splitlines() or [type(err).__name__])[-1]
                    report(job, "done" if rc == 0 else "failed", error)
                time.sleep(0.5)
        finally:
            for handle in pending:
                handle.cancel(check=False)


def parse_options(items) -> dict:
    """``--slurm-option KEY=VALUE`` items as a dict (values in TOML syntax when they parse: ``mem_gb=32``)."""
    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ConfigError(f"--slurm-option: {item!r} is malformed; write KEY=VALUE, e.g. account=myproject")
        out[key.strip()] = parse_value(value)
    return out


def make_launcher(name: str, *, jobs: int | None = None, address: str | None = None, gpus: float | None = None,
                  cpus: float | None = None, partition: str | None = None, time_min: int | None = None,
                  options: dict | None = None, quiet: bool = False) -> Launcher:
    """The launcher the command line names: ``local`` (Sequential for one job, else LocalPool), ``ray``,
    ``slurm``. An option that the chosen launcher does not take is an error."""
    given = {"--address": address, "--gpus-per-run": gpus, "--cpus-per-run": cpus, "--partition": partition,
             "--time": time_min, "--slurm-option": options or None}
    takes = {"local": (), "ray": ("--address", "--gpus-per-run", "--cpus-per-run"),
             "slurm": ("--gpus-per-run", "--cpus-per-run", "--partition", "--time", "--slurm-option")}
    if name not in takes:
        raise ConfigError(f"--launcher: {name!r} is not allowed; choose local, ray or slurm")
    for flag, value in given.items():
        if value is not None and flag not in takes[name]:
            raise ConfigError(f"{flag}: not used by --launcher {name}; it goes with --launcher "
                              f"{' or '.join(k for k, v in takes.items() if flag in v)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs: {jobs} is not allowed; give 1 or more")
    if name == "ray":
        return RayLauncher(address, gpus=gpus, cpus=cpus, jobs=jobs)
    if name == "slurm":
        return SlurmLauncher(partition=partition, time_min=time_min, gpus=gpus, cpus=cpus, jobs=jobs,
                             options=options)
    return Sequential(quiet) if (jobs or 1) == 1 else LocalPool(jobs)
