"""Per-frame noise levels for buffered flow matching (docs/training.md), every choice a traced array.

Each example draws a chunk size c from the configured mixture, or (with the uniform share) one sigma for
all its frames, i.e. plain text-to-video. With N = (B - K)/c chunks, chunk i (0 = oldest) draws
its sigma in [i/N, (i+1)/N] (noise rises along the buffer) from the level density restricted to that
range, by inverting its CDF: uniform, logit-normal or shifted (``BufferConfig``). The K reference
frames stay clean.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

from streamdit_jax.choices import LEVEL_DENSITIES
from streamdit_jax.config import BufferConfig


class Mixture(NamedTuple):
    """A buffer's partition mixture as arrays, so changing it never recompiles."""

    reference: jax.Array  # K, int32 []
    chunk_sizes: jax.Array  # int32 [M]
    probabilities: jax.Array  # float32 [M + 1]: each chunk size, then the uniform share
    density: jax.Array  # int32 []: index into choices.LEVEL_DENSITIES
    level_mean: jax.Array  # float32 []
    level_std: jax.Array  # float32 []
    level_shift: jax.Array  # float32 []

    @classmethod
    def from_config(cls, buffer: BufferConfig) -> Mixture:
        weights = jnp.asarray(buffer.chunk_weights, jnp.float32)
        probabilities = jnp.concatenate(
            [(1.0 - buffer.uniform_share) * weights / jnp.sum(weights), jnp.array([buffer.uniform_share])]
        )
        return cls(
            jnp.asarray(buffer.reference_frames, jnp.int32),
            jnp.asarray(buffer.chunk_sizes, jnp.int32),
            probabilities.astype(jnp.float32),
            jnp.asarray(LEVEL_DENSITIES.index(buffer.level_density), jnp.int32),
            jnp.asarray(buffer.level_mean, jnp.float32),
            jnp.asarray(buffer.level_std, jnp.float32),
            jnp.asarray(buffer.level_shift, jnp.float32),
        )

    def cdf(self, sigma: jax.Array) -> jax.Array:
        """P(level <= sigma) under the level density, for sigma in [0, 1]."""
        logit = jnp.log(sigma) - jnp.log1p(-sigma)  # -inf at 0, inf at 1
        shift = self.level_shift
        return jnp.select(
            [self.density == 1, self.density == 2],
            [ndtr((logit - self.level_mean) / self.level_std), sigma / (shift - (shift - 1.0) * sigma)],
            sigma,
        )

    def quantile(self, p: jax.Array) -> jax.Array:
        """The inverse of :meth:`cdf`."""
        shift = self.level_shift
        return jnp.select(
            [self.density == 1, self.density == 2],
            [
                jax.nn.sigmoid(self.level_mean + self.level_std * ndtri(p)),
                shift * p / (1.0 + (shift - 1.0) * p),
            ],
            p,
        )


class BufferNoise(NamedTuple):
    sigma: jax.Array  # [B, F] float32
    choice: jax.Array  # [B] int32: index into chunk_sizes, or len(chunk_sizes) for uniform
    chunk_frames: jax.Array  # [B] int32: c (B - K for uniform)
    loss_mask: jax.Array  # [B, F] bool: False on reference frames


def sample_sigmas(key: jax.Array, batch: int, frames: int, mixture: Mixture) -> BufferNoise:
    """Per-frame sigma for ``batch`` buffers of ``frames`` latent frames under ``mixture``."""
    k_choice, k_level = jax.random.split(key)
    choice = jax.random.categorical(k_choice, jnp.log(mixture.probabilities), shape=(batch,))
    denoised = frames - mixture.reference
    sizes = jnp.concatenate([mixture.chunk_sizes, denoised[None]])
    chunk_frames = sizes[choice]  # [B]
    position = jnp.arange(frames) - mixture.reference  # [F]; negative on reference frames
    chunk = jnp.maximum(position, 0)[None, :] // chunk_frames[:, None]  # [B, F]
    chunks = (denoised // chunk_frames)[:, None]  # N per example
    draws = jax.random.uniform(k_level, (batch, frames))
    level = jnp.take_along_axis(draws, chunk, axis=1)  # one draw per chunk
    # The density restricted to the chunk's range [i/N, (i+1)/N], by inverse CDF.
    low, high = mixture.cdf(chunk / chunks), mixture.cdf((chunk + 1) / chunks)
    drawn = jnp.clip(mixture.quantile(low + level * (high - low)), chunk / chunks, (chunk + 1) / chunks)
    reference = position[None, :] < 0
    sigma = jnp.where(reference, 0.0, drawn)
    return BufferNoise(
        sigma.astype(jnp.float32), choice, chunk_frames, jnp.broadcast_to(~reference, sigma.shape)
    )


def add_noise(latents: jax.Array, sigma: jax.Array, noise: jax.Array) -> jax.Array:
    """``x_sigma = (1 - sigma)·x + sigma·noise`` with per-frame sigma [B, F] (or [B, 1] for one level
    per example): the one noising formula of training, distillation and streaming."""
    s = sigma[:, :, None, None, None].astype(latents.dtype)
    return (1.0 - s) * latents + s * noise
