"""Segment-wise distillation: the teacher's targets against an unjitted reference, one step on every
mesh, and the ``distill`` command's student streaming with one forward pass per chunk."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TINY_DEMO, randomize

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.distill import DistillTask, distill_trainer, schemes, student_config
from streamdit_jax.model import apply, init_params, restore_params
from streamdit_jax.sharding import make_mesh

_forward = jax.jit(apply, static_argnums=0)  # the model alone; the algorithm around it stays unjitted


def _teacher_u(graphdef, params, text, mask, null_text, null_mask, scale):
    """The guided teacher as u(x, tau) in the paper's convention (tau = 1 is clean), numpy in and out."""

    def u(x, tau):
        sigma = jnp.asarray(1.0 - tau, jnp.float32)
        x = jnp.asarray(x, jnp.float32)
        v = np.asarray(_forward(graphdef, params, x, sigma, text, mask))
        nulls = np.broadcast_to(null_text, text.shape), np.broadcast_to(null_mask, mask.shape)
        null = np.asarray(_forward(graphdef, params, x, sigma, *nulls))
        return -(null + scale * (v - null))

    return u


def reference_targets(u_all, u_rollout, latents, noise, fresh, n, c, s, rollouts):
    """The paper's segments in numpy: chunk i at tau = 1 - (i + 1)/N; s Euler steps of 1/(N·s) take it
    to the end of its segment. Rollout examples first take one such step, drop the clean chunk and take
    in fresh noise. The student's target velocity lands on the teacher's latents in one step of 1/N."""
    frames = latents.shape[1]
    tau = 1.0 - (np.arange(frames) // c + 1) / n
    level = (1.0 - tau)[None, :, None, None, None]
    x = (1.0 - level) * latents + level * noise
    dtau = 1.0 / (n * s)

    def segment(u, x):
        t = np.broadcast_to(tau, x.shape[:2]).copy()
        for _ in range(s):
            x = x + u(x, t) * dtau
            t = t + dtau
        return x

    if rollouts:
        stepped = segment(u_rollout, x[:rollouts])
        x = np.concatenate([np.concatenate([stepped[:, c:], fresh], axis=1), x[rollouts:]])
    target = segment(u_all, x)
    return x, n * (x - target)


@pytest.fixture(scope="module")
def teacher():
    cfg = load("tiny", ["distill.guidance=2.5", "distill.rollout_share=0.5"], num_devices=1)
    graphdef, params = init_params(cfg.model, jax.random.key(0))
    return cfg, graphdef, randomize(params, scale=0.05)


@pytest.mark.slow
def test_targets_equal_the_unjitted_teacher_segments(teacher):
    """The jitted step's buffers and targets: the data noised to the segment starts, half the batch one
    teacher stream step further on, and N·(x − the teacher's 16 guided micro-steps)."""
    cfg, graphdef, params = teacher
    assert cfg.distill.teacher_micro_steps == 16
    task = DistillTask(cfg, graphdef)
    rng = np.random.default_rng(0)
    batch = {
        "latents": rng.standard_normal((4, 8, 8, 8, 16)).astype(np.float32),
        "text": rng.standard_normal((4, 40, 384)).astype(np.float32),
        "text_mask": np.arange(40)[None] < np.array([[7], [12], [40], [3]]),
    }
    null_text = rng.standard_normal((1, 40, 384)).astype(np.float32)
    null_mask = np.arange(40)[None] < 2
    frozen = {"teacher": params, "null_text": jnp.asarray(null_text), "null_mask": jnp.asarray(null_mask)}
    key = jax.random.key(5)
    x, sigma, target = jax.jit(task.buffers_and_targets)(batch, key, frozen)

    k_noise, k_fresh = jax.random.split(key)
    noise = np.asarray(jax.random.normal(k_noise, batch["latents"].shape))
    fresh = np.asarray(jax.random.normal(k_fresh, (2, 2, 8, 8, 16)))
    text, mask = batch["text"], batch["text_mask"]
    u_all = _teacher_u(graphdef, params, text, mask, null_text, null_mask, 2.5)
    u_rollout = _teacher_u(graphdef, params, text[:2], mask[:2], null_text, null_mask, 2.5)
    want_x, want_target = reference_targets(u_all, u_rollout, batch["latents"], noise, fresh, 4, 2, 16, 2)
    np.testing.assert_allclose(np.asarray(sigma[0]), [0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(np.asarray(x), want_x, atol=1e-5)
    np.testing.assert_allclose(np.asarray(target), want_target, atol=2e-4, rtol=1e-4)
    # The targets are the guided teacher's: without guidance they differ.
    u_plain = _teacher_u(graphdef, params, text, mask, null_text, null_mask, 1.0)
    u_plain_rollout = _teacher_u(graphdef, params, text[:2], mask[:2], null_text, null_mask, 1.0)
    _, unguided = reference_targets(u_plain, u_plain_rollout, batch["latents"], noise, fresh, 4, 2, 16, 2)
    assert np.abs(unguided - want_target).max() > 100 * 2e-4


def test_schemes_and_the_student_config():
    buffer = ["buffer.reference_frames=2", "buffer.chunk_sizes=(1,2)", "buffer.chunk_weights=(1,1)"]
    cfg = load("small", buffer)
    teacher, student = schemes(cfg)
    assert dataclasses.astuple(teacher) == (0, 4, 2, 16) and dataclasses.astuple(student) == (0, 4, 2, 1)
    streamed = student_config(cfg)
    assert streamed.scheme == (0, 4, 2, 1) and streamed.rollout.guidance == 1.0
    # The start-up, once per stream, is the teacher's: 16 micro-steps per position at CFG 3.
    assert (streamed.rollout.startup_micro_steps, streamed.rollout.startup_guidance) == (16, 3.0)
    with pytest.raises(ConfigError, match=r"distill\.chunk_frames"):
        load("tiny", ["distill.chunk_frames=3"])


@pytest.fixture(scope="module")
def teacher_dir(teacher, tmp_path_factory):
    """The random tiny teacher saved as a checkpoint (its EMA item is its params): distillation restores
    it like a trained one."""
    cfg, _, params = teacher
    path = tmp_path_factory.mktemp("teacher") / "ckpt"
    ckpt.save_params(path, cfg.model, params)
    return path


@pytest.mark.slow
def test_one_distillation_step_is_the_same_on_every_mesh(teacher_dir, tiny_latents, tmp_path):
    """The loss of the first step on (8,1,1,1) and (2,2,1,2) equals one device's; on every mesh the
    student starts as the teacher's EMA weights, and the teacher's arrays outlive the donated steps."""
    overrides = ["distill.teacher_micro_steps=3", "distill.batch_size=8", "distill_optimizer.warmup_steps=0",
                 "data.source=latents", f"data.path={tiny_latents}", "data.heldout=16"]  # fmt: skip
    results = {}
    for mesh in [(1, 1, 1, 1), (8, 1, 1, 1), (2, 2, 1, 2)]:
        size = int(np.prod(mesh))
        cfg = load("tiny", [f"mesh.shape={mesh}".replace(" ", ""), *overrides], num_devices=size)
        trainer = distill_trainer(
            cfg, teacher_dir, tmp_path / "x".join(map(str, mesh)),
            make_mesh(cfg.mesh, jax.devices()[:size]), resume=False, progress=False,
        )  # fmt: skip
        start = jax.device_get(trainer.state.params)
        metrics = jax.device_get(trainer.step(next(trainer.data)))
        trainer.step(next(trainer.data))  # the teacher's arrays outlive the donated state
        results[mesh] = (float(metrics["loss"]), start, jax.device_get(trainer.frozen["teacher"]))
        trainer.close()
    loss, start, teacher = results.pop((1, 1, 1, 1))
    _, _, saved = restore_params(teacher_dir)
    pairs = zip(jax.tree.leaves(start), jax.tree.leaves(jax.device_get(saved)), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)  # the student started as the teacher's EMA weights
    assert loss > 0
    for mesh, (other, other_start, other_teacher) in results.items():
        assert other == pytest.approx(loss, rel=1e-4), mesh
        ours, theirs = jax.tree.leaves((start, teacher)), jax.tree.leaves((other_start, other_teacher))
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_distill_cli_student_streams_one_pass_per_chunk(tiny_demo, tmp_path, capsys):
    """`streamdit distill` from the tiny demo's teacher, with the demo's own distillation settings (so its
    compiled step is the demo student stage's); the student streams with one forward pass per chunk."""
    student = tmp_path / "student"
    args = ["distill", "--teacher", str(tiny_demo / "teacher"), "--workdir", str(student), *TINY_DEMO,
            "--config.data.source=latents", f"--config.data.path={tiny_demo / 'latents'}",
            "--config.data.heldout=1", f"--config.data.vae={tiny_demo / 'autoencoder'}"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "teacher (K, N, c, s) = (0, 4, 2, 2) with CFG 3 -> student (0, 4, 2, 1)" in printed
    assert ckpt.latest_step(student) == 2
    assert ckpt.restore_run_config(student, 2).scheme == (0, 4, 2, 1)
    out = tmp_path / "s.mp4"
    assert main(["stream", "--checkpoint", str(student), "--prompt", "a red circle moving left",
                 "--seconds", "2", "--out", str(out)]) == 0  # fmt: skip
    assert "forward passes per chunk: 1" in capsys.readouterr().out
    # A teacher of another model is refused before anything is restored.
    other = [*args[:4], str(tmp_path / "other"), *args[5:], "--config.model.num_layers=4"]
    assert main(other) != 0
    assert "config field 'model'" in capsys.readouterr().err
