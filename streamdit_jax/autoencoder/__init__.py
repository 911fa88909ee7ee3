"""The causal video autoencoder."""

from streamdit_jax.autoencoder.restore import restore_vae
from streamdit_jax.autoencoder.vae import LatentStatistic, StreamingDecoder, StreamingEncoder, VideoVAE

__all__ = ["LatentStatistic", "StreamingDecoder", "StreamingEncoder", "VideoVAE", "restore_vae"]
