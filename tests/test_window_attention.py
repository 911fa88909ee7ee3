"""Windowed attention equals dense attention with the equivalent block mask (shift and wrap included)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax.model.attention import attend, shifted_window_mask, window_attention

GRID = (4, 6, 8)  # frames, height, width: neither cubic nor square


def dense_mask(grid, window, shifted):
    """[L, L]: i may attend to j iff, on every axis, both sit in the same (shifted) window and are no
    further apart than a window in the original coordinates (i.e. the shift did not wrap them together)."""
    coords = np.stack(np.meshgrid(*[np.arange(g) for g in grid], indexing="ij"), -1).reshape(-1, 3)
    allowed = np.ones((len(coords), len(coords)), bool)
    for axis, (size, w) in enumerate(zip(grid, window, strict=True)):
        shift = w // 2 if shifted and w < size else 0
        p = coords[:, axis]
        win = ((p - shift) % size) // w
        allowed &= (win[:, None] == win[None, :]) & (np.abs(p[:, None] - p[None, :]) < w)
    return allowed


def _qkv(seed=0, heads=2, dim=8):
    keys = jax.random.split(jax.random.key(seed), 3)
    return [jax.random.normal(k, (2, *GRID, heads, dim)) for k in keys]


def _dense(q, k, v, mask):
    b, n, d = q.shape[0], q.shape[-2], q.shape[-1]
    flat = [x.reshape(b, -1, n, d) for x in (q, k, v)]
    out = jax.nn.dot_product_attention(*flat, mask=jnp.asarray(mask)[None, None])
    return out.reshape(q.shape)


@pytest.mark.parametrize("window", [(2, 3, 4), (4, 2, 8), (1, 6, 2), (2, 2, 2), None])
@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_equals_masked_dense(window, shifted):
    q, k, v = _qkv()
    got = window_attention(q, k, v, window, shifted)
    full = window or GRID
    want = _dense(q, k, v, dense_mask(GRID, full, shifted))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=2e-5)


def test_wrapped_tokens_are_masked():
    """Without the wrap mask the shifted result would differ: the test above can fail."""
    q, k, v = _qkv(seed=1)
    window = (2, 3, 4)
    got = window_attention(q, k, v, window, shifted=True)
    coords = np.stack(np.meshgrid(*[np.arange(g) for g in GRID], indexing="ij"), -1).reshape(-1, 3)
    same_window_only = np.ones((len(coords),) * 2, bool)
    for axis, (size, w) in enumerate(zip(GRID, window, strict=True)):
        win = ((coords[:, axis] - w // 2) % size) // w
        same_window_only &= win[:, None] == win[None, :]
    leaky = _dense(q, k, v, same_window_only)
    assert float(jnp.abs(got - leaky).max()) > 1e-2


def test_full_extent_axes_are_never_shifted():
    grid, window = GRID, (4, 3, 8)  # frames and width span their axes
    mask = shifted_window_mask(grid, window, (0, 1, 0))
    assert mask.shape == (2, 1, 4 * 3 * 8, 4 * 3 * 8)
    q, k, v = _qkv(seed=2)
    # Only the height shift matters: the same as shifting height alone by hand.
    got = window_attention(q, k, v, window, shifted=True)
    want = _dense(q, k, v, dense_mask(grid, window, shifted=True))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=2e-5)


def test_window_must_divide_grid():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="does not divide the token grid"):
        window_attention(q, k, v, (3, 3, 4), shifted=False)


def test_cross_attention_mask_matches_truncation():
    """A padding mask gives exactly the attention over the unpadded keys."""
    keys = jax.random.split(jax.random.key(3), 3)
    q = jax.random.normal(keys[0], (1, 10, 2, 8))
    k = jax.random.normal(keys[1], (1, 7, 2, 8))
    v = jax.random.normal(keys[2], (1, 7, 2, 8))
    mask = jnp.arange(7)[None, None, None, :] < 4
    got = attend(q, k, v, mask)
    want = attend(q, k[:, :4], v[:, :4])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


@pytest.mark.gpu
def test_cudnn_matches_xla_in_bfloat16():
    q, k, v = (x.astype(jnp.bfloat16) for x in _qkv(heads=2, dim=64))
    for shifted in (False, True):
        a = window_attention(q, k, v, (2, 3, 4), shifted, impl="cudnn").astype(jnp.float32)
        b = window_attention(q, k, v, (2, 3, 4), shifted, impl="xla").astype(jnp.float32)
        assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) < 1e-2
