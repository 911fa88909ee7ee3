"""The tiny streaming decoder (autoencoder/tiny.py): streaming equals whole decoding, its analytic FLOP
count matches XLA's, and it costs a small fraction of the VAE's decoder; ``train-decoder`` distils it
and resumes exactly; streams decode with it; mismatches are clear errors."""

import json
import logging
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import FLOAT64_REORDER_ATOL, in_float64, randomize

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.autoencoder.tiny import (
    TinyDecoder,
    TinyDecoderConfig,
    flops_per_frame,
    restore_tiny_decoder,
)
from streamdit_jax.autoencoder.vae import VideoVAE
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.stream import StreamModel


def _randomized(module):
    """Every parameter random (biases too), so that no path is zero by initialisation."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, randomize(state, seed=1))


@pytest.mark.parametrize("chunk,preview", [(1, "bilinear"), (2, "bilinear"), (2, "nearest")])
def test_chunk_by_chunk_equals_whole_decoding(chunk, preview):
    cfg = TinyDecoderConfig.of(load("tiny", num_devices=1).autoencoder, channels=16, preview=preview)
    # In float64, so that summation order (which XLA picks per shape and CPU) cannot pass for a bug.
    with jax.enable_x64(True):
        decoder = in_float64(_randomized(TinyDecoder(cfg, rngs=nnx.Rngs(0))))
        latents = jax.random.normal(jax.random.key(2), (1, 7, 8, 8, cfg.latent_channels), jnp.float64)
        whole = decoder.decode(latents)
        stream = decoder.streaming_decoder()
        parts = [stream.step(latents[:, i : i + chunk]) for i in range(0, 6, chunk)]
        assert [p.shape[1] for p in parts] == [1 + 4 * (chunk - 1)] + [4 * chunk] * (len(parts) - 1)
        got = jnp.concatenate(parts, axis=1)
        assert whole.shape == (1, 1 + 4 * 6, 64, 64, 3) and got.shape[1] == 1 + 4 * 5
        assert got.dtype == whole.dtype == jnp.float64
        np.testing.assert_allclose(got, whole[:, : got.shape[1]], atol=FLOAT64_REORDER_ATOL)
        assert float(jnp.abs(whole[:, 1:] - whole[:, :-1]).max()) > 1e-3  # the frames differ: a real test


def _xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).cost_analysis()["flops"]


@pytest.mark.parametrize("preset", ["small:ae=vae", "streamdit_4b"])
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
    with pytest.raises(ConfigError, match=r"tiny_decoder\.channels"):
        TinyDecoderConfig(channels=0)


# --- distillation (train-decoder) and decoding streams with it

DECODER_STEPS = 16
# The held-out loss after DECODER_STEPS steps is below a fresh decoder's / LOSS_FACTOR. The tiny demo's VAE
# trains for 4 steps, so its decoder is close to a random function: the short run learns its coarse
# output, not its detail (docs/autoencoder.md measures the distillation on `small`'s trained VAE).
LOSS_FACTOR = 1.3
DECODER_RUN = [
    "--config", "tiny",
    f"--config.decoder_train.steps={DECODER_STEPS}",
    "--config.decoder_train.batch_size=8",
    "--config.decoder_train.frames=9",
    "--config.decoder_train.crop=(32,32)",
    "--config.decoder_train.channels=16",
    "--config.decoder_train.eval_batches=1",
    "--config.decoder_train.log_every=1",
    f"--config.decoder_train.checkpoint_every={DECODER_STEPS // 2}",
    "--config.decoder_optimizer.learning_rate=3e-3",
    "--config.decoder_optimizer.warmup_steps=4",
]  # fmt: skip


@pytest.fixture
def trained_decoder(shelf, tiny_demo) -> Path:
    """``streamdit train-decoder`` on tiny for DECODER_STEPS steps from the tiny demo's VAE (once per
    session); its printed output in ``train.log``."""

    def build(folder: Path) -> None:
        import contextlib

        from streamdit_jax.cli import main

        with open(folder / "train.log", "w") as log, contextlib.redirect_stdout(log):
            code = main(["train-decoder", *DECODER_RUN, "--vae", str(tiny_demo / "autoencoder"),
                         "--workdir", str(folder / "run")])  # fmt: skip
        assert code == 0, (folder / "train.log").read_text()[-3000:]

    return shelf.get("tiny_trained_decoder", build) / "run"


def _held_out_loss(task, model) -> float:
    """The trainer's held-out loss of ``model`` (one batch of 8), jitted (once per test: same shapes)."""
    (batch,) = task.eval_batches(8, 1, 0, 1)
    graphdef, state = nnx.split(model)
    loss = jax.jit(lambda s, v, vae: task.evaluate(nnx.merge(graphdef, s), {"video": v}, vae)["loss"])
    return float(loss(state, jnp.asarray(batch["video"]), task.vae_state))


