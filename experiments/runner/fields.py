"""Typed config fields: values checked against a dataclass's annotations, dataclasses built from dicts, bounds.

The one place a config value meets its type: ``coerce`` widens and checks (a float must be finite), ``build_dataclass``
turns a section's dict into its registered dataclass (unknown keys, wrong types and ``__post_init__`` errors become
one-line ``ConfigError``s naming the dotted key), and ``at_least`` / ``positive`` are the bound checks a registered
dataclass's ``__post_init__`` calls.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from experiments.errors import ConfigError


def at_least(cfg, **minimums) -> None:
    """For a config dataclass's ``__post_init__``: ``ValueError("name: value is not allowed; use >= low")`` for the
    first field below its minimum (the loader reports it as one line naming the dotted key)."""
    for name, low in minimums.items():
        value = getattr(cfg, name)
        many = isinstance(value, (list, tuple))
        if any(not v >= low for v in (value if many else [value])):  # NaN too
            raise ValueError(f"{name}: {value!r} is not allowed; use {'values' if many else 'a value'} >= {low}")


def positive(cfg, *names) -> None:
    """For ``__post_init__``: ``ValueError`` naming the first field of ``names`` that is not > 0."""
    for name in names:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name}: {getattr(cfg, name)!r} is not allowed; use a number > 0")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` checked (and widened: int → float, list → tuple) against annotation ``tp``; ConfigError if not."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ConfigError(f"{key}: {value!r} has the wrong type; expected {_type_name(tp)}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            if arm is type(None) and value is None:
                return None
            if arm is type(None):
                continue
            try:
                return coerce(key, value, arm)
            except ConfigError:
                pass
        raise bad
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not allowed; use one of {', '.join(map(repr, args))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: {value!r} needs {len(args)} items")
            return tuple(coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} is not allowed; use a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise bad
    return value


def build_dataclass(prefix: str, cls: type, values: dict) -> Any:
    """An instance of ``cls`` from ``values``: unknown keys, wrong types and ``__post_init__`` errors → ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(fields)) or 'none'}")
    kwargs = {k: coerce(f"{prefix}.{k}", v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(f"{prefix}.{err}") from None
    except TypeError as err:  # e.g. a required field left out
        raise ConfigError(f"{prefix}: {err}") from None
