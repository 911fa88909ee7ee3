"""Every autoencoder kind behind one interface: layout, streaming equal to whole calls, the patch kind's
exact inverse, restoring by kind, kind mismatches, and checkpoints written before the kind existed."""

import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import FLOAT64_REORDER_ATOL, in_float64

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.autoencoder import (
    AUTOENCODERS,
    Autoencoder,
    build_autoencoder,
    restore_autoencoder,
    restore_matching_autoencoder,
)
from streamdit_jax.autoencoder.patch import PatchAutoencoder
from streamdit_jax.autoencoder.training import fit_statistics
from streamdit_jax.autoencoder.vae import VideoVAE
from streamdit_jax.config import AutoencoderConfig, ConfigError, load
from streamdit_jax.data.shapes import ShapesDataset

KINDS = {
    "vae": AutoencoderConfig(base_dim=8, dim_mult=(1, 1, 2, 2), num_res_blocks=1, latent_channels=4),
    "tiny": AutoencoderConfig(
        kind="tiny", base_dim=8, dim_mult=(1, 1, 1, 1), temporal_downsample=(True, True, False),
        num_res_blocks=1, latent_channels=4,
    ),
    "patch": AutoencoderConfig(kind="patch", patch=(4, 8), latent_channels=4 * 8 * 8 * 3),
    "patch_mlp": AutoencoderConfig(kind="patch_mlp", patch=(4, 8), latent_channels=8, base_dim=16),
}  # fmt: skip
# Every kind, and patch_mlp's options (an affine encoder, a decoder that reads neighbouring cells).
LAYOUTS = {
    **KINDS,
    "patch_mlp_reach": dataclasses.replace(KINDS["patch_mlp"], linear_encoder=True, decoder_reach=1),
}
KINDS_OVERRIDES = {
    "patch": ["autoencoder.kind=patch", "autoencoder.latent_channels=768", "model.latent_channels=768"]
}
# Chunk-by-chunk against whole calls: the same sums, which XLA may order differently for other shapes and
# CPUs. The kinds that compute in their input's dtype (patch, tiny) run in float64, held to
# helpers.FLOAT64_REORDER_ATOL. The VAE's and patch-MLP's layers cast to ``autoencoder.dtype`` (float32):
# a reordered float32 sum of n terms of size A moves by a random walk of about sqrt(n)·u·A (u = 6e-8), and
# their chains of at most 10 such sums of n <= 432 terms on normalised O(1) activations give a spread of
# sqrt(10·432)·6e-8 = 4e-6; the largest of at most 3·10^5 values stays within 5 spreads (2e-5); 1e-4
# leaves a fivefold margin and is still a tenth of the 1e-3 by which each test asserts its frames move.
FLOAT32_REORDER_ATOL = 1e-4
COMPUTES_IN_FLOAT32 = ("vae", "patch_mlp")


def _wide(autoencoder):
    """(the autoencoder to compare in, its dtype, the tolerance its reordered sums allow)."""
    if autoencoder.cfg.kind in COMPUTES_IN_FLOAT32:
        return autoencoder, jnp.float32, FLOAT32_REORDER_ATOL
    return in_float64(autoencoder), jnp.float64, FLOAT64_REORDER_ATOL


SIZE = 32  # pixels: 4x4 latent cells at 8x compression, enough for every layer and cheap to compile


def _video(frames: int, seed: int = 0, count: int = 2) -> np.ndarray:
    scenes = ShapesDataset((SIZE, SIZE), 8, frames, seed=seed)
    return np.stack([scenes[i]["video"] for i in range(count)])


FIT_CLIPS = _video(5, seed=1, count=16)


def _fitted(cfg: AutoencoderConfig, seed: int = 0):
    """A fresh autoencoder (random weights, built under jit: fast) with statistics measured on
    ``FIT_CLIPS``, so that its latents are unit-scale and normalising is not the identity."""
    ae = nnx.jit(lambda: build_autoencoder(cfg, nnx.Rngs(seed)))()
    fit_statistics(ae, [FIT_CLIPS])
    return ae


# The VAE's own streaming is also tested against diffusers' (test_autoencoder.py): here it is slow.
@pytest.fixture(
    scope="module",
    params=["patch", "patch_mlp", "patch_mlp_reach", "tiny", pytest.param("vae", marks=pytest.mark.slow)],
)
def autoencoder(request):
    return _fitted(LAYOUTS[request.param])


def test_every_kind_is_registered_and_an_autoencoder():
    assert set(KINDS) <= set(AUTOENCODERS)
    for cfg in KINDS.values():
        assert isinstance(nnx.eval_shape(lambda cfg=cfg: build_autoencoder(cfg, nnx.Rngs(0))), Autoencoder)


