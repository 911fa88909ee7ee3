"""Building blocks of the causal video VAE (Wan 2.1 layout), channels last, with explicit caches.

Every module that looks back in time takes ``cache`` (None on the first chunk of a stream) and returns
``(output, new_cache)``. Decoding a stream chunk by chunk while carrying the caches gives exactly the
frames of decoding it whole: the whole video is just one chunk.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Cache = Any  # None (fresh stream) or a pytree of arrays


# LeCun-normal init over the kernel [kt, kh, kw, I, O]: fan-in is kt * kh * kw * I.
_CONV_INIT = nnx.initializers.variance_scaling(
    1.0, "fan_in", "truncated_normal", in_axis=(0, 1, 2, 3), out_axis=4
)


class Conv(nnx.Module):
    """A 3D convolution [B, T, H, W, C] with kernel (kt, kh, kw); time is causal (left-padded or cached),
    space is zero-padded by ``padding`` ((top, bottom), (left, right)) and strided by ``stride``."""

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        kernel: tuple[int, int, int] = (3, 3, 3),
        *,
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[tuple[int, int], tuple[int, int]] | None = None,
        rngs: nnx.Rngs,
        dtype: jnp.dtype = jnp.float32,
        zero_init: bool = False,
    ):
        self.kernel_size = tuple(kernel)
        self.stride = tuple(stride)
        kh, kw = kernel[1], kernel[2]
        self.padding = padding if padding is not None else ((kh // 2, kh // 2), (kw // 2, kw // 2))
        init = nnx.with_partitioning(nnx.initializers.zeros_init() if zero_init else _CONV_INIT, (None,) * 5)
        self.kernel = nnx.Param(init(rngs.params(), (*kernel, channels_in, channels_out), jnp.float32))
        zeros = nnx.with_partitioning(nnx.initializers.zeros_init(), (None,))
        self.bias = nnx.Param(zeros(rngs.params(), (channels_out,), jnp.float32))
        self.dtype = dtype

    def conv(self, x: jax.Array) -> jax.Array:
        """The convolution without any temporal padding ('valid' in time).

        Computed as a 2D convolution over every output frame with the kt time taps stacked along the
        channels: the same sums as a 3D convolution, several times faster on XLA:CPU.
        """
        kt, st = self.kernel_size[0], self.stride[0]
        b, t = x.shape[:2]
        frames = (t - kt) // st + 1
        taps = [x[:, i : i + st * (frames - 1) + 1 : st] for i in range(kt)]
        stacked = jnp.concatenate(taps, axis=-1) if kt > 1 else taps[0]
        kernel = self.kernel[...].transpose(1, 2, 0, 3, 4)  # [kh, kw, kt, I, O]
        y = jax.lax.conv_general_dilated(
            stacked.reshape(b * frames, *stacked.shape[2:]).astype(self.dtype),
            kernel.reshape(*kernel.shape[:2], -1, kernel.shape[-1]).astype(self.dtype),
            window_strides=self.stride[1:],
            padding=self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32,
        )
        return y.reshape(b, frames, *y.shape[1:]) + self.bias[...]

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Causal in time: the kt - 1 frames before x come from ``cache`` (zeros for a fresh stream)."""
        back = self.kernel_size[0] - 1
        if back == 0:
            return self.conv(x), None
        if cache is None:
            cache = jnp.zeros((x.shape[0], back, *x.shape[2:]), x.dtype)
        padded = jnp.concatenate([cache.astype(x.dtype), x], axis=1)
        return self.conv(padded), padded[:, -back:]


