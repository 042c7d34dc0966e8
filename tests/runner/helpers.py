import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "experiments" / "configs" / "quickstart.toml"
TINY = ["train.steps=40", "train.eval_every=20", "train.log_every=10", "train.steps_per_call=10"]


def cli(*args, env=None, timeout=600):
    """Run ``python -m experiments ARGS`` in a subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "experiments", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def devices_env(devices: int, **extra) -> dict:
    """This environment with ``devices`` simulated CPU devices (XLA_FLAGS' other flags kept) and ``extra``."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    return dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu", **{k: str(v) for k, v in extra.items()})


def events(workdir, split=None):
    lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(line) for line in lines if line.strip()]
    return [e for e in out if split is None or e.get("split") == split]





