"""Config loading and validation: every bad input is one ConfigError line naming the key and what is allowed."""

import dataclasses

import pytest

from experiments import ConfigError, load_config
from experiments.runner import apply_overrides, build_dataclass, parse_value
from experiments.sweeps import expand

from .helpers import QUICKSTART


def test_overrides_reach_every_section():
    cfg = load_config(QUICKSTART, ["optimizer.learning_rate=3e-4", "seed=2", "train.steps=100",
                                   "model.hidden=[32, 16]", "optimizer.b1=0.8"])
    assert cfg.optimizer.learning_rate == 3e-4 and cfg.seed == 2 and cfg.train.steps == 100
    assert cfg.model.cfg.hidden == [32, 16] and cfg.optimizer_cfg.b1 == 0.8
    assert cfg.raw["train"]["steps"] == 100  # the resolved config written to the run dir


def test_int_widens_to_float_and_strings_need_no_quotes():
    assert load_config(QUICKSTART, ["optimizer.learning_rate=1"]).optimizer.learning_rate == 1.0
    assert parse_value("/tmp/some file.txt") == "/tmp/some file.txt"
    assert parse_value("[1, 2]") == [1, 2]


@pytest.mark.parametrize("override, words", [
    (["model.widht=3"], ["model.widht", "unknown key", "hidden"]),
    (["train.steps=abc"], ["train.steps", "'abc'", "int"]),
    (["train.steps=0"], ["train.steps", "0", "> 0"]),
    (["train.batch_size=-4"], ["train.batch_size", "-4", "> 0"]),
    (["optimizer.learning_rate=-1e-3"], ["optimizer.learning_rate", "-0.001", "> 0"]),
    (["optimizer.name=adamm"], ["optimizer.name", "adamm", "adam"]),
    (["model.name=transformer9"], ["model.name", "transformer9", "mlp"]),
    (["data.name=imagenet"], ["data.name", "imagenet", "digits"]),
    (["optimizer.schedule=step"], ["optimizer.schedule", "step", "cosine"]),
    (["bogus=1"], ["bogus", "unknown key"]),
    (["train.steps"], ["train.steps", "key=value"]),
    (["model.hidden=[1, 'a']"], ["model.hidden[1]", "int"]),
    (["hooks=['nope']"], ["hooks", "nope"]),
])
def test_bad_values_name_key_value_and_what_is_allowed(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, override)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_registered_dataclass_post_init_errors_are_config_errors():
    @dataclasses.dataclass
    class C:
        width: int = 4

        def __post_init__(self):
            if self.width % 2:
                raise ValueError(f"width: {self.width} is not allowed; must be even")

    with pytest.raises(ConfigError, match=r"model\.width: 3 is not allowed; must be even"):
        build_dataclass("model", C, {"width": 3})


def test_sweep_expands_variants_grid_and_seeds():
    raw = {"seed": 0, "data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
           "sweep": {"seeds": [0, 1], "grid": {"train.batch_size": [16, 32]},
                     "variants": {"small": {"model.hidden": [4]}, "cnn": {"model": {"name": "cnn"}}}}}
    runs = expand(raw)
    assert len(runs) == 2 * 2 * 2 and len({name for name, _ in runs}) == 8
    cnn = [cfg for name, cfg in runs if name.startswith("cnn")]
    assert all(cfg["model"] == {"name": "cnn"} for cfg in cnn)  # a whole section replaces the base section
    assert {cfg["seed"] for _, cfg in runs} == {0, 1}
    assert "sweep" not in runs[0][1]  # no scatter asked for: nothing of the sweep is kept


def test_apply_overrides_does_not_mutate_input():
    raw = {"train": {"steps": 5}}
    out = apply_overrides(raw, ["train.steps=7"])
    assert raw["train"]["steps"] == 5 and out["train"]["steps"] == 7


def test_quoted_key_parts_reach_sweep_grid_entries():
    raw = apply_overrides({"sweep": {"grid": {"data.k": [12]}}}, ["sweep.grid.\"data.k\"=[12, 18]", "sweep.seeds=[0]"])
    assert raw["sweep"] == {"grid": {"data.k": [12, 18]}, "seeds": [0]}
