"""Sharded LM training on 8 simulated CPU devices (one subprocess, ``tests/runner/sharded_runs.py``): every mesh
gives one device's losses within 1e-5 over 20 steps (data=8, fsdp=8, data=2×fsdp=2×tensor=2; the MoE on
expert=4×data=2); with fsdp=8 each device holds at most 1/8 of the parameter and optimizer bytes plus 10% (the
compiled step's memory analysis); a checkpoint written on 8 devices restores on 4 to the same losses. In-process:
the mesh config's errors and the logical-axis rules."""

import json
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import experiments
from experiments.runner.mesh import MeshConfig, logical_to_mesh, make_mesh

from .helpers import REPO, devices_env

TOL = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sharded")
    env = devices_env(8)
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "runner" / "sharded_runs.py"), str(workdir)],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["data8", "fsdp8", "dp2_fsdp2_tp2"])
def test_meshes_give_one_devices_losses(runs, name):
    assert runs["devices"] == 8 and len(runs[name]) == 20
    np.testing.assert_allclose(runs[name], runs["ref"], atol=TOL, rtol=0)
    assert runs["ref"][-1] < runs["ref"][0] - 0.5  # it learned: the comparison is not between two flat lines


def test_moe_on_expert_and_data_axes_gives_one_devices_losses(runs):
    assert len(runs["moe_ep4_dp2"]) == 20
    np.testing.assert_allclose(runs["moe_ep4_dp2"], runs["moe_ref"], atol=TOL, rtol=0)


def test_fsdp8_holds_an_eighth_of_the_state_per_device(runs):
    m8, m1 = runs["memory_fsdp8"], runs["memory_fsdp1"]
    assert m1["state_bytes"] >= m1["total_state_bytes"]  # unsharded: the whole state is an argument
    assert m8["state_bytes"] <= m8["total_state_bytes"] / 8 * 1.10, m8
    assert m8["held_bytes"] <= m8["total_state_bytes"] / 8 * 1.10, m8


def test_state_is_created_sharded(runs):
    """The program that makes the parameters holds, per device, its 1/8 of them and shard-sized temporaries: never
    a whole copy (which would be >= 1 x the parameters' bytes)."""
    c = runs["creation_fsdp8"]
    assert c["output_bytes"] <= c["param_bytes"] / 8 * 1.10, c
    assert c["output_bytes"] + c["temp_bytes"] < 0.5 * c["param_bytes"], c


def test_checkpoint_from_8_devices_resumes_on_4(runs):
    resumed = runs["resumed_on_4"]
    assert len(resumed) == 20  # the events before step 10 are kept, steps 11..20 trained on 4 devices
    np.testing.assert_allclose(resumed[10:], runs["fsdp8"][10:], atol=TOL, rtol=0)
    np.testing.assert_allclose(resumed, runs["ref"], atol=TOL, rtol=0)


def test_rules_map_logical_names_to_mesh_axes():
    import jax

    mesh = make_mesh(MeshConfig(data=1, fsdp=1), jax.devices()[:1])
    assert logical_to_mesh(("embed", "mlp"), (8, 16), mesh, MeshConfig().all_rules()) == P()  # size-1: dropped
    cfg = experiments.from_dict({"data": {"name": "text"}, "model": {"name": "dense_lm"},
                                 "mesh": {"fsdp": 1, "rules": {"embed": ["fsdp", "tensor"], "vocab": ""}}})
    assert cfg.mesh.all_rules()["embed"] == ("fsdp", "tensor") and cfg.mesh.all_rules()["vocab"] == ()
    assert cfg.mesh.all_rules()["mlp"] == ("tensor",)  # defaults kept


@pytest.mark.parametrize("mesh, message", [
    ({"fsdp": 3}, "mesh: data=-1 x fsdp=3 x tensor=1 x expert=1 is not allowed on 1 devices"),
    ({"data": -1, "fsdp": -1}, "mesh.fsdp: -1 is not allowed twice"),
    ({"pipeline": 2}, "mesh.pipeline: unknown key"),
    ({"fsdp": 0}, "mesh.fsdp: 0 is not allowed"),
    ({"rules": {"embed": "model"}}, "mesh.rules.embed: 'model' is not a mesh axis"),
])
def test_bad_mesh_config_is_one_line(mesh, message, tmp_path):
    with pytest.raises(experiments.ConfigError) as err:
        config = experiments.from_dict({"data": {"name": "text"}, "model": {"name": "dense_lm", "width": 16},
                                        "train": {"steps": 1, "batch_size": 4}, "mesh": mesh})
        experiments.run(config, tmp_path / "run", quiet=True)
    assert message in str(err.value) and "\n" not in str(err.value)
