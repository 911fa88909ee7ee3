"""Mesh, logical-axis rules and sharding helpers. Only this package names mesh axes."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import linen

from streamdit_jax.sharding import axes
from streamdit_jax.sharding.mesh import batch_devices, batch_mesh_axes, logical_sharding, make_mesh, use_mesh
from streamdit_jax.sharding.rules import DEFAULT_RULES, complete_rules


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Annotates activation ``x`` with logical axis ``names``; a no-op when no mesh is set."""
    if jax.sharding.get_abstract_mesh().empty:
        return x
    return linen.with_logical_constraint(x, tuple(names))


__all__ = [
    "DEFAULT_RULES",
    "axes",
    "batch_devices",
    "batch_mesh_axes",
    "complete_rules",
    "constrain",
    "logical_sharding",
    "make_mesh",
    "use_mesh",
]
