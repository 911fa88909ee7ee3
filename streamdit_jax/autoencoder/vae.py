"""VideoVAE (autoencoder kind ``vae``): a causal 3D convolutional VAE with Wan 2.1's layout (4x time, 8x
space by default), so that Wan 2.1's VAE weights convert into it.

``encode(video [B, T, H, W, 3] in [-1, 1]) -> latents [B, F, h, w, C]`` (the posterior mean, normalised
per channel, as Wan's pipeline does), ``decode(latents) -> video``; the streaming encoder and decoder
(:class:`~streamdit_jax.autoencoder.base.LatentAutoencoder`) carry the causal convolution caches.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder.base import LatentAutoencoder, perturbed
from streamdit_jax.autoencoder.layers import AttentionBlock, Cache, Conv, Resample, ResidualBlock, RMSNorm
from streamdit_jax.autoencoder.registry import register_autoencoder
from streamdit_jax.config import AutoencoderConfig

INITIAL_LOGVAR = -8.0  # posterior std 0.018 at initialisation


class MidBlock(nnx.Module):
    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype):
        self.resnets = nnx.List([ResidualBlock(channels, channels, rngs=rngs, dtype=dtype) for _ in range(2)])
        self.attentions = nnx.List([AttentionBlock(channels, rngs=rngs, dtype=dtype)])

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        x, c0 = self.resnets[0](x, cache.get(0))
        x, _ = self.attentions[0](x)
        x, c1 = self.resnets[1](x, cache.get(1))
        return x, {0: c0, 1: c1}


def _run(layers: nnx.List, x: jax.Array, cache: Cache) -> tuple[jax.Array, dict]:
    cache = cache or {}
    new = {}
    for i, layer in enumerate(layers):
        x, new[i] = layer(x, cache.get(i))
    return x, new


class Encoder(nnx.Module):
    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs, dtype):
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.conv_in = Conv(3, dims[0], rngs=rngs, dtype=dtype)
        layers = []
        for i, (dim_in, dim_out) in enumerate(itertools.pairwise(dims)):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(dim_in, dim_out, rngs=rngs, dtype=dtype))
                dim_in = dim_out
            if i < len(cfg.dim_mult) - 1:
                mode = "down3d" if cfg.temporal_downsample[i] else "down2d"
                layers.append(Resample(dim_out, mode, rngs=rngs, dtype=dtype))
        self.down_blocks = nnx.List(layers)
        self.mid_block = MidBlock(dims[-1], rngs=rngs, dtype=dtype)
        self.norm_out = RMSNorm(dims[-1], rngs=rngs)
        self.conv_out = Conv(dims[-1], 2 * cfg.latent_channels, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        x, c_in = self.conv_in(x, cache.get("conv_in"))
        x, c_down = _run(self.down_blocks, x, cache.get("down_blocks"))
        x, c_mid = self.mid_block(x, cache.get("mid_block"))
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), cache.get("conv_out"))
        return x, {"conv_in": c_in, "down_blocks": c_down, "mid_block": c_mid, "conv_out": c_out}


class UpBlock(nnx.Module):
    def __init__(self, dim_in: int, dim_out: int, num_res_blocks: int, mode: str | None, *, rngs, dtype):
        self.resnets = nnx.List(
            [ResidualBlock(dim_in if j == 0 else dim_out, dim_out, rngs=rngs, dtype=dtype)
             for j in range(num_res_blocks + 1)]
        )  # fmt: skip
        self.upsampler = Resample(dim_out, mode, rngs=rngs, dtype=dtype) if mode else None

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        x, c_res = _run(self.resnets, x, cache.get("resnets"))
        c_up = None
        if self.upsampler is not None:
            x, c_up = self.upsampler(x, cache.get("upsampler"))
        return x, {"resnets": c_res, "upsampler": c_up}


class Decoder(nnx.Module):
    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs, dtype):
        mults = cfg.dim_mult
        dims = [cfg.base_dim * m for m in (mults[-1], *mults[::-1])]
        upsample_time = cfg.temporal_downsample[::-1]
        self.conv_in = Conv(cfg.latent_channels, dims[0], rngs=rngs, dtype=dtype)
        self.mid_block = MidBlock(dims[0], rngs=rngs, dtype=dtype)
        blocks = []
        for i, (dim_in, dim_out) in enumerate(itertools.pairwise(dims)):
            if i > 0:
                dim_in //= 2  # the previous upsampler halved the channels
            mode = None
            if i < len(mults) - 1:
                mode = "up3d" if upsample_time[i] else "up2d"
            blocks.append(UpBlock(dim_in, dim_out, cfg.num_res_blocks, mode, rngs=rngs, dtype=dtype))
        self.up_blocks = nnx.List(blocks)
        self.norm_out = RMSNorm(dims[-1], rngs=rngs)
        self.conv_out = Conv(dims[-1], 3, rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        cache = cache or {}
        x, c_in = self.conv_in(x, cache.get("conv_in"))
        x, c_mid = self.mid_block(x, cache.get("mid_block"))
        x, c_up = _run(self.up_blocks, x, cache.get("up_blocks"))
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), cache.get("conv_out"))
        return x, {"conv_in": c_in, "mid_block": c_mid, "up_blocks": c_up, "conv_out": c_out}


@register_autoencoder("vae")
class VideoVAE(LatentAutoencoder):
    """The causal video VAE; latents are normalised with the per-channel statistics it holds."""

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs):
        with nnx.use_eager_sharding(False):
            dtype = jnp.dtype(cfg.dtype)
            self.cfg = cfg
            self.encoder = Encoder(cfg, rngs=rngs, dtype=dtype)
            self.quant_conv = Conv(2 * cfg.latent_channels, 2 * cfg.latent_channels, (1, 1, 1), rngs=rngs,
                                   dtype=dtype)  # fmt: skip
            # The posterior starts nearly deterministic (log-variance INITIAL_LOGVAR): with a unit-variance
            # start the decoder's input is half noise for hundreds of steps, since the tiny KL weight and
            # the reconstruction gradient move the log-variance only slowly.
            bias = self.quant_conv.bias[...]
            self.quant_conv.bias[...] = bias.at[cfg.latent_channels :].set(INITIAL_LOGVAR)
            self.post_quant_conv = Conv(cfg.latent_channels, cfg.latent_channels, (1, 1, 1), rngs=rngs,
                                        dtype=dtype)  # fmt: skip
            self.decoder = Decoder(cfg, rngs=rngs, dtype=dtype)
            self.init_statistics()

    def posterior(self, video: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Raw (unnormalised) posterior mean and log-variance [B, F, h, w, C] of ``video`` [B, T, H, W, 3]."""
        self.check_video(video)
        mean, logvar, _ = self.posterior_chunk(video)
        return mean, logvar

    def posterior_chunk(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, jax.Array, Cache]:
        """Raw posterior mean and log-variance of one chunk of a stream (``cache`` None for the first),
        and the encoder's causal cache for the next chunk."""
        h, cache = self.encoder(video, cache)
        h, _ = self.quant_conv(h)
        mean, logvar = jnp.split(h, 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0), cache

    def sample(self, video: jax.Array, key: jax.Array) -> jax.Array:
        """Normalised latents of ``video`` drawn from the posterior (``encode`` gives its mean)."""
        mean, logvar = self.posterior(video)
        return self.normalize(mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape))

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """The posterior mean of one chunk (raw) and the encoder's cache."""
        mean, _, cache = self.posterior_chunk(video, cache)
        return mean, cache

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Unclamped video from raw (unnormalised) latents, carrying the decoder's causal caches."""
        x, _ = self.post_quant_conv(latents)
        return self.decoder(x, cache)

    def training_reconstruction(self, video, caches, key, latent_noise=0.0):
        """Decodes a posterior sample (the mean when ``key`` is None), perturbed as the base's; the
        regulariser is the KL per latent element against a unit Gaussian."""
        mean, logvar, encoder_cache = self.posterior_chunk(video, caches[0])
        sample = mean if key is None else mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        if key is not None:
            sample = perturbed(sample, latent_noise, jax.random.fold_in(key, 1))
        reconstruction, decoder_cache = self.decode_raw(sample, caches[1])
        kl = 0.5 * jnp.mean(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
        return reconstruction, kl, (encoder_cache, decoder_cache)

    def decoding_parts(self) -> tuple:
        return (self.latents_mean, self.latents_std, self.post_quant_conv, self.decoder)
