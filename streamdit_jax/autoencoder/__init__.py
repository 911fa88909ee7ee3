"""The causal video autoencoder."""

from streamdit_jax.autoencoder.vae import LatentStatistic, StreamingDecoder, StreamingEncoder, VideoVAE

__all__ = ["LatentStatistic", "StreamingDecoder", "StreamingEncoder", "VideoVAE"]