class RMSNorm(nnx.Module):
    """Wan's channel RMS norm: x / ||x|| * sqrt(C) * gamma over the channel axis."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        ones = nnx.with_partitioning(nnx.initializers.ones_init(), (None,))
        self.gamma = nnx.Param(ones(rngs.params(), (channels,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        sq = jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-24)  # F.normalize's eps=1e-12
        return x * jax.lax.rsqrt(sq) * (x.shape[-1] ** 0.5) * self.gamma[...]


class ResidualBlock(nnx.Module):
    """RMSNorm -> SiLU -> causal conv -> RMSNorm -> SiLU -> causal conv, plus a (1x1x1) shortcut.

    The second conv starts at zero, so every block starts as its shortcut (trained from scratch, the
    VAE learns faster so; converted weights replace it)."""

    def __init__(self, channels_in: int, channels_out: int, *, rngs: nnx.Rngs, dtype: jnp.dtype):
        self.norm1 = RMSNorm(channels_in, rngs=rngs)
        self.conv1 = Conv(channels_in, channels_out, rngs=rngs, dtype=dtype)
        self.norm2 = RMSNorm(channels_out, rngs=rngs)
        self.conv2 = Conv(channels_out, channels_out, rngs=rngs, dtype=dtype, zero_init=True)
        self.conv_shortcut = (
            Conv(channels_in, channels_out, (1, 1, 1), rngs=rngs, dtype=dtype)
            if channels_in != channels_out
            else None
        )

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        h = x if self.conv_shortcut is None else self.conv_shortcut(x)[0]
        y, c1 = self.conv1(jax.nn.silu(self.norm1(x)), cache.get("conv1"))
        y, c2 = self.conv2(jax.nn.silu(self.norm2(y)), cache.get("conv2"))
        return y + h, {"conv1": c1, "conv2": c2}


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the pixels of each frame (no temporal state); starts as the
    identity (zero output projection)."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype: jnp.dtype):
        self.norm = RMSNorm(channels, rngs=rngs)
        self.to_qkv = Conv(channels, 3 * channels, (1, 1, 1), rngs=rngs, dtype=dtype)
        self.proj = Conv(channels, channels, (1, 1, 1), rngs=rngs, dtype=dtype, zero_init=True)

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        b, t, h, w, c = x.shape
        qkv = self.to_qkv.conv(self.norm(x)).reshape(b, t, h * w, 3, c)
        q, k, v = qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :]
        logits = jnp.einsum("btqc,btkc->btqk", q, k) * c**-0.5
        out = jnp.einsum("btqk,btkc->btqc", jax.nn.softmax(logits, axis=-1), v).reshape(b, t, h, w, c)
        return x + self.proj.conv(out), None


class Resample(nnx.Module):
    """Halve (down) or double (up) height and width, and optionally time.

    Temporal resampling keeps the causal first frame alone: 'down3d' passes frame 0 through and then
    merges frame pairs with a stride-2 conv over [previous, a, b]; 'up3d' passes frame 0 through and
    turns every later frame into two with a causal conv to 2C channels.
    """

    def __init__(self, channels: int, mode: str, channels_out: int | None = None, *, rngs: nnx.Rngs, dtype):
        if mode not in ("down2d", "down3d", "up2d", "up3d"):
            raise ValueError(f"unknown resample mode {mode!r}")
        self.mode = mode
        if mode.startswith("down"):
            self.resample = Conv(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=((0, 1), (0, 1)),
                                 rngs=rngs, dtype=dtype)  # fmt: skip
        else:
            out = channels // 2 if channels_out is None else channels_out
            self.resample = Conv(channels, out, (1, 3, 3), rngs=rngs, dtype=dtype)
        time_conv = None
        if mode == "down3d":
            time_conv = Conv(channels, channels, (3, 1, 1), stride=(2, 1, 1), rngs=rngs, dtype=dtype)
        elif mode == "up3d":
            time_conv = Conv(channels, 2 * channels, (3, 1, 1), rngs=rngs, dtype=dtype)
        self.time_conv = time_conv

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        new_cache = None
        if self.mode == "up3d":
            x, new_cache = self._double_time(x, cache)
        if self.mode.startswith("up"):
            x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)  # nearest-neighbour x2
        x = self.resample.conv(x)
        if self.mode == "down3d":
            x, new_cache = self._halve_time(x, cache)
        return x, new_cache

    def _halve_time(self, x: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        """[first] + conv over (prev, a, b) pairs; ``cache`` is the last frame seen."""
        outputs = []
        if cache is None:
            outputs.append(x[:, :1])
            cache, x = x[:, :1], x[:, 1:]
        if x.shape[1] % 2:
            raise ValueError("temporal downsampling needs an even number of frames after the first")
        if x.shape[1]:
            seq = jnp.concatenate([cache.astype(x.dtype), x], axis=1)
            outputs.append(self.time_conv.conv(seq))
            cache = seq[:, -1:]
        return jnp.concatenate(outputs, axis=1), cache

    def _double_time(self, x: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        """[first] + each later frame as two; ``cache`` is the time conv's (zeros after frame 0)."""
        first = None
        if cache is None:
            first, x = x[:, :1], x[:, 1:]
            cache = jnp.zeros((x.shape[0], 2, *x.shape[2:]), x.dtype)
        if x.shape[1]:
            y, cache = self.time_conv(x, cache)
            b, t, h, w, _ = y.shape
            x = y.reshape(b, t, h, w, 2, -1).transpose(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, -1)
        return (x if first is None else jnp.concatenate([first, x], axis=1)), cache
