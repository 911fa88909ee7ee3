"""TinyAutoencoder (autoencoder kind ``tiny``): a small causal autoencoder in TAEHV's layout, trained on
the shapes world.

Encoder: a 3x3 convolution, then per stage (one per 2x of spatial compression) an optional time pooling
(two consecutive frames side by side in the channels, a 1x1 convolution: 2x in time, in the first
stages), a strided 3x3 convolution (2x in space) and memory blocks (each frame beside the previous one,
the memory carried from chunk to chunk), then a 3x3 convolution to the latent channels. The decoder is
:class:`~streamdit_jax.autoencoder.tiny.TinyDecoder` (memory blocks, temporal growth, 2D convolutions).
Only 2D convolutions, one frame at a time: many times cheaper than the VAE.

The causal layout: the first chunk's first frame is repeated to fill its latent cell (t frames), and the
decoder drops the t - 1 frames before it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder.base import Cache, LatentAutoencoder
from streamdit_jax.autoencoder.registry import register_autoencoder
from streamdit_jax.autoencoder.tiny import Conv2d, MemoryBlock, TinyDecoder
from streamdit_jax.config import AutoencoderConfig, TinyDecoderConfig


class TimePool(nnx.Module):
    """Every two consecutive frames into one: their channels side by side, then a 1x1 convolution."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.conv = Conv2d(2 * channels, channels, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        pairs = x.reshape(b, t // 2, 2, h, w, c).transpose(0, 1, 3, 4, 2, 5)
        return self.conv(pairs.reshape(b, t // 2, h, w, 2 * c))


class TinyEncoder(nnx.Module):
    """Frames [B, t·n, H, W, 3] -> raw latents [B, n, H/s, W/s, C], carrying its memory blocks' memories."""

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs, dtype):
        width, stages = cfg.base_dim, len(cfg.dim_mult) - 1
        self.conv_in = Conv2d(3, width, rngs=rngs, dtype=dtype)
        self.pools = nnx.List(
            [TimePool(width, rngs=rngs, dtype=dtype) if pool else None for pool in cfg.temporal_downsample]
        )
        self.downs = nnx.List([Conv2d(width, width, stride=2, rngs=rngs, dtype=dtype) for _ in range(stages)])
        self.blocks = nnx.List(
            [nnx.List([MemoryBlock(width, rngs=rngs, dtype=dtype) for _ in range(cfg.num_res_blocks)])
             for _ in range(stages)]
        )  # fmt: skip
        self.conv_out = Conv2d(width, cfg.latent_channels, rngs=rngs, dtype=dtype)

    def __call__(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        new = {}
        x = jax.nn.relu(self.conv_in(video))
        for s, (pool, down, blocks) in enumerate(zip(self.pools, self.downs, self.blocks, strict=True)):
            if pool is not None:
                x = pool(x)
            x = down(x)
            for j, block in enumerate(blocks):
                x, new[(s, j)] = block(x, cache.get((s, j)))
        return self.conv_out(x), new


@register_autoencoder("tiny")
class TinyAutoencoder(LatentAutoencoder):
    """The tiny encoder and decoder; the decoder's width at the latents' size is ``base_dim`` times the
    largest of ``dim_mult``, halving every stage as :class:`TinyDecoder` does."""

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.cfg = cfg
        self.encoder = TinyEncoder(cfg, rngs=rngs, dtype=dtype)
        width = cfg.base_dim * max(cfg.dim_mult)
        decoder = TinyDecoderConfig.of(cfg, channels=width, blocks=cfg.num_res_blocks)
        self.decoder = TinyDecoder(decoder, rngs=rngs)
        self.init_statistics()

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        return self.encoder(self.whole_latent_frames(video, cache), cache)

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        return self.decoder.decode_chunk(latents, cache)

    def decoding_parts(self) -> tuple:
        return (self.latents_mean, self.latents_std, self.decoder)
