"""FLOPs per video frame of the tiny decoder (analytic and XLA's count) and of the VAE's decoder (XLA's),
for steady-state chunks of 2 latent frames, on abstract shapes (nothing allocated): docs/autoencoder.md.

    python scripts/tiny_decoder_flops.py [small streamdit_4b]
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.autoencoder import build_autoencoder
from streamdit_jax.autoencoder.tiny import TinyDecoder, TinyDecoderConfig, flops_per_frame
from streamdit_jax.config import load


def xla_flops_per_frame(build, chunk, latents: jax.ShapeDtypeStruct, frames: int) -> float:
    """XLA's FLOPs of ``chunk(module, latents, cache)`` in steady state (with a cache), per frame."""
    graphdef, state = nnx.split(nnx.eval_shape(build))
    cache = jax.eval_shape(lambda s, x: chunk(nnx.merge(graphdef, s), x, None)[1], state, latents)
    fn = jax.jit(lambda s, x, c: chunk(nnx.merge(graphdef, s), x, c)[0])
    return fn.lower(state, latents, cache).cost_analysis()["flops"] / frames


def report(preset: str) -> str:
    cfg = load(preset, num_devices=1)
    tiny = TinyDecoderConfig.of(cfg.autoencoder)
    h, w = cfg.latent_grid[1:]
    latents = jax.ShapeDtypeStruct((1, 2, h, w, cfg.autoencoder.latent_channels), jnp.float32)
    frames = 2 * cfg.autoencoder.temporal_compression
    analytic = flops_per_frame(tiny, (h, w))
    build_tiny = lambda: TinyDecoder(tiny, rngs=nnx.Rngs(0))
    measured = xla_flops_per_frame(build_tiny, lambda m, x, c: m.decode_chunk(x, c), latents, frames)
    build_vae = lambda: build_autoencoder(cfg.autoencoder, nnx.Rngs(0))
    full = xla_flops_per_frame(build_vae, lambda m, x, c: m.decode_raw(x, c), latents, frames)
    params = sum(x.size for x in jax.tree.leaves(nnx.state(nnx.eval_shape(build_tiny))))
    narrow = flops_per_frame(TinyDecoderConfig.of(cfg.autoencoder, channels=32), (h, w))
    return (
        f"{preset} {h}x{w} latents: tiny {analytic / 1e6:.1f} MFLOP analytic, {measured / 1e6:.1f} XLA; "
        f"VAE decoder {full / 1e6:.1f} MFLOP XLA; ratio {full / analytic:.0f}x; tiny parameters {params}; "
        f"at width 32: {narrow / 1e6:.1f} MFLOP analytic, ratio {full / narrow:.0f}x"
    )


if __name__ == "__main__":
    for name in sys.argv[1:] or ["small", "streamdit_4b"]:
        print(report(name))
