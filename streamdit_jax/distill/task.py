"""The trainer's task for segment-wise distillation: a student learns the teacher's guided segments."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from streamdit_jax.config import Config, RolloutConfig
from streamdit_jax.data.training import ExampleSource
from streamdit_jax.distill.targets import advance, steady_buffers, target_velocity, teacher_step
from streamdit_jax.flow import Scheme, guided, model_velocity
from streamdit_jax.model import StreamDiT
from streamdit_jax.text import TextEncoder
from streamdit_jax.train.flow_task import LatentBatches


def schemes(cfg: Config) -> tuple[Scheme, Scheme]:
    """(teacher, student) schemes of ``cfg.distill``: K = 0, N = B / c; s micro-steps, then one."""
    d = cfg.distill
    teacher = Scheme.for_buffer(cfg.buffer.frames, 0, d.chunk_frames, d.teacher_micro_steps)
    return teacher, dataclasses.replace(teacher, micro_steps=1)


def student_config(cfg: Config) -> Config:
    """The run config saved with the student: it streams with (0, N, c, 1) and no guidance, after a
    start-up (once per stream) with the teacher's micro-steps and guidance: its first buffer then holds
    the prompted object (docs/evaluation.md#why-the-demo-did-not-follow-its-prompts)."""
    buffer = dataclasses.replace(cfg.buffer, reference_frames=0)
    d = cfg.distill
    rollout = RolloutConfig(
        chunk_frames=d.chunk_frames,
        micro_steps=1,
        guidance=1.0,
        startup_micro_steps=d.teacher_micro_steps,
        startup_guidance=d.guidance,
    )
    return dataclasses.replace(cfg, buffer=buffer, rollout=rollout)


class DistillTask(LatentBatches):
    """Trains a student ``StreamDiT(cfg.model)`` on ``cfg.data`` to cross every segment of a
    steady-state buffer in one unguided step, where the teacher takes ``distill.teacher_micro_steps``
    guided ones. The teacher's parameters and the empty prompt arrive as the trainer's ``frozen``
    (:meth:`frozen`), so they are arguments of the jitted step, never constants or gradients.
    """

    def __init__(self, cfg: Config, teacher: nnx.GraphDef, vae=None, text_encoder: TextEncoder | None = None):
        self.cfg = cfg
        self.model_config = cfg.model
        self.teacher_graphdef = teacher
        self.teacher_scheme, self.student_scheme = schemes(cfg)
        self._encoders = (vae, text_encoder)
        self.tokens_per_example = math.prod(cfg.token_grid)

    @functools.cached_property
    def examples(self) -> ExampleSource:
        """The training data (built when first needed: the targets alone need none)."""
        return ExampleSource(self.cfg, *self._encoders)

    def build(self, rngs: nnx.Rngs) -> StreamDiT:
        return StreamDiT(self.cfg.model, rngs=rngs)

    def frozen(self, teacher_params: nnx.State, mesh: Mesh) -> dict[str, Any]:
        """The trainer's ``frozen``: the teacher's parameters (as sharded) and the empty prompt's states
        (replicated) for its unconditional branch."""
        null_text, null_mask = self.examples.empty_prompt()
        replicated = NamedSharding(mesh, PartitionSpec())
        return {
            "teacher": teacher_params,
            "null_text": jax.device_put(jnp.asarray(null_text, jnp.float32)[None], replicated),
            "null_mask": jax.device_put(jnp.asarray(null_mask, bool)[None], replicated),
        }

    def _teacher(self, frozen: dict, text: jax.Array, mask: jax.Array):
        def model_fn(latents, sigma, text, mask):
            teacher = nnx.merge(self.teacher_graphdef, frozen["teacher"])
            return model_velocity(teacher)(latents, sigma, text, mask)

        scale = jnp.asarray(self.cfg.distill.guidance, jnp.float32)
        return guided(model_fn, text, mask, frozen["null_text"], frozen["null_mask"], scale)

    def buffers_and_targets(self, batch: dict, key: jax.Array, frozen: dict) -> tuple[jax.Array, ...]:
        """(steady-state buffers, their sigmas, the student's target velocities) for a batch of clean
        latents: the data noised to the segment starts, and for ``rollout_share`` of the examples (the
        first ones) the buffer one teacher stream step later."""
        latents, text, mask = batch["latents"], batch["text"], batch["text_mask"]
        k_noise, k_fresh = jax.random.split(key)
        x, sigma = steady_buffers(latents, jax.random.normal(k_noise, latents.shape), self.student_scheme)
        rollouts = round(self.cfg.distill.rollout_share * latents.shape[0])
        if rollouts:
            teacher = self._teacher(frozen, text[:rollouts], mask[:rollouts])
            stepped = teacher_step(teacher, x[:rollouts], sigma[:rollouts], self.teacher_scheme)
            c = self.student_scheme.chunk_frames
            fresh = jax.random.normal(k_fresh, (rollouts, c, *latents.shape[2:]))
            x = jnp.concatenate([advance(stepped, fresh, c), x[rollouts:]])
        target = teacher_step(self._teacher(frozen, text, mask), x, sigma, self.teacher_scheme)
        return x, sigma, jax.lax.stop_gradient(target_velocity(x, target, self.student_scheme))

    def loss(self, model: StreamDiT, batch: dict, key: jax.Array, frozen: dict) -> tuple[jax.Array, dict]:
        """MSE between the student's velocity and the one that lands on the teacher's latents (equal to
        N² times the MSE of the latents themselves)."""
        x, sigma, target = self.buffers_and_targets(batch, key, frozen)
        velocity = model_velocity(model)(x, sigma, batch["text"], batch["text_mask"])
        loss = jnp.mean(jnp.square(velocity - target))
        return loss, {"target_rms": jnp.sqrt(jnp.mean(jnp.square(target)))}

    def evaluate(self, model: StreamDiT, batch: dict, frozen: dict) -> dict[str, jax.Array]:
        """The held-out distillation loss with one fixed noise draw (comparable across steps)."""
        loss, _ = self.loss(model, batch, jax.random.key(0), frozen)
        return {"loss": loss}
