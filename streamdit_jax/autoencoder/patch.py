"""PatchAutoencoder (autoencoder kind ``patch``): pixels as latents, nothing to train.

Space-to-depth: every t frames x s x s pixels of the video become the t·s²·3 channels of one latent cell
(``autoencoder.patch`` = (t, s)), normalised per channel with statistics measured on shapes clips. Its
inverse is exact, so whatever the detector reads in a true video it reads through this autoencoder: the
latent space loses nothing, and the transformer learns the pixels themselves (as JiT, "Back to Basics:
Let Denoising Generative Models Denoise", 2025, does with large pixel patches and x-prediction).

The causal layout of the other kinds holds: a video of 1 + t·k frames has 1 + k latent frames; the first
frame fills the first latent cell alone (repeated t times), and decoding gives back the mean of that
cell's t frames.
"""

from __future__ import annotations

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder.base import Cache, LatentAutoencoder
from streamdit_jax.autoencoder.registry import register_autoencoder
from streamdit_jax.config import AutoencoderConfig

STARTED = ()  # the cache after a stream's first chunk: nothing to carry, only "not the first chunk"


def to_cells(video: jax.Array, patch: tuple[int, int]) -> jax.Array:
    """[B, F·t, H, W, 3] -> [B, F, H/s, W/s, t·s²·3] for ``patch`` (t, s): space-to-depth."""
    t, s = patch
    return einops.rearrange(video, "b (f t) (h p) (w q) c -> b f h w (t p q c)", t=t, p=s, q=s)


def from_cells(cells: jax.Array, patch: tuple[int, int]) -> jax.Array:
    """The inverse of :func:`to_cells`."""
    t, s = patch
    return einops.rearrange(cells, "b f h w (t p q c) -> b (f t) (h p) (w q) c", t=t, p=s, q=s)


@register_autoencoder("patch")
class PatchAutoencoder(LatentAutoencoder):
    """``encode``: [B, 1 + t(F - 1), H, W, 3] -> [B, F, H/s, W/s, t·s²·3]; ``decode`` its exact inverse."""

    trainable = False

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs):
        del rngs  # no weights
        self.cfg = cfg
        self.init_statistics()

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        return to_cells(self.whole_latent_frames(video, cache), self.cfg.patch).astype(jnp.float32), STARTED

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        t = self.cfg.patch[0]
        video = from_cells(latents, self.cfg.patch)
        if cache is None:  # the first latent cell holds the first frame t times
            video = jnp.concatenate([jnp.mean(video[:, :t], axis=1, keepdims=True), video[:, t:]], axis=1)
        return video, STARTED
