"""`streamdit train-vae`: the VAE trains through the shared trainer, checkpoints, resumes and learns."""

import numpy as np
import pytest

from streamdit_jax import config as config_lib
from streamdit_jax.autoencoder.training import VAETask
from streamdit_jax.checkpoint import latest_step, restore_vae
from streamdit_jax.cli import main
from streamdit_jax.sharding import make_mesh
from streamdit_jax.train import Trainer

FAST = [
    f"--config.vae_train.{field}"
    for field in ("log_every=2", "eval_every=2", "eval_batches=1", "checkpoint_every=2")
]


def test_train_vae_cli_checkpoints_statistics_and_resumes(tmp_path, capsys):
    workdir = tmp_path / "vae"
    argv = ["train-vae", "--config", "tiny", "--workdir", str(workdir), *FAST]
    assert main([*argv, "--config.vae_train.steps=2"]) == 0
    assert "held-out PSNR" in capsys.readouterr().out
    vae = restore_vae(workdir)
    # The latent statistics were measured on held-out clips before saving (not the (0, 1) defaults).
    assert not np.allclose(np.asarray(vae.latents_std[...]), 1.0)
    assert np.all(np.asarray(vae.latents_std[...]) > 0)
    assert main([*argv, "--config.vae_train.steps=4"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume", "--config.vae_train.steps=4"]) == 0
    assert latest_step(workdir) == 4
    # eval-vae scores the same held-out clips with the same (EMA) weights: the number train-vae printed.
    trained = float(capsys.readouterr().out.split("held-out PSNR ")[1].split(" dB")[0])
    png = tmp_path / "strip.png"
    assert main(["eval-vae", "--config", "tiny", "--checkpoint", str(workdir), "--png", str(png), *FAST]) == 0
    evaluated = float(capsys.readouterr().out.split("EMA weights): ")[1].split(" dB")[0])
    assert abs(evaluated - trained) < 0.01 and png.stat().st_size > 1000


@pytest.mark.slow
def test_the_vae_learns_to_reconstruct_held_out_clips(tmp_path):
    overrides = [
        "vae_train.steps=40",
        "vae_train.eval_batches=2",
        "vae_train.eval_every=40",
        "vae_train.log_every=40",
    ]
    cfg = config_lib.load("tiny", overrides, num_devices=8)
    mesh = make_mesh(cfg.mesh)
    task = VAETask(cfg)
    trainer = Trainer(
        task,
        cfg.vae_train,
        cfg.vae_optimizer,
        mesh,
        cfg.mesh.rules,
        tmp_path,
        section="vae_train",
        progress=False,
    )
    before = trainer.evaluate()["psnr"]  # data-parallel over the 8 test devices
    after = trainer.run()["eval"]["psnr"]
    assert after > before + 2.0, (before, after)
