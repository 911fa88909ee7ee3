"""Autoencoders between videos and latents, one interface (:class:`Autoencoder`), several kinds
(``autoencoder.kind``): ``vae`` (Wan 2.1's layout), ``tiny`` (TAEHV's layout), ``patch`` (pixels, nothing
to train) and ``patch_mlp`` (pixel cells through MLPs); and the tiny streaming decoder distilled from a
VAE."""

# Importing the kinds registers them (autoencoder.registry).
from streamdit_jax.autoencoder import patch, patch_mlp, tiny_autoencoder, vae  # noqa: F401
from streamdit_jax.autoencoder.base import Autoencoder, ChunkStream, LatentAutoencoder, LatentStatistic
from streamdit_jax.autoencoder.registry import (
    AUTOENCODERS,
    build_autoencoder,
    register_autoencoder,
    restore_autoencoder,
    restore_data_vae,
    restore_matching_autoencoder,
)
from streamdit_jax.autoencoder.tiny import TinyDecoder, restore_tiny_decoder

__all__ = [
    "AUTOENCODERS",
    "Autoencoder",
    "ChunkStream",
    "LatentAutoencoder",
    "LatentStatistic",
    "TinyDecoder",
    "build_autoencoder",
    "register_autoencoder",
    "restore_autoencoder",
    "restore_data_vae",
    "restore_matching_autoencoder",
    "restore_tiny_decoder",
]
