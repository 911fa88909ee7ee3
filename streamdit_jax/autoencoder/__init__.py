"""The causal video autoencoder."""

from streamdit_jax.autoencoder.restore import restore_matching_vae, restore_vae
from streamdit_jax.autoencoder.tiny import TinyDecoder, restore_tiny_decoder
from streamdit_jax.autoencoder.vae import LatentStatistic, StreamingDecoder, StreamingEncoder, VideoVAE

__all__ = [
    "LatentStatistic",
    "StreamingDecoder",
    "StreamingEncoder",
    "TinyDecoder",
    "VideoVAE",
    "restore_matching_vae",
    "restore_tiny_decoder",
    "restore_vae",
]
