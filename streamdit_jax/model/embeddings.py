"""Patches, the sinusoidal time embedding and 3D rotary position embedding (all as in Wan 2.1)."""

from __future__ import annotations

import functools
import math

import einops
import jax
import jax.numpy as jnp
import numpy as np


def patchify(latents: jax.Array, patch: tuple[int, int, int]) -> jax.Array:
    """[B, F, h, w, C] -> [B, F/pt, h/ph, w/pw, pt·ph·pw·C] (features ordered pt, ph, pw, C)."""
    pt, ph, pw = patch
    return einops.rearrange(latents, "b (f pt) (h ph) (w pw) c -> b f h w (pt ph pw c)", pt=pt, ph=ph, pw=pw)


def unpatchify(tokens: jax.Array, patch: tuple[int, int, int]) -> jax.Array:
    """Inverse of :func:`patchify`."""
    pt, ph, pw = patch
    return einops.rearrange(tokens, "b f h w (pt ph pw c) -> b (f pt) (h ph) (w pw) c", pt=pt, ph=ph, pw=pw)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal embedding [..., dim] of (fractional) timesteps t: cosines first, then sines."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """How a head's channels divide between the frame, height and width rotations (Wan's split)."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


@functools.lru_cache(maxsize=64)
def _axis_angles(size: int, dim: int, theta: float) -> np.ndarray:
    """[size, dim/2] rotation angles of one grid axis (float64, as Wan computes them)."""
    freqs = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    return np.outer(np.arange(size, dtype=np.float64), freqs)


def rope_tables(grid: tuple[int, int, int], head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """cos and sin [F, H, W, head_dim/2] of the rotation angle of each token and channel pair.

    Built in the graph from three small per-axis tables (the full tables would be large constants).
    """
    tables = []
    for fn in (np.cos, np.sin):
        parts = []
        for axis, (dim, size) in enumerate(zip(rope_split(head_dim), grid, strict=True)):
            shape = [1, 1, 1, dim // 2]
            shape[axis] = size
            part = jnp.asarray(fn(_axis_angles(size, dim, theta)), jnp.float32).reshape(shape)
            parts.append(jnp.broadcast_to(part, (*grid, dim // 2)))
        tables.append(jnp.concatenate(parts, axis=-1))
    return tables[0], tables[1]


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates channel pairs (2i, 2i+1) of x [B, F, H, W, N, K] by the per-token angles (float32 math)."""
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    x1, x2 = pairs[..., 0], pairs[..., 1]
    cos = cos[:, :, :, None, :]  # broadcast over heads
    sin = sin[:, :, :, None, :]
    out = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)
