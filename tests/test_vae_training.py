"""`streamdit train-vae`: the VAE trains through the shared trainer, checkpoints, resumes and learns."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from streamdit_jax import config as config_lib
from streamdit_jax.autoencoder import restore_autoencoder, restore_matching_autoencoder
from streamdit_jax.autoencoder.training import AutoencoderTask
from streamdit_jax.checkpoint import latest_step, save_params
from streamdit_jax.cli import main
from streamdit_jax.model import init_params
from streamdit_jax.sharding import make_mesh
from streamdit_jax.train import Trainer

# The tiny demo's VAE settings (helpers.TINY_DEMO): its first 4 steps are the demo's own compiled step.
SETTINGS = ["--config.mesh.shape=(2,2,1,2)", "--config.vae_train.crop=(32,32)", "--config.vae_train.frames=9"]
FAST = [
    f"--config.vae_train.{field}"
    for field in ("log_every=2", "eval_every=2", "eval_batches=1", "checkpoint_every=2")
]


def _psnr(printed: str, after: str) -> float:
    return float(printed.split(after)[1].split(" dB")[0])


@pytest.mark.slow
def test_train_vae_cli_checkpoints_statistics_resumes_and_learns(tmp_path, capsys):
    """Four steps, a refused re-run without --resume, then resumed to 40 steps: the held-out PSNR rises by
    more than 2 dB (the same held-out clips, EMA weights), and eval-vae reproduces the printed number."""
    workdir = tmp_path / "vae"
    argv = ["train-vae", "--config", "tiny", "--workdir", str(workdir), *SETTINGS, *FAST]
    assert main([*argv, "--config.vae_train.steps=4"]) == 0
    early = _psnr(capsys.readouterr().out, "held-out PSNR ")
    vae = restore_autoencoder(workdir)
    # The latent statistics were measured on held-out clips before saving (not the (0, 1) defaults).
    assert not np.allclose(np.asarray(vae.latents_std[...]), 1.0)
    assert np.all(np.asarray(vae.latents_std[...]) > 0)
    assert main([*argv, "--config.vae_train.steps=40"]) == 2
    assert "--resume" in capsys.readouterr().err
    quiet = [f"--config.vae_train.{f}=40" for f in ("steps", "eval_every", "checkpoint_every", "log_every")]
    assert main([*argv, "--resume", *quiet]) == 0
    assert latest_step(workdir) == 40
    trained = _psnr(capsys.readouterr().out, "held-out PSNR ")
    assert trained > early + 2.0, (early, trained)
    # eval-vae scores the same held-out clips with the same (EMA) weights: the number train-vae printed.
    png = tmp_path / "strip.png"
    eval_vae = ["eval-vae", "--config", "tiny", "--checkpoint", str(workdir), "--png", str(png), *FAST]
    assert main(eval_vae) == 0
    assert abs(_psnr(capsys.readouterr().out, "EMA weights): ") - trained) < 0.01
    assert png.stat().st_size > 1000
    # --init: a new run starts from these weights (the trainer's state at step 0 is the trained VAE's
    # EMA weights). Built, not trained: a fresh run's train step would compile again for its schedule.
    tuned = tmp_path / "tuned"
    cfg = config_lib.load("tiny", [s.removeprefix("--config.") for s in SETTINGS], num_devices=8)
    cfg = dataclasses.replace(cfg, vae_train=dataclasses.replace(cfg.vae_train, init=str(workdir)))
    initial = nnx.state(restore_matching_autoencoder(workdir, cfg.autoencoder), nnx.Param)
    task = AutoencoderTask(cfg)
    with Trainer(task, cfg.vae_train, cfg.vae_optimizer, make_mesh(cfg.mesh), cfg.mesh.rules, tuned,
                 run_config=cfg, initial=initial, progress=False) as trainer:  # fmt: skip
        got, want = jax.device_get(trainer.state.params), jax.device_get(initial)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_bad_vae_init_is_a_clear_error(tmp_path, capsys):
    """train-vae --init takes a VAE checkpoint of the preset's autoencoder: a missing folder and a
    transformer's checkpoint are errors before anything is built."""
    cfg = config_lib.load("tiny", num_devices=1)
    save_params(tmp_path / "dit", cfg.model, init_params(cfg.model, jax.random.key(0))[1])
    base = ["train-vae", "--config", "tiny", "--workdir", str(tmp_path / "run"), "--init"]
    assert main([*base, str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, str(tmp_path / "dit")]) == 2
    assert "holds a ModelConfig checkpoint, not a AutoencoderConfig one" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_object_weight_counts_saturated_pixels_more():
    import jax.numpy as jnp

    from streamdit_jax.autoencoder.training import reconstruction_error
    from streamdit_jax.config import VAETrainConfig

    rng = np.random.default_rng(0)
    video = rng.uniform(-1, 1, (2, 3, 4, 4, 3)).astype(np.float32)
    video[:, :, :2] = video[:, :, :2, :, :1]  # the top half gray (saturation 0)
    recon = video + rng.normal(0, 0.1, video.shape).astype(np.float32)
    saturation = (video.max(-1, keepdims=True) - video.min(-1, keepdims=True)) / 2
    for loss, error in (("mse", np.square(recon - video)), ("l1", np.abs(recon - video))):
        for w in (0.0, 10.0):
            cfg = VAETrainConfig(reconstruction=loss, object_weight=w)
            weight = 1 + w * saturation * np.ones_like(error)
            want = (weight * error).sum() / weight.sum()
            got = float(reconstruction_error(jnp.asarray(recon), jnp.asarray(video), cfg))
            np.testing.assert_allclose(got, want, rtol=1e-5)
    # With the weight, an error on the saturated half costs more than the same error on the gray half.
    cfg = VAETrainConfig(object_weight=10.0)
    on_gray, on_colour = video.copy(), video.copy()
    on_gray[:, :, :2] += 0.2
    on_colour[:, :, 2:] += 0.2
    assert reconstruction_error(jnp.asarray(on_colour), jnp.asarray(video), cfg) > 2 * reconstruction_error(
        jnp.asarray(on_gray), jnp.asarray(video), cfg
    )


