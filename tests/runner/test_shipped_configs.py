"""Every config and claim file that ships with the toolkit parses and validates, every run of every sweep and every
claim size included, so a broken header or a renamed field is caught here and not by a user's long run."""
from pathlib import Path

import pytest

from experiments import claims, sweep
from experiments.config import read_file

CONFIGS = sorted((Path(__file__).parents[2] / "experiments" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    runs = sweep.plan(path)
    expected = len(read_file(path).get("sweep", {}).get("seeds", [0]))
    assert len(runs) >= expected
    assert len({name for name, _ in runs}) == len(runs)  # run folders never collide


@pytest.mark.parametrize("claim", claims.all_claims(), ids=lambda c: c.path.stem)
@pytest.mark.parametrize("size", claims.SIZES)
def test_claim_plans(claim, size):
    runs = claims.plan(claim, size)
    assert runs and {variant for variant, _, _ in runs} <= set(read_file(claim.experiment)["sweep"].get("variants", {""}))
