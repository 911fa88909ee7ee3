"""Shared test helpers."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def randomize(params: nnx.State, seed: int = 0, scale: float = 0.2) -> nnx.State:
    """Every parameter replaced by noise (scales around 1), so no zero-initialised gate hides a bug."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [
        (1.0 if "scale" in str(path) else 0.0) + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for k, leaf, (path, _) in zip(
            keys, leaves, jax.tree_util.tree_flatten_with_path(params)[0], strict=True
        )
    ]
    return jax.tree.unflatten(treedef, new)
