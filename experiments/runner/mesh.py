"""The device mesh of a run and the rules that shard its state: the config's ``[mesh]`` table.

One mesh with four axes (MaxText's layout; Levanter's "logical axis names + rules" pattern)::

    [mesh]
    data = -1        # pure data parallelism: parameters replicated, the batch split     (the default: all devices)
    fsdp = 1         # fully sharded data parallelism (ZeRO-3): parameters and optimizer state split, the batch too
    tensor = 1       # tensor (Megatron) parallelism: MLP hidden units, attention heads and the vocabulary split
    expert = 1       # expert parallelism: a mixture of experts' experts split (and the batch, see below)
    [mesh.rules]     # logical axis name -> mesh axis (a name, a list of names, or "" for replicated)
    embed = "fsdp"

Sizes are given, or ``-1`` (at most one axis) for the devices left over; their product must be the device count.
Parameters carry logical axis names through flax NNX's own sharding metadata (``nnx.with_partitioning``,
``nnx.Param(..., out_sharding=...)``; read back with ``nnx.get_partition_spec``); ``RULES`` maps them to mesh
axes as MaxText's ``logical_axis_rules`` do (embed → fsdp, mlp / heads / vocab → tensor, expert → expert). The
batch is split over ``BATCH_AXES`` = (data, fsdp, expert): MaxText's ``activation_batch`` rule also splits it over
the expert axis, since an expert axis that did not split the batch would repeat every token's dense layers on each
expert group. A dimension a mesh axis does not divide is left unsplit (a 50257-token vocabulary on 8 tensor
devices), and a mesh axis already used by an earlier dimension of the same parameter is not used twice.

Everything else (RNG counters, routing biases, frozen teachers, scalars) is replicated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments.errors import ConfigError

AXES = ("data", "fsdp", "tensor", "expert")
BATCH_AXES = ("data", "fsdp", "expert")
# MaxText's defaults (MaxText/configs/base.yml, logical_axis_rules), reduced to this mesh's four axes. ``kv`` (the
# per-head dimension) stays whole: these LMs fuse heads × kv into one "heads" dimension, sharded over tensor.
RULES: dict[str, tuple[str, ...]] = {
    "embed": ("fsdp",),
    "mlp": ("tensor",),
    "heads": ("tensor",),
    "kv": (),
    "vocab": ("tensor",),
    "expert": ("expert",),
    "norm": (),
}


@dataclasses.dataclass
class MeshConfig:
    """The ``[mesh]`` table: an axis size each (``-1``: the devices left over), and ``rules`` overriding ``RULES``
    (a logical name → a mesh axis, a list of mesh axes, or "" for replicated)."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    expert: int = 1
    rules: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        sizes = {a: getattr(self, a) for a in AXES}
        for axis, size in sizes.items():
            if size == 0 or size < -1:
                raise ValueError(f"{axis}: {size} is not allowed; give a size >= 1, or -1 for the devices left over")
        if sum(s == -1 for s in sizes.values()) > 1:
            raise ValueError(f"{[a for a, s in sizes.items() if s == -1][1]}: -1 is not allowed twice; give one axis "
                             "-1 (the devices left over) and the others a size")
        self.rules = {name: _rule(name, value) for name, value in dict(self.rules).items()}

    def sizes(self, n_devices: int) -> tuple[int, ...]:
        """The four axis sizes on ``n_devices`` (``-1`` resolved); ConfigError when they do not divide them."""
        sizes = [getattr(self, a) for a in AXES]
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if n_devices % known:
                raise ConfigError(f"mesh: {self.describe()} is not allowed on {n_devices} devices; the given sizes "
                                  f"(product {known}) must divide the device count")
            sizes = [n_devices // known if s == -1 else s for s in sizes]
        elif known != n_devices:
            raise ConfigError(f"mesh: {self.describe()} is not allowed on {n_devices} devices; the sizes' product "
                              f"({known}) must be the device count (or give one axis -1)")
        return tuple(sizes)

    def describe(self) -> str:
        return " x ".join(f"{a}={getattr(self, a)}" for a in AXES)

    def all_rules(self) -> dict[str, tuple[str, ...]]:
        return {**RULES, **self.rules}


def _rule(name: str, value) -> tuple[str, ...]:
    """A rule's value as a tuple of mesh axes: "fsdp" → ("fsdp",), ["fsdp", "tensor"], "" → ()."""
    axes = (value,) if isinstance(value, str) else value
    if not isinstance(axes, (list, tuple)) or not all(isinstance(a, str) for a in axes):
        raise ValueError(f"rules.{name}: {value!r} is not allowed; give a mesh axis ({', '.join(AXES)}), a list of "
                         "them, or \"\" for replicated")
    axes = tuple(a for a in axes if a)
    for a in axes:
        if a not in AXES:
            raise ValueError(f"rules.{name}: {a!r} is not a mesh axis; use one of {', '.join(AXES)}, or \"\"")
    return axes


def parse_mesh(table: dict) -> MeshConfig:
    """The MeshConfig of a ``[mesh]`` table; ConfigError (one line, ``mesh.<key>``) for a bad key or value."""
    unknown = sorted(set(table) - set(AXES) - {"rules"})
    if unknown:
        raise ConfigError(f"mesh.{unknown[0]}: unknown key; allowed: {', '.join(AXES)}, rules")
    for axis in AXES:
        if axis in table and (isinstance(table[axis], bool) or not isinstance(table[axis], int)):
            raise ConfigError(f"mesh.{axis}: {table[axis]!r} is not allowed; give an integer size, or -1")
    if not isinstance(table.get("rules", {}), dict):
        raise ConfigError(f"mesh.rules: {table['rules']!r} is not allowed; give a table of logical name = mesh axis")
    try:
        return MeshConfig(**table)
    except ValueError as err:
        raise ConfigError(f"mesh.{err}") from None


def make_mesh(cfg: MeshConfig, devices=None) -> jax.sharding.Mesh:
    """The ``(data, fsdp, tensor, expert)`` mesh over ``devices`` (default: every device), axes of type Auto (XLA
    propagates shardings from the parameters and the batch; no explicit-sharding types are needed)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = cfg.sizes(len(devices))
    return jax.make_mesh(sizes, AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(AXES), devices=devices)


def logical_to_mesh(names, shape, mesh: jax.sharding.Mesh, rules: dict, zero3: bool = True) -> P:
    """The mesh ``PartitionSpec`` of an array ``[shape]`` whose dimensions carry logical ``names`` (None: none).

    Each name maps through ``rules`` to mesh axes; an axis of size 1, one already used by an earlier dimension, or
    one whose size does not divide the dimension is dropped (that dimension is then split over fewer axes).
    ``zero3``: a parameter none of whose dimensions went to ``fsdp`` (a bias over ``mlp``, a norm's scale, with
    fsdp > 1) has its largest dimension fsdp divides split over fsdp as well, as ZeRO-3 partitions every
    parameter (Rajbhandari et al. 2020, "ZeRO"); otherwise such vectors would be whole on every device."""
    used, spec = set(), []
    for name, dim in zip(tuple(names) + (None,) * (len(shape) - len(names)), shape):
        if name is not None and name not in rules:
            raise ConfigError(f"mesh.rules: the logical axis {name!r} has no rule; add one (known: "
                              f"{', '.join(sorted(rules))})")
        axes: list[str] = []
        for axis in rules.get(name, ()) if name is not None else ():
            size = mesh.shape[axis]
            if axis in used or size == 1 or dim % (size * math.prod(mesh.shape[a] for a in axes)):
                continue
            axes.append(axis)
            used.add(axis)
        spec.append(axes)
    if zero3 and mesh.shape["fsdp"] > 1 and "fsdp" not in used:
        for i in sorted(range(len(shape)), key=lambda i: -shape[i]):  # the largest dimension fsdp divides
            if shape[i] % (mesh.shape["fsdp"] * math.prod(mesh.shape[a] for a in spec[i])) == 0:
                spec[i] = [*spec[i], "fsdp"]
                break
    spec = [tuple(a) if len(a) > 1 else (a[0] if a else None) for a in spec]
    while spec and spec[-1] is None:
        spec.pop()
    return P(*spec)


def state_shardings(variables, mesh: jax.sharding.Mesh, rules: dict):
    """``NamedSharding``\\ s of an NNX state (abstract or concrete), each in a copy of its Variable (so the tree
    has the state's structure): each Variable's logical names (flax's ``nnx.get_partition_spec``) mapped by
    ``rules``; a Variable with none is replicated."""
    logical = nnx.get_partition_spec(variables)
    is_var = lambda x: isinstance(x, nnx.Variable)

    def one(spec_var, var):
        spec = spec_var.get_value() if is_var(spec_var) else spec_var
        shape = np.shape(var.get_value() if is_var(var) else var)
        names = tuple(spec) if isinstance(spec, P) else ()
        sharding = NamedSharding(mesh, logical_to_mesh(names, shape, mesh, rules))
        return spec_var.replace(sharding) if is_var(spec_var) else sharding

    return jax.tree.map(one, logical, variables, is_leaf=is_var)


def like_params(tree, params, param_shardings, replicated: NamedSharding):
    """Shardings for an optimizer state ``tree``: a leaf whose key path ends with a parameter's path and whose
    shape is that parameter's gets the parameter's sharding (Adam's ``mu`` and ``nu``, momentum, ...); any other
    leaf (step counts, scalars, a wrapped optimizer's own numbers) is replicated."""
    by_path = {}
    for (path, p), s in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(param_shardings)):
        by_path[_keys(path)] = (np.shape(p), s)

    def one(path, leaf):
        keys = _keys(path)
        for n in range(len(keys), 0, -1):
            hit = by_path.get(keys[-n:])
            if hit is not None and hit[0] == np.shape(leaf):
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(one, tree)


def _keys(path) -> tuple:
    return tuple(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def batch_spec(mesh: jax.sharding.Mesh) -> P:
    """The batch's first dimension split over every batch axis of size > 1 (all of them when all are 1)."""
    axes = tuple(a for a in BATCH_AXES if mesh.shape[a] > 1) or ("data",)
    return P(axes if len(axes) > 1 else axes[0])


def sharded_mesh(mesh: jax.sharding.Mesh) -> bool:
    """Whether the mesh splits any parameter (an fsdp, tensor or expert axis of size > 1)."""
    return any(mesh.shape[a] > 1 for a in AXES if a != "data")


def fitted(cfg: MeshConfig, n_devices: int) -> MeshConfig:
    """``cfg`` if it fits ``n_devices``, else the default data-parallel mesh with its rules (a finished run's
    model restored on another machine, where only its arrays matter)."""
    try:
        cfg.sizes(n_devices)
        return cfg
    except ConfigError:
        return MeshConfig(rules=dict(cfg.rules))


def batch_divisor(mesh: jax.sharding.Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def per_device_bytes(tree) -> int:
    """Bytes one device (the first array's first) holds of the arrays in ``tree``: its shards, a replicated array
    whole."""
    arrays = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]
    if not arrays:
        return 0
    device = arrays[0].addressable_shards[0].device
    return sum(s.data.nbytes for x in arrays for s in x.addressable_shards if s.device == device)


def describe(mesh: jax.sharding.Mesh) -> dict[str, Any]:
    """``{"mesh/data": 2, ...}`` for a run's summary."""
    return {f"mesh/{a}": int(mesh.shape[a]) for a in AXES}
