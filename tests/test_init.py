"""``streamdit train --init``: a new run from a converted Wan 2.1 transformer's (or any transformer
checkpoint's) weights, with the config's window; bad checkpoints are clear errors before compiling."""

import json
import logging

import diffusers
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.checkpoint import restore_run_config
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.model import apply, init_params, initial_params, restore_params
from streamdit_jax.sharding import make_mesh
from streamdit_jax.train import Trainer
from streamdit_jax.train.flow_task import FlowTask

MESH = (2, 2, 1, 2)
STEPS = 16
# tiny's transformer as a diffusers Wan 2.1 config (Wan attends over the whole latent; tiny's window is
# (4, 2, 2) tokens, so the run changes the window).
WAN_TINY = dict(
    patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32, in_channels=16, out_channels=16,
    text_dim=384, freq_dim=64, ffn_dim=256, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6,
)  # fmt: skip


@pytest.fixture
def converted(shelf):
    """A randomly initialised diffusers WanTransformer3DModel of tiny's shape, converted by the CLI."""

    def build(folder):
        torch.manual_seed(0)
        diffusers.WanTransformer3DModel(**WAN_TINY).save_pretrained(folder / "wan")
        assert (
            main(["convert", "wan-transformer", "--src", str(folder / "wan"), "--out", str(folder / "ckpt")])
            == 0
        )

    return shelf.get("converted_wan_tiny", build) / "ckpt"


def _overrides(latents):
    return [f"mesh.shape={MESH}".replace(" ", ""), "data.source=latents", f"data.path={latents}",
            "data.heldout=16", f"train.steps={STEPS}", f"train.eval_every={STEPS}", "train.eval_batches=1",
            "optimizer.warmup_steps=0"]  # fmt: skip


@pytest.mark.slow
def test_train_init_from_a_converted_wan_model(converted, tiny_latents, tiny_vae, tmp_path):
    """On a (2,2,1,2) mesh with tiny's window: the run's step-0 forward equals the converted model's, the
    held-out loss falls below 0.8x the converted model's in STEPS steps, the run records where it
    started, and it streams."""
    cfg = load("tiny", _overrides(tiny_latents))
    assert cfg.model.window != ckpt.restore_config(converted).window  # the run changes the window
    mesh = make_mesh(cfg.mesh)
    initial = initial_params(converted, cfg.model, mesh, cfg.mesh.rules)
    start = Trainer(FlowTask(cfg), cfg.train, cfg.optimizer, mesh, cfg.mesh.rules, tmp_path / "start",
                    initial=initial, progress=False)  # fmt: skip
    _, graphdef, wan = restore_params(
        converted, mesh, cfg.mesh.rules, model_overrides={"window": cfg.model.window}
    )
    key = jax.random.split(jax.random.key(1), 3)
    latents = jax.random.normal(key[0], (2, 8, 8, 8, 16))
    sigma = jax.random.uniform(key[1], (2, 8))
    text, mask = jax.random.normal(key[2], (2, 5, 384)), jnp.ones((2, 5), bool)
    np.testing.assert_array_equal(
        apply(graphdef, start.state.params, latents, sigma, text, mask),
        apply(graphdef, wan, latents, sigma, text, mask),
    )
    first = start.evaluate()["loss"]
    start.close()

    run = tmp_path / "run"
    args = ["train", "--config", "tiny", "--workdir", str(run), "--init", str(converted)]
    assert main([*args, *(f"--config.{o}" for o in _overrides(tiny_latents))]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if m["split"] == "eval"]
    assert evals[-1]["step"] == STEPS and evals[-1]["loss"] < 0.8 * first, (first, evals[-1])
    assert restore_run_config(run).train.init == str(converted)

    out = tmp_path / "out.mp4"
    stream = ["stream", "--checkpoint", str(run), "--vae", str(tiny_vae), "--prompt", "a red circle"]
    assert main([*stream, "--seconds", "1", "--out", str(out)]) == 0
    assert iio.improps(out, plugin="pyav").n_images == 8


def test_a_bad_init_is_a_clear_error_before_compiling(tmp_path, tiny_vae, capsys, caplog):
    """Missing, a VAE's checkpoint, and a transformer of other shapes (every differing field listed)."""
    other = load("tiny", ["model.num_layers=4", "model.mlp_width=128"], num_devices=1)
    ckpt.save_params(tmp_path / "other", other.model, init_params(other.model, jax.random.key(0))[1])
    base = ["train", "--config", "tiny", "--workdir", str(tmp_path / "run"), "--init"]
    caplog.clear()
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG):
            assert main([*base, str(tmp_path / "nowhere")]) == 2
            assert "does not exist" in capsys.readouterr().err
            assert main([*base, str(tiny_vae)]) == 2
            assert "holds a AutoencoderConfig checkpoint, not a transformer's" in capsys.readouterr().err
            assert main([*base, str(tmp_path / "other")]) == 2
    finally:
        jax.config.update("jax_log_compiles", False)
    err = capsys.readouterr().err
    assert (
        "model.num_layers: checkpoint 4, config 2" in err
        and "model.mlp_width: checkpoint 128, config 256" in err
    )
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"distill\.init"):
        load("tiny", ["distill.init=x"], num_devices=1)
