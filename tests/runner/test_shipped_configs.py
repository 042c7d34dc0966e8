"""Every config and claim file that ships with the toolkit parses and validates, every run of every sweep and every
claim size included, so a broken header or a renamed field is caught here and not by a user's long run."""
from pathlib import Path

import jax
import pytest

from experiments import claims, sweeps
from experiments.errors import ConfigError
from experiments.runner import read_file

_DIR = Path(__file__).parents[2] / "experiments" / "configs"
CONFIGS = sorted(_DIR.glob("*.toml")) + sorted(_DIR.glob("gpu/*.toml"))  # gpu/: token folders are read at build


def _needs_gpu(err: ConfigError) -> bool:
    """A run this CPU refuses because it needs a GPU (cuDNN attention): validated up to that, then skipped."""
    return "needs a GPU" in str(err) and jax.default_backend() == "cpu"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    try:
        runs = sweeps.plan(path)
    except ConfigError as err:
        if _needs_gpu(err):
            pytest.skip(str(err))
        raise
    expected = len(read_file(path).get("sweep", {}).get("seeds", [0]))
    assert len(runs) >= expected
    assert len({name for name, _ in runs}) == len(runs)  # run folders never collide


@pytest.mark.parametrize("claim", claims.all_claims(), ids=lambda c: c.path.stem)
@pytest.mark.parametrize("size", claims.SIZES)
def test_claim_plans(claim, size):
    if claim.sizes.get(size, {}).get("skip"):  # reported as not run at this size, with its reason
        assert claims.plan(claim, size) == [] and "needs" in claim.sizes[size]["skip"]
        return
    try:
        runs = claims.plan(claim, size)
    except ConfigError as err:
        if _needs_gpu(err):
            pytest.skip(str(err))
        raise
    assert runs and {variant for variant, _, _ in runs} <= set(read_file(claim.experiment)["sweep"].get("variants", {""}))
