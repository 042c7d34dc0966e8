"""No input escapes validation: random overrides and mutated shipped configs validate or raise ConfigError, and
the CLI on the same inputs exits 0 or 2 with one stderr line (property-based, hypothesis)."""

import contextlib
import dataclasses
import io
import json
import math
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from experiments import ConfigError
from experiments.__main__ import main
from experiments.runner import TOP_KEYS, OptimizerConfig, TrainConfig, apply_overrides, read_file, registry, validate

from .helpers import QUICKSTART, REPO

CONFIGS = sorted((REPO / "experiments" / "configs").glob("**/*.toml"))


def _schema_keys() -> list[str]:
    """Every dotted key the schema knows (fields of every registered dataclass), plus top-level and odd ones."""
    keys = set(TOP_KEYS) | {"sweep.seeds", "sweep.grid", "sweep.variants", "post", "model.nope", "a.b.c", ""}
    for f in dataclasses.fields(TrainConfig):
        keys.add(f"train.{f.name}")
    for f in dataclasses.fields(OptimizerConfig):
        keys.add(f"optimizer.{f.name}")
    for kind, section in (("task", "data"), ("model", "model"), ("optimizer", "optimizer")):
        keys.add(f"{section}.name")
        for entry in registry.entries(kind):
            for f in dataclasses.fields(entry.config) if entry.config else ():
                keys.add(f"{section}.{f.name}")
    return sorted(keys)


KEYS = st.sampled_from(_schema_keys()) | st.text(alphabet="abcdefghij._", min_size=1, max_size=12)
NAMES = st.sampled_from(sorted({e.name for k in ("task", "model", "optimizer", "transform") for e in registry.entries(k)}))
SCALARS = (st.integers(-(2**40), 2**40) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
           | st.text(max_size=8) | NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["name", "x", "steps", "sparsity", "hidden"]) | st.text(max_size=4),
                                        inner, max_size=3), max_leaves=6)


def _toml(value) -> str:
    """A value written as TOML (an inline value, as on the command line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _validates_or_config_error(raw) -> bool:
    try:
        validate(raw)
        return True
    except ConfigError:
        return False


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_random_overrides_validate_or_raise_config_error(overrides):
    try:
        raw = apply_overrides(read_file(QUICKSTART), overrides)
    except ConfigError:
        return
    _validates_or_config_error(raw)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


@FAST
@given(st.sampled_from(CONFIGS), st.data())
def test_mutated_shipped_configs_validate_or_raise_config_error(path, data):
    raw = read_file(path)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(raw))
        target = data.draw(st.sampled_from(paths)) if paths else ("seed",)
        node = raw
        for part in target[:-1]:
            node = node[part]
        action = data.draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            node.pop(target[-1], None)
        elif action == "replace":
            node[target[-1]] = data.draw(VALUES)
        else:
            node[data.draw(st.text(min_size=1, max_size=6))] = data.draw(VALUES)
    _validates_or_config_error(raw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, VALUES), max_size=3))
def test_cli_exits_0_or_2_with_one_line(overrides):
    args = ["sweep", str(QUICKSTART), "--dry-run", *(f"{k}={_toml(v)}" for k, v in overrides)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    assert code in (0, 2), (args, err.getvalue())
    assert (code == 0) == (err.getvalue() == ""), (args, err.getvalue())
    assert code == 0 or len(err.getvalue().strip().splitlines()) == 1, (args, err.getvalue())


def test_named_cases_from_the_issue():
    for override in ["model=no_such_model", "data=NAME", "optimizer=[1, 2]", "train.steps={a = 1}",
                     "sweep=3", "post=5", "post=[{x = 1}]", "seed=-1", "hooks=[1]"]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", str(QUICKSTART), override, "--workdir", str(Path("/nonexistent") / "x")])
        assert code == 2 and len(err.getvalue().strip().splitlines()) == 1, (override, err.getvalue())
    assert "model.name=no_such_model" in _error(["model=no_such_model"])
    # An empty table is a section of defaults, as an empty [train] in a file would be: valid, not an error.
    assert validate(apply_overrides(read_file(QUICKSTART), ["train={}"])).train == TrainConfig()


def _error(overrides) -> str:
    try:
        validate(apply_overrides(read_file(QUICKSTART), overrides))
    except ConfigError as err:
        return str(err)
    return ""
