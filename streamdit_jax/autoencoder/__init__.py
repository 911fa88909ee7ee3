"""The causal video autoencoder."""

from streamdit_jax.autoencoder.restore import restore_matching_vae, restore_vae
from streamdit_jax.autoencoder.vae import LatentStatistic, StreamingDecoder, StreamingEncoder, VideoVAE

__all__ = [
    "LatentStatistic",
    "StreamingDecoder",
    "StreamingEncoder",
    "VideoVAE",
    "restore_matching_vae",
    "restore_vae",
]
