"""What every autoencoder kind is to the rest of the library: the :class:`Autoencoder` protocol, and
:class:`LatentAutoencoder`, the base that the kinds build it on.

A kind implements two causal, chunk-wise maps on raw (unnormalised) latents, ``encode_raw`` and
``decode_raw``, each carrying a cache from one chunk of a stream to the next (None on the first chunk);
the base adds the per-channel normalisation the transformer sees, the checks, whole-video ``encode`` and
``decode``, and streaming encoders and decoders whose chunk-by-chunk output equals the whole call.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.config import AutoencoderConfig

Cache = Any  # None (a fresh stream) or a pytree of arrays


@runtime_checkable
class ChunkStream(Protocol):
    """A streaming encoder or decoder: ``step(chunk) -> output`` carrying caches; ``reset()`` starts over."""

    def step(self, x: jax.Array) -> jax.Array: ...

    def reset(self) -> None: ...


@runtime_checkable
class Autoencoder(Protocol):
    """Videos ``[B, T, H, W, 3]`` in [-1, 1] <-> normalised latents ``[B, F, h, w, C]`` (layout and
    compression in ``cfg``), with T = 1 + t·(F - 1) for temporal compression t."""

    cfg: AutoencoderConfig

    def latent_frames(self, video_frames: int) -> int: ...

    def encode(self, video: jax.Array) -> jax.Array: ...

    def decode(self, latents: jax.Array) -> jax.Array: ...

    def streaming_encoder(self) -> ChunkStream: ...

    def streaming_decoder(self) -> ChunkStream: ...


def perturbed(latents: jax.Array, noise: float, key: jax.Array | None) -> jax.Array:
    """``latents`` plus Gaussian noise of ``noise`` times each channel's standard deviation over the batch
    (held constant for the gradient): a decoder trained on these decodes a transformer's imperfect latents
    to nearly the same frames, whatever scale the encoder gives its channels. Unchanged for ``key`` None
    or ``noise`` 0."""
    if key is None or not noise:
        return latents
    scale = jax.lax.stop_gradient(jnp.std(latents, axis=tuple(range(latents.ndim - 1))))
    return latents + noise * scale * jax.random.normal(key, latents.shape, latents.dtype)


class LatentStatistic(nnx.Variable):
    """Per-channel latent mean/std: part of the model's state, never trained by the optimizer."""


