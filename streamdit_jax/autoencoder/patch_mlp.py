"""PatchMLPAutoencoder (autoencoder kind ``patch_mlp``): the patch kind's cells, each compressed by an MLP.

Space-to-depth as the ``patch`` kind (every t frames x s x s pixels are one latent cell of t·s²·3 values,
``autoencoder.patch`` = (t, s); the causal first frame fills its cell alone), then one MLP shared by all
cells encodes each into ``latent_channels`` values and another decodes it (``base_dim`` hidden units,
``num_res_blocks`` hidden layers, GELU; tanh on the pixels); with ``linear_encoder`` the encoder is one
affine map, so that latents average as pixels do; with ``decoder_reach`` r the decoder also reads the
cells up to r away, so that it can smooth neighbours a transformer made inconsistent. The decoder also
reads the same cells one latent frame earlier (zeros before a stream's first), which smooths the frames
across latent frames; the streaming decoder carries that last latent frame from chunk to chunk.

Why it exists (docs/autoencoder.md): the transformer's linear head of width D can only draw a
D-dimensional subspace of each token's pixels, far too few for sharp edges in 4 frames x 16 x 16 pixels;
a learned decoder draws them from a few numbers a cell, and matrix products train fast on a CPU (several
times the convolutional kinds' steps in the same time).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder.base import Cache, LatentAutoencoder
from streamdit_jax.autoencoder.patch import STARTED, from_cells, to_cells
from streamdit_jax.autoencoder.registry import register_autoencoder
from streamdit_jax.config import AutoencoderConfig


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


def _neighbourhood(latents: jax.Array, reach: int) -> jax.Array:
    """Each cell of [B, F, h, w, C] with the cells up to ``reach`` away in h and w stacked on its channels
    (zeros beyond the frame): [B, F, h, w, (2·reach + 1)² C]."""
    if not reach:
        return latents
    h, w = latents.shape[2:4]
    padded = jnp.pad(latents, ((0, 0), (0, 0), (reach, reach), (reach, reach), (0, 0)))
    shifts = itertools.product(range(2 * reach + 1), repeat=2)
    return jnp.concatenate([padded[:, :, i : i + h, j : j + w] for i, j in shifts], axis=-1)


@register_autoencoder("patch_mlp")
class PatchMLPAutoencoder(LatentAutoencoder):
    """``encode``: [B, 1 + t(F - 1), H, W, 3] -> [B, F, H/s, W/s, C]; ``decode`` the other way."""

    def __init__(self, cfg: AutoencoderConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        t, s = cfg.patch
        pixels = t * s * s * 3
        self.cfg = cfg
        hidden, layers, channels = cfg.base_dim, cfg.num_res_blocks, cfg.latent_channels
        encoder_layers = 0 if cfg.linear_encoder else layers
        self.encoder = MLP(pixels, hidden, encoder_layers, channels, rngs=rngs, dtype=dtype)
        reads = 2 * (2 * cfg.decoder_reach + 1) ** 2 * channels  # the neighbourhood, now and a frame before
        self.decoder = MLP(reads, hidden, layers, pixels, rngs=rngs, dtype=dtype)
        self.init_statistics()

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        return self.encoder(to_cells(self.whole_latent_frames(video, cache), self.cfg.patch)), STARTED

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Frames of one chunk of raw latents; ``cache`` is the previous chunk's last latent frame (None on
        a stream's first chunk)."""
        t = self.cfg.patch[0]
        previous = jnp.zeros_like(latents[:, :1]) if cache is None else cache
        earlier = jnp.concatenate([previous, latents[:, :-1]], axis=1)
        read = _neighbourhood(jnp.concatenate([latents, earlier], axis=-1), self.cfg.decoder_reach)
        cells = jnp.tanh(self.decoder(read))
        video = from_cells(cells, self.cfg.patch)
        if cache is None:  # the first latent cell holds the first frame: the mean of its t decoded copies
            video = jnp.concatenate([jnp.mean(video[:, :t], axis=1, keepdims=True), video[:, t:]], axis=1)
        return video, latents[:, -1:]

    def decoding_parts(self) -> tuple:
        return (self.latents_mean, self.latents_std, self.decoder)
