"""The tiny streaming decoder (autoencoder/tiny.py): streaming equals whole decoding, its analytic FLOP
count matches XLA's, and it costs a small fraction of the VAE's decoder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import randomize

from streamdit_jax.autoencoder import VideoVAE
from streamdit_jax.autoencoder.tiny import TinyDecoder, TinyDecoderConfig, flops_per_frame
from streamdit_jax.config import ConfigError, load


def _randomized(module):
    """Every parameter random (biases too), so that no path is zero by initialisation."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, randomize(state, seed=1))


@pytest.mark.parametrize("chunk", [1, 2])
def test_chunk_by_chunk_equals_whole_decoding(chunk):
    cfg = TinyDecoderConfig.of(load("tiny", num_devices=1).autoencoder, channels=16)
    decoder = _randomized(TinyDecoder(cfg, rngs=nnx.Rngs(0)))
    latents = jax.random.normal(jax.random.key(2), (1, 7, 8, 8, cfg.latent_channels))
    whole = decoder.decode(latents)
    stream = decoder.streaming_decoder()
    parts = [stream.step(latents[:, i : i + chunk]) for i in range(0, 6, chunk)]
    assert [p.shape[1] for p in parts] == [1 + 4 * (chunk - 1)] + [4 * chunk] * (len(parts) - 1)
    got = jnp.concatenate(parts, axis=1)
    assert whole.shape == (1, 1 + 4 * 6, 64, 64, 3) and got.shape[1] == 1 + 4 * 5
    np.testing.assert_allclose(got, whole[:, : got.shape[1]], atol=1e-5)  # tolerance: float32 sums
    assert float(jnp.abs(whole[:, 1:] - whole[:, :-1]).max()) > 1e-3  # the frames differ: a real test


def _xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).cost_analysis()["flops"]


@pytest.mark.parametrize("preset", ["small", "streamdit_4b"])
def test_flop_count_matches_xla_and_is_a_tenth_of_the_vae_decoder(preset):
    """Steady-state chunks of 2 latent frames (8 video frames) at the preset's latent size; weights are
    never allocated (abstract shapes only)."""
    cfg = load(preset, num_devices=1)
    tiny_cfg = TinyDecoderConfig.of(cfg.autoencoder)
    h, w = cfg.latent_grid[1:]
    latents = jax.ShapeDtypeStruct((1, 2, h, w, cfg.autoencoder.latent_channels), jnp.float32)
    tiny = nnx.eval_shape(lambda: TinyDecoder(tiny_cfg, rngs=nnx.Rngs(0)))
    tiny_graph, tiny_state = nnx.split(tiny)
    memory = jax.eval_shape(lambda st, x: nnx.merge(tiny_graph, st).decode_chunk(x)[1], tiny_state, latents)

    def tiny_chunk(state, x, cache):
        return nnx.merge(tiny_graph, state).decode_chunk(x, cache)[0]

    frames = 2 * cfg.autoencoder.temporal_compression
    measured = _xla_flops(tiny_chunk, tiny_state, latents, memory) / frames
    analytic = flops_per_frame(tiny_cfg, (h, w))
    assert abs(measured - analytic) / analytic < 0.10, (measured, analytic)

    vae = nnx.eval_shape(lambda: VideoVAE(cfg.autoencoder, rngs=nnx.Rngs(0)))
    vae_graph, vae_state = nnx.split(vae)
    vae_cache = jax.eval_shape(lambda st, x: nnx.merge(vae_graph, st).decode_raw(x)[1], vae_state, latents)

    def vae_chunk(state, x, cache):
        return nnx.merge(vae_graph, state).decode_raw(x, cache)[0]

    full = _xla_flops(vae_chunk, vae_state, latents, vae_cache) / frames
    assert analytic * 10 <= full, (analytic, full)


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match="power of two"):
        TinyDecoderConfig(spatial_compression=6)
    with pytest.raises(ConfigError, match="channels 0 < 1"):
        TinyDecoderConfig(channels=0)
