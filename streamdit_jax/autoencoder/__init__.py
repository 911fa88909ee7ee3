"""The causal video autoencoder."""

from streamdit_jax.autoencoder.vae import LatentStatistic, StreamingDecoder, VideoVAE

__all__ = ["LatentStatistic", "StreamingDecoder", "VideoVAE"]