def test_layout(autoencoder):
    cfg = autoencoder.cfg
    video = jnp.asarray(_video(17))
    latents = jax.jit(autoencoder.encode)(video)
    s, t = cfg.spatial_compression, cfg.temporal_compression
    assert latents.shape == (2, 1 + 16 // t, SIZE // s, SIZE // s, cfg.latent_channels)
    assert autoencoder.latent_frames(17) == latents.shape[1]
    # Normalised per channel: the clips the statistics were measured on have mean 0 and std 1 in every
    # channel (float32 means of 16·2·64 values: 1e-4 is far above their rounding).
    fitted = np.asarray(jax.jit(autoencoder.encode)(jnp.asarray(FIT_CLIPS))).reshape(-1, cfg.latent_channels)
    constant = np.asarray(autoencoder.latents_std[...]) <= 1e-6  # a channel that never varies stays 0
    np.testing.assert_allclose(fitted.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(fitted.std(0)[~constant], 1.0, atol=1e-4)
    decoded = jax.jit(autoencoder.decode)(latents)
    assert decoded.shape == video.shape and float(jnp.abs(decoded).max()) <= 1.0
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        autoencoder.encode(video[:, :16])


def test_streaming_decoding_equals_whole_decoding(autoencoder):
    with jax.enable_x64(True):
        autoencoder, dtype, atol = _wide(autoencoder)
        latents = jax.jit(autoencoder.encode)(jnp.asarray(_video(33), dtype))  # 9 latent frames
        whole = np.asarray(jax.jit(autoencoder.decode)(latents))
        decoder = autoencoder.streaming_decoder()
        parts = [np.asarray(decoder.step(latents[:, a:b])) for a, b in ((0, 3), (3, 5), (5, 7), (7, 9))]
    t = autoencoder.cfg.temporal_compression
    assert [len(p[0]) for p in parts] == [1 + 2 * t, 2 * t, 2 * t, 2 * t]
    assert np.abs(whole[:, 1:] - whole[:, :-1]).max() > 1e-3  # the frames move: a real comparison
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=atol, rtol=0)


def test_streaming_encoding_equals_whole_encoding(autoencoder):
    with jax.enable_x64(True):
        autoencoder, dtype, atol = _wide(autoencoder)
        video = jnp.asarray(_video(33), dtype)
        whole = np.asarray(jax.jit(autoencoder.encode)(video))
        encoder = autoencoder.streaming_encoder()
        parts = [np.asarray(encoder.step(video[:, a:b])) for a, b in ((0, 9), (9, 17), (17, 33))]
    assert np.abs(whole[:, 1:] - whole[:, :-1]).max() > 1e-3  # the latents move: a real comparison
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=atol, rtol=0)


def test_a_linear_patch_mlp_encoder_averages_as_the_pixels_do():
    """With ``linear_encoder`` the latents of the mean of two videos are the mean of their latents (an
    affine map; float32 sums of 192 products, relative error ~1e-6)."""
    cfg = dataclasses.replace(KINDS["patch_mlp"], linear_encoder=True)
    ae = build_autoencoder(cfg, rngs=nnx.Rngs(0))
    a, b = (jax.random.uniform(jax.random.key(i), (1, 9, 32, 32, 3), minval=-1, maxval=1) for i in (1, 2))
    mean = ae.encode((a + b) / 2)
    np.testing.assert_allclose(mean, (ae.encode(a) + ae.encode(b)) / 2, rtol=1e-4, atol=1e-5)
    mlp = build_autoencoder(KINDS["patch_mlp"], rngs=nnx.Rngs(0))  # the MLP encoder does not
    assert float(jnp.abs(mlp.encode((a + b) / 2) - (mlp.encode(a) + mlp.encode(b)) / 2).max()) > 1e-3
    with pytest.raises(ConfigError, match=r"autoencoder\.linear_encoder"):
        dataclasses.replace(KINDS["tiny"], linear_encoder=True)
    with pytest.raises(ConfigError, match=r"autoencoder\.decoder_reach"):
        dataclasses.replace(KINDS["vae"], decoder_reach=1)