class LatentAutoencoder(nnx.Module):
    """The base of the kinds: per-channel latent statistics around ``encode_raw``/``decode_raw``.

    Subclasses set ``cfg`` and call :meth:`init_statistics`, and implement ``encode_raw`` and
    ``decode_raw``; ``trainable`` False marks a kind without weights (only its statistics are fitted).
    """

    cfg: AutoencoderConfig
    trainable: ClassVar[bool] = True

    def init_statistics(self) -> None:
        channels = self.cfg.latent_channels
        self.latents_mean = LatentStatistic(jnp.zeros((channels,), jnp.float32))
        self.latents_std = LatentStatistic(jnp.ones((channels,), jnp.float32))

    # -- what a kind implements ----------------------------------------------------------------------

    def encode_raw(self, video: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Raw latents of one chunk of a stream: 1 + t(n - 1) frames for n latents on the first chunk
        (``cache`` None), t·n after; and the cache for the next chunk."""
        raise NotImplementedError

    def decode_raw(self, latents: jax.Array, cache: Cache = None) -> tuple[jax.Array, Cache]:
        """Unclamped frames of one chunk of raw latents (1 + t(n - 1) on the first chunk, t·n after)."""
        raise NotImplementedError

    def training_reconstruction(
        self, video: jax.Array, caches: tuple[Cache, Cache], key: jax.Array | None, latent_noise: float = 0.0
    ) -> tuple[jax.Array, jax.Array, tuple[Cache, Cache]]:
        """(unclamped reconstruction, regulariser, (encoder, decoder) caches) of one training chunk; the
        regulariser is 0 unless the kind has one (the VAE's KL). The decoder reads the latents perturbed
        by ``latent_noise`` (:func:`perturbed`). ``key`` None: deterministic, unperturbed."""
        latents, encoder_cache = self.encode_raw(video, caches[0])
        latents = perturbed(latents, latent_noise, key)
        reconstruction, decoder_cache = self.decode_raw(latents, caches[1])
        return reconstruction, jnp.zeros((), jnp.float32), (encoder_cache, decoder_cache)

    def decoding_parts(self) -> tuple[Any, ...]:
        """What makes frames from normalised latents (fingerprinted by the tiny decoder): the statistics
        and the decoding modules."""
        return (self.latents_mean, self.latents_std)

    # -- shared ---------------------------------------------------------------------------------------

    def whole_latent_frames(self, video: jax.Array, cache: Cache) -> jax.Array:
        """A chunk's frames as whole latent frames of t: a stream's first chunk (``cache`` None) has its
        first frame repeated to fill the causal first latent frame alone; any other length is an error."""
        t = self.cfg.temporal_compression
        if cache is None:
            video = jnp.concatenate([jnp.repeat(video[:, :1], t - 1, axis=1), video], axis=1)
        if video.shape[1] % t:
            raise ValueError(
                f"a chunk of {video.shape[1]} frames does not fill whole latent frames of {t} (the first "
                f"chunk of a stream takes 1 + {t}k frames, later ones {t}k)"
            )
        return video

    def latent_frames(self, video_frames: int) -> int:
        """Latent frames for a video of ``video_frames`` frames (which must be 1 + k * compression)."""
        step = self.cfg.temporal_compression
        if video_frames < 1 or (video_frames - 1) % step:
            raise ValueError(
                f"a video of {video_frames} frames cannot be encoded: the causal autoencoder needs "
                f"1 + {step}k frames (e.g. {1 + step * max(1, (video_frames - 1) // step)})"
            )
        return 1 + (video_frames - 1) // step

    def check_video(self, video: jax.Array) -> None:
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"video must be [B, T, H, W, 3] in [-1, 1] (channels last), got {video.shape}")
        self.latent_frames(video.shape[1])
        step = self.cfg.spatial_compression
        if video.shape[2] % step or video.shape[3] % step:
            raise ValueError(f"video height and width must be multiples of {step}, got {video.shape[2:4]}")

    def normalize(self, latents: jax.Array) -> jax.Array:
        return (latents - self.latents_mean[...]) / self.latents_std[...]

    def denormalize(self, latents: jax.Array) -> jax.Array:
        return latents * self.latents_std[...] + self.latents_mean[...]

    def raw_latents(self, video: jax.Array) -> jax.Array:
        """Unnormalised latents of a whole video (their statistics normalise them)."""
        self.check_video(video)
        return self.encode_raw(video)[0]

    def encode(self, video: jax.Array) -> jax.Array:
        """Normalised latents [B, F, h, w, C] of ``video`` [B, T, H, W, 3]."""
        return self.normalize(self.raw_latents(video))

    def decode(self, latents: jax.Array) -> jax.Array:
        """Video [B, T, H, W, 3] in [-1, 1] from normalised latents [B, F, h, w, C]."""
        if latents.ndim != 5 or latents.shape[-1] != self.cfg.latent_channels:
            raise ValueError(
                f"latents must be [B, F, h, w, C={self.cfg.latent_channels}], got {latents.shape}"
            )
        video, _ = self.decode_raw(self.denormalize(latents))
        return jnp.clip(video, -1.0, 1.0)

    def reconstruct(self, video: jax.Array) -> jax.Array:
        """``decode(encode(video))`` without the normalisation round trip."""
        return jnp.clip(self.decode_raw(self.raw_latents(video))[0], -1.0, 1.0)

    def streaming_decoder(self) -> StreamingDecoder:
        return StreamingDecoder(self)

    def streaming_encoder(self) -> StreamingEncoder:
        return StreamingEncoder(self)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=4)
def _run_chunk(chunk_fn, graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array, cache: Cache):
    """One chunk through ``chunk_fn``; a module-level jit, so every stream of one autoencoder shares its
    compilations (one for the first chunk, whose cache is None, and one for the rest)."""
    return chunk_fn(nnx.merge(graphdef, state), x, cache)


class _CachedStream:
    """Runs ``_chunk(model, x, cache) -> (y, cache)`` over a stream chunk by chunk, carrying the causal
    caches (donated from chunk to chunk)."""

    def __init__(self, autoencoder: LatentAutoencoder):
        self._graphdef, self._state = nnx.split(autoencoder)
        self._cache: Any = None

    @staticmethod
    def _chunk(model: LatentAutoencoder, x: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        raise NotImplementedError

    def step(self, x: jax.Array) -> jax.Array:
        y, self._cache = _run_chunk(type(self)._chunk, self._graphdef, self._state, x, self._cache)
        return y

    def reset(self) -> None:
        """Starts a new stream."""
        self._cache = None


class StreamingDecoder(_CachedStream):
    """Decodes a latent stream chunk by chunk: ``step(latents [B, n, h, w, C]) -> frames``.

    The first chunk yields 1 + t(n - 1) frames (the causal first frame), every later chunk t·n; their
    concatenation equals ``decode`` of the whole stream.
    """

    @staticmethod
    def _chunk(model: LatentAutoencoder, latents: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        video, cache = model.decode_raw(model.denormalize(latents), cache)
        return jnp.clip(video, -1.0, 1.0), cache


class StreamingEncoder(_CachedStream):
    """Encodes a video stream chunk by chunk: ``step(video [B, T, H, W, 3]) -> latents`` (normalised).
    The first chunk takes 1 + t(n - 1) frames for n latents, every later one t·n; their concatenation
    equals ``encode`` of the whole video."""

    @staticmethod
    def _chunk(model: LatentAutoencoder, video: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        latents, cache = model.encode_raw(video, cache)
        return model.normalize(latents), cache
