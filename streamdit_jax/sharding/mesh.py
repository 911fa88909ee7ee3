"""Building the device mesh and the sharding context from a MeshConfig."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from streamdit_jax.sharding.axes import BATCH, MESH_AXES
from streamdit_jax.sharding.rules import complete_rules

if TYPE_CHECKING:
    from streamdit_jax.config import MeshConfig


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, context, model) mesh over ``devices`` (default: all), with Auto axes."""
    devices = list(jax.devices() if devices is None else devices)
    shape = cfg.resolved_shape(len(devices))
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Sequence[tuple]) -> Iterator[None]:
    """Makes ``mesh`` current and the logical ``rules`` active (for init, jit tracing and constraints)."""
    with jax.set_mesh(mesh), nnx.logical_axis_rules(complete_rules(rules)):
        yield


def logical_sharding(mesh: Mesh, rules: Sequence[tuple], names: Sequence[str | None]) -> NamedSharding:
    """The NamedSharding of an array whose axes have these logical ``names``."""
    table = dict(rules)
    return NamedSharding(mesh, PartitionSpec(*(table.get(n) if n is not None else None for n in names)))


def batch_mesh_axes(rules: Sequence[tuple]) -> tuple[str, ...]:
    """The mesh axes ``rules`` split the logical batch axis over."""
    target = dict(rules).get(BATCH)
    return () if target is None else target if isinstance(target, tuple) else (target,)


def batch_devices(rules: Sequence[tuple], axis_sizes: Mapping[str, int]) -> int:
    """How many ways a batch splits: the product of the sizes of :func:`batch_mesh_axes` (``axis_sizes``:
    a mesh's ``shape``, or any mesh axis -> size mapping)."""
    return math.prod(axis_sizes[name] for name in batch_mesh_axes(rules))
