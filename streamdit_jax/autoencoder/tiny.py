"""TinyDecoder: a small causal streaming decoder that imitates the VAE's decoder (after TAESD/TAEHV).

Latents of the VAE's layout [B, F, h, w, C] (normalised, as the DiT makes them) in, frames
[B, T, H, W, 3] in [-1, 1] out, with T = 1 + t(F - 1) for the VAE's temporal compression t (the causal
first frame), so it can replace the VAE's decoder frame for frame. Only 2D convolutions, one frame at a
time; time enters through

- memory blocks, which see each frame's input next to the previous frame's (a one-frame memory, carried
  from chunk to chunk), and
- temporal growth, a 1x1 convolution that turns each frame into 2 (twice for t = 4).

A linear colour preview of the latents (a 1x1 convolution, zero at init; ``preview``) is upsampled
bilinearly (or to nearest, or left out) and added before the output's tanh: the coarse colours are
learnt at once, the convolutions learn the detail on top.

Decoding a stream chunk by chunk while carrying the memories gives exactly the frames of decoding it
whole (the first chunk drops the t - 1 frames before the causal first one). ``flops_per_frame`` counts
its multiply-adds analytically. It is distilled from one VAE (``decoder_training``) and records that
VAE's :func:`vae_fingerprint`; :func:`restore_tiny_decoder` refuses it beside another VAE.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.config import ConfigError, TinyDecoderConfig
from streamdit_jax.storage import workpath

Cache = Any


def vae_fingerprint(vae) -> str:
    """A short hash of what makes an autoencoder's frames from latents (its ``decoding_parts()``: the
    VAE's latent statistics, post-quant convolution and decoder weights). Two autoencoders share it only
    if they decode identically."""
    digest = hashlib.sha256()
    for part in vae.decoding_parts():
        for leaf in jax.tree.leaves(nnx.state(part) if isinstance(part, nnx.Module) else part[...]):
            array = np.asarray(jax.device_get(leaf), np.float32)
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class Conv2d(nnx.Module):
    """A 3x3 (or 1x1) convolution applied to every frame of [B, T, H, W, C] (``stride`` in space)."""

    def __init__(
        self, channels_in: int, channels_out: int, kernel: int = 3, *, stride: int = 1, rngs: nnx.Rngs, dtype
    ):
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=(0, 1, 2))
        self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, channels_in, channels_out), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels_out,), jnp.float32))
        self.dtype = dtype
        self.stride = stride

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t = x.shape[:2]
        y = jax.lax.conv_general_dilated(
            x.reshape(b * t, *x.shape[2:]).astype(self.dtype),
            self.kernel[...].astype(self.dtype),
            window_strides=(self.stride, self.stride),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32,
        )
        return y.reshape(b, t, *y.shape[1:]) + self.bias[...]


class MemoryBlock(nnx.Module):
    """conv(x_t ‖ x_{t-1}) → ReLU → conv → ReLU → conv, plus x_t, then ReLU. The memory is the last frame
    of the input (zeros before the first)."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.convs = nnx.List([Conv2d(2 * channels, channels, rngs=rngs, dtype=dtype),
                               Conv2d(channels, channels, rngs=rngs, dtype=dtype),
                               Conv2d(channels, channels, rngs=rngs, dtype=dtype)])  # fmt: skip

    def __call__(self, x: jax.Array, memory: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        if memory is None:
            memory = jnp.zeros_like(x[:, :1])
        past = jnp.concatenate([memory, x[:, :-1]], axis=1)
        h = jnp.concatenate([x, past], axis=-1)
        h = jax.nn.relu(self.convs[0](h))
        h = jax.nn.relu(self.convs[1](h))
        return jax.nn.relu(self.convs[2](h) + x), x[:, -1:]


class TinyDecoder(nnx.Module):
    """``decode(latents)`` whole, or ``step``-wise through :meth:`streaming_decoder`."""

    def __init__(self, cfg: TinyDecoderConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.cfg = cfg
        width = cfg.width
        self.conv_in = Conv2d(cfg.latent_channels, width(0), rngs=rngs, dtype=dtype)
        self.blocks = nnx.List(
            [nnx.List([MemoryBlock(width(s), rngs=rngs, dtype=dtype) for _ in range(cfg.blocks)])
             for s in range(cfg.stages)]
        )  # fmt: skip
        self.grow = nnx.List(
            [Conv2d(width(s), 2 * width(s), 1, rngs=rngs, dtype=dtype) if cfg.grows_time(s) else None
             for s in range(cfg.stages)]
        )  # fmt: skip
        self.up_convs = nnx.List(
            [Conv2d(width(s), width(s + 1), rngs=rngs, dtype=dtype) for s in range(cfg.stages)]
        )
        self.conv_out = Conv2d(width(cfg.stages), 3, rngs=rngs, dtype=dtype)
        # A linear colour preview of each latent pixel (zero at init), upsampled (``preview``) and added
        # before the tanh: the coarse colours come at once and the convolutions learn the detail on top.
        self.preview = Conv2d(cfg.latent_channels, 3, 1, rngs=rngs, dtype=dtype)
        self.preview.kernel[...] = jnp.zeros_like(self.preview.kernel[...])

    def decode_chunk(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Frames of one chunk of a stream (``cache`` None for the first) and the memories for the next."""
        first = cache is None
        cache = cache or {}
        preview = self.preview(latents)
        x = jax.nn.relu(self.conv_in(latents))
        new = {}
        for s in range(self.cfg.stages):
            for j, block in enumerate(self.blocks[s]):
                x, new[(s, j)] = block(x, cache.get((s, j)))
            b, t, h, w, c = x.shape
            x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)  # nearest, 2x in space
            if self.grow[s] is not None:  # each frame into two, in time order
                x = self.grow[s](x).reshape(b, t, 2 * h, 2 * w, 2, c).transpose(0, 1, 4, 2, 3, 5)
                x = x.reshape(b, 2 * t, 2 * h, 2 * w, c)
            x = jax.nn.relu(self.up_convs[s](x))
        video = jnp.tanh(self.conv_out(x) + self._upsampled(preview))
        if first:  # the causal first latent frame is one video frame
            video = video[:, self.cfg.temporal_compression - 1 :]
        return video, new

    def _upsampled(self, preview: jax.Array) -> jax.Array:
        """The preview [B, F, h, w, 3] at the frames' size and count (0 with ``preview="none"``)."""
        if self.cfg.preview == "none":
            return jnp.zeros((), preview.dtype)
        b, f, h, w, _ = preview.shape
        s = self.cfg.spatial_compression
        if self.cfg.preview == "bilinear":  # smooth: no s x s blocks
            preview = jax.image.resize(preview, (b, f, h * s, w * s, 3), "linear")
        else:
            preview = jnp.repeat(jnp.repeat(preview, s, axis=2), s, axis=3)
        return jnp.repeat(preview, self.cfg.temporal_compression, axis=1)

    def decode(self, latents: jax.Array) -> jax.Array:
        """Video [B, 1 + t(F - 1), H, W, 3] in [-1, 1] from normalised latents [B, F, h, w, C]."""
        if latents.ndim != 5 or latents.shape[-1] != self.cfg.latent_channels:
            raise ValueError(
                f"latents must be [B, F, h, w, C={self.cfg.latent_channels}], got {latents.shape}"
            )
        return self.decode_chunk(latents)[0]

    def streaming_decoder(self) -> TinyStreamingDecoder:
        return TinyStreamingDecoder(self)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=3)
def _decode_chunk(graphdef: nnx.GraphDef, state: nnx.State, latents: jax.Array, cache: Cache):
    return nnx.merge(graphdef, state).decode_chunk(latents, cache)


class TinyStreamingDecoder:
    """``step(latents [B, n, h, w, C]) -> frames``, carrying the memories; the same contract as the VAE's
    :class:`StreamingDecoder` (1 + t(n - 1) frames for the first chunk, tn after)."""

    def __init__(self, decoder: TinyDecoder):
        self._graphdef, self._state = nnx.split(decoder)
        self._cache: Cache = None

    def step(self, latents: jax.Array) -> jax.Array:
        video, self._cache = _decode_chunk(self._graphdef, self._state, latents, self._cache)
        return video

    def reset(self) -> None:
        self._cache = None


def flops_per_frame(cfg: TinyDecoderConfig, latent_hw: tuple[int, int]) -> float:
    """2 x the multiply-adds of the convolutions per output video frame in steady state (t frames per
    latent frame), at latent size (h, w), and of the preview's bilinear resize (a matmul along each axis
    a channel). Activations, nearest upsampling and reshapes are not counted."""
    h, w = latent_hw
    conv = lambda pixels, k, cin, cout: 2 * pixels * k * k * cin * cout
    up = cfg.spatial_compression
    resize = 2 * 3 * (up * h * h * w + up * h * up * w * w)  # [H, h] @ [h, w], then [H, w] @ [w, W]
    preview = 0 if cfg.preview == "none" else conv(h * w, 1, cfg.latent_channels, 3)
    preview += resize if cfg.preview == "bilinear" else 0
    total = conv(h * w, 3, cfg.latent_channels, cfg.width(0)) + preview
    frames = 1  # frames per latent frame at the current stage
    for s in range(cfg.stages):
        c, pixels = cfg.width(s), h * w * 4**s
        total += frames * cfg.blocks * (conv(pixels, 3, 2 * c, c) + 2 * conv(pixels, 3, c, c))
        pixels *= 4
        if cfg.grows_time(s):
            total += frames * conv(pixels, 1, c, 2 * c)
            frames *= 2
        total += frames * conv(pixels, 3, c, cfg.width(s + 1))
    total += frames * conv(pixels, 3, cfg.width(cfg.stages), 3)
    return total / cfg.temporal_compression


def check_distilled_from(
    cfg: TinyDecoderConfig, vae, source: str | Path, vae_source: str | Path = "the VAE"
) -> None:
    """A ConfigError unless the tiny decoder ``cfg`` (from ``source``) was distilled from ``vae``."""
    layout = (vae.cfg.latent_channels, vae.cfg.spatial_compression, vae.cfg.temporal_compression)
    if (cfg.latent_channels, cfg.spatial_compression, cfg.temporal_compression) != layout:
        raise ConfigError(
            f"the tiny decoder in {source} decodes latents of (channels, spatial, temporal compression) "
            f"{(cfg.latent_channels, cfg.spatial_compression, cfg.temporal_compression)}, {vae_source} makes "
            f"{layout}. Fix: train one for this VAE (streamdit train-decoder --vae VAE_DIR)"
        )
    fingerprint = vae_fingerprint(vae)
    if cfg.vae_fingerprint != fingerprint:
        raise ConfigError(
            f"the tiny decoder in {source} was trained for another VAE (fingerprint {cfg.vae_fingerprint!r}; "
            f"{vae_source} has {fingerprint!r}). Fix: pass the tiny decoder trained for this VAE, or train "
            "one: streamdit train-decoder --config PRESET --vae VAE_DIR --workdir DIR"
        )


def restore_tiny_decoder(directory: str | Path, vae=None, vae_source: str | Path = "the VAE") -> TinyDecoder:
    """The tiny decoder of a ``train-decoder`` checkpoint (EMA weights); with ``vae``, checked to be the
    one distilled from it (:func:`check_distilled_from`) before anything is built."""
    from streamdit_jax.checkpoint import expect_kind, latest_step, restore_config, restore_tree

    if not workpath(directory).is_dir():
        raise FileNotFoundError(
            f"tiny decoder {directory} does not exist. Fix: pass --tiny-decoder DIR, a `streamdit "
            "train-decoder` work dir"
        )
    step = latest_step(directory)
    cfg = restore_config(directory, step)
    expect_kind(cfg, TinyDecoderConfig, directory)
    if vae is not None:
        check_distilled_from(cfg, vae, directory, vae_source)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: TinyDecoder(cfg, rngs=nnx.Rngs(0))))
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restore_tree(directory, step, abstract, jax.tree.map(lambda _: local, abstract), ema=True)
    return nnx.merge(graphdef, jax.tree.map(lambda x: jax.device_put(np.asarray(x)), abstract))