def _saved(workdir: Path, step: int) -> list:
    items = ("params", "ema", "opt_state", "train")
    with ckpt.manager(workdir, items) as manager:
        restored = manager.restore(step, args=ckpt.ocp.args.Composite(
            **{i: ckpt.ocp.args.StandardRestore() for i in items}))  # fmt: skip
    return jax.tree.leaves({i: restored[i] for i in items})


@pytest.mark.slow
def test_train_decoder_lowers_the_held_out_loss_and_resumes_bit_identically(
    trained_decoder, tiny_demo, tmp_path, capsys
):
    """The held-out loss against the full decoder falls by at least LOSS_FACTOR from a fresh decoder's
    in DECODER_STEPS steps; a run stopped by SIGTERM at step 6 and resumed ends with the same weights,
    EMA, optimizer state and RNG, bit for bit."""
    from streamdit_jax.autoencoder import restore_autoencoder
    from streamdit_jax.autoencoder.decoder_training import DecoderTask
    from streamdit_jax.checkpoint import restore_run_config
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.train import Trainer

    cfg = restore_run_config(trained_decoder)
    task = DecoderTask(cfg, restore_autoencoder(tiny_demo / "autoencoder"))
    fresh = _held_out_loss(task, task.build(nnx.Rngs(0)))
    evals = [json.loads(line) for line in (trained_decoder / "metrics.jsonl").read_text().splitlines()]
    trained = [m["loss"] for m in evals if m["split"] == "eval"][-1]
    assert trained * LOSS_FACTOR < fresh, (fresh, trained)
    restored = restore_tiny_decoder(trained_decoder)
    np.testing.assert_allclose(_held_out_loss(task, restored), trained, rtol=1e-4)
    assert main(["summary", "--checkpoint", str(trained_decoder)]) == 0
    count = sum(x.size for x in jax.tree.leaves(nnx.state(restored, nnx.Param)))
    assert f"parameters: {count}\n" in capsys.readouterr().out

    def trainer(resume: bool) -> Trainer:
        mesh = make_mesh(cfg.mesh)
        return Trainer(task, cfg.decoder_train, cfg.decoder_optimizer, mesh, cfg.mesh.rules, tmp_path,
                       run_config=cfg, section="decoder_train", seed=cfg.seed, resume=resume, progress=False,
                       frozen=task.frozen(mesh))  # fmt: skip

    with trainer(resume=False) as first:
        step = first.step
        calls = []

        def step_then_signal(batch):
            calls.append(1)
            if len(calls) == 6:
                signal.raise_signal(signal.SIGTERM)  # the trainer's handler: save and stop
            return step(batch)

        first.step = step_then_signal
        assert first.run()["stopped_by"] == "SIGTERM"
    assert ckpt.latest_step(tmp_path) == 6
    with trainer(resume=True) as second:
        assert second.run()["end_step"] == DECODER_STEPS
    for want, got in zip(
        _saved(trained_decoder, DECODER_STEPS), _saved(tmp_path, DECODER_STEPS), strict=True
    ):
        np.testing.assert_array_equal(want, got)


