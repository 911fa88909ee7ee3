"""PatchMLPAutoencoder (autoencoder kind ``patch_mlp``): the patch kind's cells, each compressed by an MLP.

Space-to-depth as the ``patch`` kind (every t frames x s x s pixels are one latent cell of t·s²·3 values,
``autoencoder.patch`` = (t, s); the causal first frame fills its cell alone), then one MLP shared by all
cells encodes each into ``latent_channels`` values and another decodes it (``base_dim`` hidden units,
``num_res_blocks`` hidden layers, GELU; tanh on the pixels). The decoder also reads the same cell's
latents one latent frame earlier (zeros before a stream's first), which smooths the frames across latent
frames; the streaming decoder carries that last latent frame from chunk to chunk.

Why it exists (docs/autoencoder.md): the transformer's linear head of width D can only draw a
D-dimensional subspace of each token's pixels, far too few for sharp edges in 4 frames x 16 x 16 pixels;
a learned decoder draws them from a few numbers a cell, and matrix products train fast on a CPU (several
times the convolutional kinds' steps in the same time).
"""

from __future__ import annotations

import itertools

import einops
import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder.base import Cache, LatentAutoencoder
from streamdit_jax.autoencoder.registry import register_autoencoder
from streamdit_jax.config import AutoencoderConfig

_STARTED = ()  # the cache after a stream's first chunk: nothing to carry, only "not the first chunk"


class MLP(nnx.Module):
    """``layers`` hidden layers of ``hidden`` units with GELU, then a linear output."""

    def __init__(self, features: int, hidden: int, layers: int, out: int, *, rngs: nnx.Rngs, dtype):
        sizes = [features, *[hidden] * layers]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.out = nnx.Linear(sizes[-1], out, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x = jax.nn.gelu(layer(x))
        return self.out(x).astype(jnp.float32)


@register_autoencoder("patch_mlp")
class PatchMLPAutoencoder(LatentAutoencoder):
    """``encode``: [B, 1 + t(F - 1), H, W, 3] -> [B, F, H/s, W/s, C]; ``decode`` the other way."""

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        t, s = cfg.patch
        pixels = t * s * s * 3
        self.cfg = cfg
        hidden, layers, channels = cfg.base_dim, cfg.num_res_blocks, cfg.latent_channels
        self.encoder = MLP(pixels, hidden, layers, channels, rngs=rngs, dtype=dtype)
        self.decoder = MLP(2 * channels, hidden, layers, pixels, rngs=rngs, dtype=dtype)  # and the one before
        self.init_statistics()

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        t, s = self.cfg.patch
        if cache is None:  # the causal first frame fills its latent cell alone
            video = jnp.concatenate([jnp.repeat(video[:, :1], t - 1, axis=1), video], axis=1)
        if video.shape[1] % t:
            raise ValueError(
                f"a chunk of {video.shape[1]} frames does not fill whole latent frames of {t} (the first "
                f"chunk of a stream takes 1 + {t}k frames, later ones {t}k)"
            )
        cells = einops.rearrange(video, "b (f t) (h p) (w q) c -> b f h w (t p q c)", t=t, p=s, q=s)
        return self.encoder(cells), _STARTED

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Frames of one chunk of raw latents; ``cache`` is the previous chunk's last latent frame (None on
        a stream's first chunk)."""
        t, s = self.cfg.patch
        previous = jnp.zeros_like(latents[:, :1]) if cache is None else cache
        earlier = jnp.concatenate([previous, latents[:, :-1]], axis=1)
        cells = jnp.tanh(self.decoder(jnp.concatenate([latents, earlier], axis=-1)))
        video = einops.rearrange(cells, "b f h w (t p q c) -> b (f t) (h p) (w q) c", t=t, p=s, q=s)
        if cache is None:  # the first latent cell holds the first frame: the mean of its t decoded copies
            video = jnp.concatenate([jnp.mean(video[:, :t], axis=1, keepdims=True), video[:, t:]], axis=1)
        return video, latents[:, -1:]

    def decoding_parts(self) -> tuple:
        return (self.latents_mean, self.latents_std, self.decoder)
