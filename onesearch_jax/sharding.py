"""Device mesh over ('data', 'fsdp', 'tensor') and logical-name -> sharding helpers, shared by
training and serving (which shards the same parameters the same way).

Parameters carry logical axis names; the config's `mesh.logical_axis_rules`
(pairs of logical name, mesh axis or tuple of mesh axes or None) maps them onto
this mesh. The batch dimension of every input uses the logical name 'batch'.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", "tensor"),
    ("vocab", "tensor"),
    ("length", None),
)

Rules = tuple[tuple[str, Any], ...]


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Fills in one -1 so the product equals num_devices."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh shape {shape} must have {len(MESH_AXES)} entries for {MESH_AXES}")
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh shape {shape}: use positive sizes and at most one -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"mesh shape {shape} does not divide {num_devices} devices")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(f"mesh shape {shape} needs {math.prod(shape)} devices, have {num_devices}")
    return shape


def make_mesh(
    shape: Sequence[int], devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
    """A ('data','fsdp','tensor') mesh over `devices` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(shape, len(devices))
    return jax.make_mesh(
        shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
    )


def normalize_rules(rules) -> Rules:
    """Config rules (lists from ConfigDict/JSON) -> tuple of (name, axis | tuple | None)."""
    out = []
    for pair in rules:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"logical axis rule {pair!r} must be (logical_name, mesh_axes)")
        name, axes = pair
        if isinstance(axes, (list, tuple)):
            axes = tuple(axes)
            bad = [a for a in axes if a not in MESH_AXES]
        else:
            bad = [axes] if axes is not None and axes not in MESH_AXES else []
        if bad:
            raise ValueError(
                f"logical axis rule for {name!r} names unknown mesh axes {bad}; valid: {MESH_AXES}"
            )
        out.append((name, axes))
    return tuple(out)


def logical_to_shardings(logical_specs, mesh: jax.sharding.Mesh, rules) -> Any:
    """A tree of logical PartitionSpecs -> the same tree of NamedShardings."""
    return nn.logical_to_mesh_sharding(logical_specs, mesh, normalize_rules(rules))


def batch_sharding(mesh: jax.sharding.Mesh, rules) -> NamedSharding:
    """Sharding of an input array whose leading axis is the batch."""
    return nn.logical_to_mesh_sharding(P("batch"), mesh, normalize_rules(rules))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_shards(mesh: jax.sharding.Mesh, rules) -> int:
    """How many ways the batch dimension is split."""
    spec = batch_sharding(mesh, rules).spec
    axes = spec[0] if len(spec) else None
    if axes is None:
        return 1
    axes = axes if isinstance(axes, tuple) else (axes,)
    return math.prod(mesh.shape[a] for a in axes)


def process_batch_rows(mesh: jax.sharding.Mesh, rules, global_batch: int) -> slice:
    """The rows of a global batch this process feeds: the block its devices hold.

    One process: all of them. Several: a contiguous block (the devices of a host sit together
    along the batch axes of the mesh); processes that share batch shards (a tensor axis across
    hosts) get the same block."""
    shards = batch_shards(mesh, rules)
    if int(global_batch) % shards:
        raise ValueError(f"global batch {global_batch} is not divisible by the {shards} batch "
                         "shards of the mesh")
    index = batch_sharding(mesh, rules).addressable_devices_indices_map((int(global_batch),))
    spans = {(i[0].start or 0, int(global_batch) if i[0].stop is None else i[0].stop)
             for i in index.values()}
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    if sum(b - a for a, b in spans) != hi - lo:
        raise ValueError(f"this process's batch shards {sorted(spans)} of a batch of "
                         f"{global_batch} are not one contiguous block; order the mesh devices "
                         "so that each host's devices are adjacent along the batch axes")
    return slice(lo, hi)


def shard_batch(
    batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh, rules, global_batch: int | None = None
) -> dict[str, jax.Array]:
    """This process's rows of a batch -> global jax arrays split along the batch axis.

    On one process the batch is the whole global batch. On several, each process passes only
    its `process_batch_rows(mesh, rules, global_batch)`, and the arrays are assembled with the
    global shape (make_array_from_process_local_data with global_shape)."""
    sharding = batch_sharding(mesh, rules)
    shards = batch_shards(mesh, rules)
    out = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0:
            raise ValueError(f"batch[{name!r}] is a scalar; every input needs a batch dimension")
        total = int(global_batch) if global_batch is not None else value.shape[0]
        if total % shards:
            raise ValueError(
                f"batch[{name!r}] with global batch {total}: leading (batch) dimension "
                f"must be divisible by the {shards} batch shards of the mesh"
            )
        rows = process_batch_rows(mesh, rules, total)
        if value.shape[0] != rows.stop - rows.start:
            raise ValueError(
                f"batch[{name!r}] has {value.shape[0]} rows, but this process feeds rows "
                f"{rows.start}:{rows.stop} of the global batch of {total}")
        out[name] = jax.make_array_from_process_local_data(
            sharding, value, (total,) + value.shape[1:])
    return out


def process_local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, as numpy (shard_batch's inverse):
    what host code (rewards of sampled SIDs) may read of an array that spans hosts."""
    if x.is_fully_addressable:
        return np.asarray(x)
    by_start = {}
    for shard in x.addressable_shards:
        if shard.data.shape[1:] != x.shape[1:]:
            raise ValueError(f"array {x.shape} is split beyond its batch axis "
                             f"({shard.data.shape} per shard); only batch-sharded arrays")
        by_start.setdefault(shard.index[0].start or 0, shard.data)
    return np.concatenate([np.asarray(by_start[k]) for k in sorted(by_start)])