@pytest.mark.slow
def test_stream_and_eval_with_the_tiny_decoder(trained_decoder, tiny_demo, tmp_path, capsys):
    """``stream --decoder tiny`` writes a valid mp4 of moving frames; ``eval --decoder tiny`` records the
    decoder in eval.json; ``eval-decoder`` scores it against the full decoder."""
    import imageio.v3 as iio

    tiny = ["--decoder", "tiny", "--tiny-decoder", str(trained_decoder)]
    out = tmp_path / "tiny.mp4"
    args = ["--checkpoint", str(tiny_demo / "student"), "--prompt", "a red circle", "--seconds", "2"]
    assert main(["stream", *args, "--out", str(out), *tiny]) == 0
    frames = iio.imread(out, plugin="pyav")
    assert frames.shape == (16, 64, 64, 3) and iio.immeta(out, plugin="pyav")["fps"] == 8
    assert frames.std() > 1.0
    eval_args = ["--checkpoint", str(tiny_demo / "student"), "--seconds", "2", "--count", "1"]
    assert main(["eval", *eval_args, "--out", str(tmp_path / "eval"), *tiny]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["decoder"] == "tiny" and report["tiny_decoder"] == str(trained_decoder.resolve())
    assert "(tiny decoder)" in capsys.readouterr().out

    scores = tmp_path / "decoder.json"
    assert (
        main(["eval-decoder", "--checkpoint", str(trained_decoder), "--clips", "2", "--json", str(scores)])
        == 0
    )
    scores = json.loads(scores.read_text())
    assert scores["colour_true"] == 1.0 and scores["position_true"] == 1.0  # the detector on true frames
    assert scores["colour_ratio"] == pytest.approx(scores["colour_tiny"] / scores["colour_full"])
    assert 0.0 <= scores["colour_agreement"] <= 1.0 and np.isfinite(scores["psnr_tiny_full"])
    assert main(["eval-decoder", "--checkpoint", str(trained_decoder), "--frames", "8"]) == 2
    assert "1 + 4k frames" in capsys.readouterr().err


@pytest.mark.slow
def test_decoder_errors_are_clear_and_come_before_compilation(trained_decoder, tiny_demo, tiny_vae, capsys,
                                                              caplog):  # fmt: skip
    """A bad --decoder value, --decoder tiny without a checkpoint, and a tiny decoder trained for another
    VAE (the shelf's untrained one has the same layout, other weights): each a clear error, nothing
    compiled."""
    base = ["stream", "--checkpoint", str(tiny_demo / "student"), "--prompt", "a", "--seconds", "1",
            "--out", "unused.mp4"]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*base, "--decoder", "small"])
    assert "invalid choice: 'small'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not one of"):
        StreamModel.restore(tiny_demo / "student", decoder="small")
    caplog.clear()
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG):
            assert main([*base, "--decoder", "tiny"]) == 2
            assert "needs the tiny decoder's checkpoint" in capsys.readouterr().err
            other = ["--vae", str(tiny_vae), "--decoder", "tiny", "--tiny-decoder", str(trained_decoder)]
            assert main([*base, *other]) == 2
    finally:
        jax.config.update("jax_log_compiles", False)
    err = capsys.readouterr().err
    assert "was trained for another VAE" in err and "train-decoder" in err
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]


@pytest.mark.slow
def test_latent_noise_reaches_the_latents_and_the_full_decoders_target(tiny_vae):
    """With ``decoder_train.latent_noise`` the tiny decoder's latents are the VAE's plus noise of that
    std, and the full decoder's target frames are decoded from those same noised latents."""
    from streamdit_jax.autoencoder import restore_autoencoder
    from streamdit_jax.autoencoder.decoder_training import _latents_and_frames
    from streamdit_jax.data.shapes import ShapesDataset

    vae = restore_autoencoder(tiny_vae)
    video = jnp.asarray(ShapesDataset((64, 64), 8, 9, seed=0)[0]["video"][None])
    clean, _ = _latents_and_frames(vae, video)
    noisy, frames = _latents_and_frames(vae, video, jax.random.key(0), 0.5)
    assert float(jnp.std(noisy - clean)) == pytest.approx(0.5, rel=0.05)
    np.testing.assert_allclose(frames, vae.decode(noisy), atol=1e-5)
    same, _ = _latents_and_frames(vae, video, None, 0.5)  # no key: no noise (evaluation)
    np.testing.assert_array_equal(same, clean)
