"""streamdit_jax: StreamDiT, the streaming text-to-video diffusion transformer, in JAX/Flax."""

__version__ = "0.1.0"