def test_crops_hold_an_object_and_are_reproducible():
    from streamdit_jax.eval.detect import SATURATION

    cfg = config_lib.load("tiny", ["vae_train.crop=(32,32)", "vae_train.frames=17"])
    task = AutoencoderTask(cfg)
    for position in range(12):
        example = task.train_source[position]
        crop = task._cropped(example, position)["video"]
        assert crop.shape == (17, 32, 32, 3)
        again = task._cropped(example, position)["video"]
        np.testing.assert_array_equal(crop, again)
        rgb = (crop + 1) / 2
        assert ((rgb.max(-1) - rgb.min(-1)) > SATURATION).any(), position  # some object pixels


def test_a_crop_the_vae_cannot_take_is_a_config_error():
    from streamdit_jax.config import ConfigError

    with pytest.raises(ConfigError, match=r"vae_train\.crop"):
        config_lib.load("tiny", ["vae_train.crop=(30,32)"])
    with pytest.raises(ConfigError, match=r"vae_train\.crop"):
        config_lib.load("tiny", ["vae_train.crop=(32,72)"])


@pytest.mark.slow
def test_context_frames_carry_the_caches_and_only_the_trained_parts_count():
    """vae_train.context: the loss equals an independent computation over the whole clip (one encode,
    one decode of [sampled start, posterior-mean context, sampled steady part]) restricted to the
    trained frames; and no gradient reaches the context's reconstruction."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from streamdit_jax.autoencoder.training import reconstruction_error
    from streamdit_jax.autoencoder.vae import VideoVAE

    cfg = config_lib.load("tiny", ["vae_train.frames=5", "vae_train.context=8", "vae_train.object_weight=2"])
    assert cfg.vae_train.clip_frames == 5 + 8 + 4
    task = AutoencoderTask(cfg)
    vae = VideoVAE(cfg.autoencoder, rngs=nnx.Rngs(0))
    for path, x in nnx.to_flat_state(nnx.state(vae, nnx.Param)):  # every weight non-zero
        x.set_value(x.get_value() + 0.02 * jax.random.normal(jax.random.key(len(path)), x.get_value().shape))
    video = jnp.asarray(np.stack([task.train_source[i]["video"][:, :16, :32] for i in range(2)]))
    assert video.shape[1] == 17
    key = jax.random.key(3)
    # One compiled program gives the loss and its gradient with respect to the pixels.
    loss_and_grad = nnx.jit(
        lambda model, v: jax.value_and_grad(lambda u: task.loss(model, {"video": u}, key)[0])(v)
    )

    @nnx.jit
    def reference(model, video):
        mean, logvar = model.posterior(video)  # latent frames: 2 (start), 2 (context), 1 (steady part)

        def sampled(part, a, b):  # the trained parts' posterior samples, with the loss's noise keys
            noise = jax.random.normal(jax.random.fold_in(key, part), mean[:, a:b].shape)
            return mean[:, a:b] + jnp.exp(0.5 * logvar[:, a:b]) * noise

        sample = jnp.concatenate([sampled(0, 0, 2), mean[:, 2:4], sampled(2, 4, 5)], axis=1)
        recon, _ = model.decode_raw(sample)
        trained = np.r_[0:5, 13:17]
        kl_mean, kl_logvar = mean[:, np.r_[0:2, 4:5]], logvar[:, np.r_[0:2, 4:5]]
        kl = 0.5 * jnp.mean(jnp.square(kl_mean) + jnp.exp(kl_logvar) - 1.0 - kl_logvar)
        error = reconstruction_error(recon[:, trained], video[:, trained], cfg.vae_train)
        return error + cfg.vae_train.kl_weight * kl

    loss, grad = loss_and_grad(vae, video)
    np.testing.assert_allclose(float(loss), float(reference(vae, video)), rtol=1e-4)

    # The context runs without gradients: its pixels get none, the trained parts' pixels do.
    assert float(jnp.abs(grad[:, 5:13]).max()) == 0.0
    assert float(jnp.abs(grad[:, :5]).max()) > 0 and float(jnp.abs(grad[:, 13:]).max()) > 0
