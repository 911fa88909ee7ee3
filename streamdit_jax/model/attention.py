"""Attention: one dispatcher over registered backends, and shifted 3D window attention on top of it.

Windows are folded into a batch-like axis and attended densely, so a window costs exactly its own
FLOPs. Every other block shifts the windows by half a window (Swin); tokens that the shift wraps around
an edge are masked so that they never attend across the wrap. An axis whose window spans its whole
extent is never shifted, and a window equal to the whole grid is ordinary full attention.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import einops
import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.choices import ATTENTION_BACKENDS, window_shifts
from streamdit_jax.sharding import axes, constrain

# (q [..., T, N, K], k [..., S, N, K], v [..., S, N, K], mask broadcastable to [..., N, T, S] | None)
# -> [..., T, N, K]
AttentionFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array | None], jax.Array]

BACKENDS: dict[str, AttentionFn] = {}


def register_backend(name: str) -> Callable[[AttentionFn], AttentionFn]:
    """Registers an attention implementation under ``name`` (selectable with ``model.attention``)."""

    def decorate(fn: AttentionFn) -> AttentionFn:
        BACKENDS[name] = fn
        ATTENTION_BACKENDS.add(name)
        return fn

    return decorate


@register_backend("xla")
def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Dense softmax attention with float32 logits; any leading axes, masks broadcast (not tiled)."""
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("...tnk,...snk->...nts", q, k, preferred_element_type=jnp.float32) * scale
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("...nts,...snk->...tnk", probs, v, preferred_element_type=jnp.float32).astype(q.dtype)


@register_backend("cudnn")
def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
    """cuDNN fused attention (NVIDIA GPUs; bf16/fp16, head dim a multiple of 8 and <= 256)."""
    lead, (t, n, d), s = q.shape[:-3], q.shape[-3:], k.shape[-3]
    q4, k4, v4 = (x.reshape(-1, *x.shape[-3:]) for x in (q, k, v))
    if mask is not None:
        mask = jnp.broadcast_to(mask, (*lead, mask.shape[-3], t, s)).reshape(-1, mask.shape[-3], t, s)
    out = jax.nn.dot_product_attention(q4, k4, v4, mask=mask, implementation="cudnn")
    return out.reshape(*lead, t, n, d)


def attend(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, impl: str = "xla"
) -> jax.Array:
    """Runs attention through the backend ``impl``."""
    if impl not in BACKENDS:
        raise ValueError(f"unknown attention backend {impl!r}; registered: {sorted(BACKENDS)}")
    return BACKENDS[impl](q, k, v, mask)


# ---------------------------------------------------------------------------------------------------
# 3D windows


def resolve_window(grid: tuple[int, int, int], window: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """The window for a token grid (None: the whole grid); raises if it does not tile the grid."""
    if window is None:
        return grid
    if any(g % w for g, w in zip(grid, window, strict=True)):
        raise ValueError(
            f"attention window {window} does not divide the token grid {grid} (frames, height, width); "
            "choose window sizes that divide each axis (model.window)"
        )
    return tuple(window)


def fold_windows(x: jax.Array, window: tuple[int, int, int]) -> jax.Array:
    """[B, F, H, W, ...] -> [B, windows, tokens per window, ...]."""
    wf, wh, ww = window
    return einops.rearrange(x, "b (f wf) (h wh) (w ww) ... -> b (f h w) (wf wh ww) ...", wf=wf, wh=wh, ww=ww)


def unfold_windows(x: jax.Array, grid: tuple[int, int, int], window: tuple[int, int, int]) -> jax.Array:
    """Inverse of :func:`fold_windows`."""
    (wf, wh, ww), (f, h, w) = window, (g // s for g, s in zip(grid, window, strict=True))
    return einops.rearrange(
        x, "b (f h w) (wf wh ww) ... -> b (f wf) (h wh) (w ww) ...", f=f, h=h, w=w, wf=wf, wh=wh, ww=ww
    )


@functools.lru_cache(maxsize=64)
def shifted_window_regions(
    grid: tuple[int, int, int], window: tuple[int, int, int], shifts: tuple[int, int, int]
) -> np.ndarray:
    """[windows, T] int8 region of each token of the rolled, folded grid.

    After rolling by -shift, the last ``shift`` positions of an axis hold tokens wrapped from its start;
    two tokens may attend to each other only if they are in the same region (the same side of every wrap).
    """
    region = np.zeros(grid, dtype=np.int8)
    for axis, (size, shift) in enumerate(zip(grid, shifts, strict=True)):
        if shift:
            wrapped = (np.arange(size) >= size - shift).astype(np.int8) << axis
            region += wrapped.reshape([size if a == axis else 1 for a in range(3)])
    return np.asarray(fold_windows(region[None], window))[0]


def shifted_window_mask(
    grid: tuple[int, int, int], window: tuple[int, int, int], shifts: tuple[int, int, int]
) -> jax.Array:
    """[windows, 1, T, T] bool mask of a shifted layer, built in the graph from the small region table."""
    ids = jnp.asarray(shifted_window_regions(grid, window, shifts))
    return (ids[:, :, None] == ids[:, None, :])[:, None]


def window_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    window: tuple[int, int, int] | None,
    shifted: bool,
    impl: str = "xla",
) -> jax.Array:
    """Self-attention of q, k, v [B, F, H, W, N, K] within 3D windows, optionally shifted (Swin)."""
    grid = q.shape[1:4]
    window = resolve_window(grid, window)
    shifts = window_shifts(grid, window) if shifted else (0, 0, 0)
    if any(shifts):
        q, k, v = (jnp.roll(x, [-s for s in shifts], axis=(1, 2, 3)) for x in (q, k, v))
    names = (axes.BATCH, axes.WINDOWS, None, axes.ACT_HEADS, None)
    q, k, v = (constrain(fold_windows(x, window), names) for x in (q, k, v))
    mask = shifted_window_mask(grid, window, shifts) if any(shifts) else None
    out = constrain(attend(q, k, v, mask, impl), names)
    out = unfold_windows(out, grid, window)
    if any(shifts):
        out = jnp.roll(out, list(shifts), axis=(1, 2, 3))
    return out