def test_latent_noise_is_a_share_of_each_channels_spread():
    """``vae_train.latent_noise`` perturbs each channel by that share of its spread over the batch, whatever
    the channel's scale; no key (evaluation) or no noise leaves the latents alone. 16,384 draws a channel:
    the sample std's relative standard error is 1/sqrt(2·16384) = 0.6%, so 5% is eight of them."""
    from streamdit_jax.autoencoder.base import perturbed

    scales = jnp.asarray([0.1, 1.0, 30.0])
    latents = jax.random.normal(jax.random.key(0), (4, 4, 32, 32, 3)) * scales
    key = jax.random.key(1)
    assert perturbed(latents, 0.5, None) is latents and perturbed(latents, 0.0, key) is latents
    noise = perturbed(latents, 0.5, key) - latents
    ratio = noise.std(axis=(0, 1, 2, 3)) / latents.std(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(ratio, 0.5, rtol=0.05)


def test_patch_kind_is_an_exact_inverse():
    ae = _fitted(KINDS["patch"])
    assert isinstance(ae, PatchAutoencoder) and not nnx.state(ae, nnx.Param)  # no weights
    video = jnp.asarray(_video(21))
    latents = jax.jit(ae.encode)(video)
    np.testing.assert_allclose(np.asarray(jax.jit(ae.decode)(latents)), np.asarray(video), atol=1e-6, rtol=0)
    # A latent cell is t = 4 frames x 8 x 8 pixels x 3 colours of the video, raw before normalising.
    raw = np.asarray(ae.denormalize(latents))
    np.testing.assert_allclose(raw[0, 2, 1, 3].reshape(4, 8, 8, 3), video[0, 5:9, 8:16, 24:32], atol=1e-6)
    assert raw.shape == (2, 6, SIZE // 8, SIZE // 8, 4 * 8 * 8 * 3)
    # The causal first frame fills the first cell alone.
    np.testing.assert_allclose(raw[0, 0, 0, 0].reshape(4, 8, 8, 3), np.repeat(video[0, :1, :8, :8], 4, 0),
                               atol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    "kind", ["patch", "patch_mlp", *(pytest.param(k, marks=pytest.mark.slow) for k in ("tiny", "vae"))]
)
def test_restore_by_kind(kind, tmp_path):
    ae = _fitted(KINDS[kind], seed=3)
    ckpt.save_params(tmp_path, ae.cfg, nnx.state(ae))
    restored = restore_autoencoder(tmp_path)
    assert type(restored) is type(ae) and restored.cfg == ae.cfg
    cells = SIZE // ae.cfg.spatial_compression
    shape = (1, 2, cells, cells, ae.cfg.latent_channels)
    latents = jnp.asarray(np.random.default_rng(0).standard_normal(shape))
    np.testing.assert_array_equal(np.asarray(restored.decode(latents)), np.asarray(ae.decode(latents)))
    assert restore_matching_autoencoder(tmp_path, ae.cfg).cfg == ae.cfg


def test_a_checkpoint_of_another_kind_is_a_clear_error_before_anything_is_built(tmp_path, monkeypatch):
    ae = _fitted(KINDS["patch"])
    ckpt.save_params(tmp_path, ae.cfg, nnx.state(ae))
    from streamdit_jax.autoencoder import registry

    def refuse(*args, **kwargs):
        raise AssertionError("built an autoencoder before checking the kind")

    monkeypatch.setattr(registry, "build_autoencoder", refuse)
    with pytest.raises(ConfigError, match=r"holds a 'patch' autoencoder, the config asks for 'vae'"):
        restore_matching_autoencoder(tmp_path, KINDS["vae"])
    # Through a stream of the demo's preset: the preset wants a VAE, the folder holds patches.
    cfg = load("tiny", [f"data.vae={tmp_path}"], num_devices=1)
    from streamdit_jax.stream.model import stream_autoencoder

    with pytest.raises(ConfigError, match=r"autoencoder\.kind"):
        stream_autoencoder(cfg)


@pytest.mark.slow
def test_a_checkpoint_from_before_the_kind_field_restores_as_the_vae(tmp_path):
    cfg = KINDS["vae"]
    vae = nnx.jit(lambda: VideoVAE(cfg, rngs=nnx.Rngs(0)))()
    ckpt.save_params(tmp_path, cfg, nnx.state(vae))
    # Rewrite the saved config as an older version wrote it: no "kind" and no "patch".
    record = tmp_path / "0" / ckpt.CONFIG / "metadata"
    saved = json.loads(record.read_text())
    old = {k: v for k, v in saved["config"].items() if k not in ("kind", "patch")}
    record.write_text(json.dumps({**saved, "config": old}))
    restored = restore_autoencoder(tmp_path)
    assert isinstance(restored, VideoVAE) and restored.cfg == dataclasses.replace(cfg, kind="vae")


def test_eval_vae_reads_the_detector_scores_of_reconstructions(tmp_path, capsys):
    """eval-vae reports the shapes detector's colour, shape, position and motion on reconstructions
    beside the true clips': through the patch kind (exact) they are equal, and motion is scored (clips
    of 33 frames hold two 2-second windows)."""
    from streamdit_jax.cli import main

    patch = [f"--config.{f}" for f in KINDS_OVERRIDES["patch"]]
    assert main(["train-vae", "--config", "tiny", "--workdir", str(tmp_path), *patch]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert main(["eval-vae", "--config", "tiny", "--checkpoint", str(tmp_path), "--clips", "6", "--frames",
                 "33", *patch]) == 0  # fmt: skip
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    for name in ("colour", "shape", "position", "motion"):
        line = lines[f"detector {name}"]  # "detector colour: reconstructions 97.5%, true clips 97.5%"
        reconstructed, true = (float(x) for x in re.findall(r"([\d.]+)%", line))
        assert reconstructed == true and true > 50.0, line
