"""Efficiency fronts: the Pareto front equals a sort-and-sweep construction, post stages become points, bad configs are one line."""

from pathlib import Path

import numpy as np
import pytest

from experiments.errors import ConfigError
from experiments.reports import front_section, pareto
from experiments.runner import from_dict


def sweep_front(xs, ys) -> list[bool]:
    """The front by sort and sweep (not the pairwise check ``pareto`` uses): in order of x, a point is on it when
    its y is the lowest among the points of its x and below every y seen at a smaller x."""
    on, best_before = [False] * len(xs), np.inf
    for x in sorted(set(xs)):
        here = [i for i in range(len(xs)) if xs[i] == x]
        low = min(ys[i] for i in here)
        for i in here:
            on[i] = ys[i] == low and ys[i] < best_before
        best_before = min(best_before, low)
    return on


def test_pareto_equals_a_sort_and_sweep():
    rng = np.random.default_rng(0)
    for _ in range(50):
        xs, ys = rng.integers(0, 6, 8).astype(float), rng.integers(0, 6, 8).astype(float)
        assert pareto(xs, ys) == sweep_front(list(xs), list(ys))
    assert pareto([1.0, float("nan"), 3.0], [3.0, 0.0, 1.0]) == [True, False, True]
    assert pareto([1.0, 1.0], [2.0, 2.0]) == [True, True]  # ties are both on the front


def _run(variant, seed, energy, bits, post=()):
    return {"dir": Path(f"/sweep/{variant}__seed={seed}"), "values": {"energy": energy, "bits": bits},
            "summary": {"post": [{"label": label, "metrics": {"energy": e, "bits": b}} for label, e, b in post]}}


def test_front_section_tables_groups_and_chosen_stages(tmp_path):
    groups = {
        "model.name=dense": [_run("dense", s, 10.0, 2.0 + 0.01 * s, [("prune", 5.0, 2.5), ("quantize", 9.0, 2.1)])
                             for s in range(3)],
        "model.name=spiking": [_run("spiking", s, 1.0, 2.6, []) for s in range(3)],
        "model.name=worse": [_run("worse", s, 20.0, 3.0, []) for s in range(3)],
    }
    lines, plots = front_section(groups, tmp_path, [("energy", "bits")], stages={"prune"})
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"model", "dense", "dense + prune", "spiking", "worse"}  # quantize was not chosen
    assert rows["dense"].endswith("| yes |") and rows["spiking"].endswith("| yes |")
    assert rows["dense + prune"].endswith("| yes |") and not rows["worse"].endswith("| yes |")
    assert plots == ["front_bits_vs_energy.png"] and (tmp_path / plots[0]).stat().st_size > 10_000


BASE = {"data": {"name": "digits"}, "model": {"name": "mlp"}}


@pytest.mark.parametrize("sweep, words", [
    ({"front": [["a"]]}, "sweep.front[0]"),
    ({"front": "a:b"}, "sweep.front"),
    ({"scatter": [[1, 2]]}, "sweep.scatter[0]"),
    ({"front_post": [3]}, "sweep.front_post"),
    ({"fronts": []}, "sweep.fronts: unknown key; allowed: baseline, front, front_post, grid"),
])
def test_bad_front_config_is_one_line(sweep, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        from_dict({**BASE, "sweep": sweep})
    from_dict({**BASE, "sweep": {"front": [["a", "b"]], "front_post": ["prune(sparsity=0.5)"]}})
