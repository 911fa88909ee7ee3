"""The teacher's side of segment-wise distillation (docs/training.md): steady-state buffers and their
targets.

A buffer in steady state under scheme (0, N, c, s) holds chunk i (0 = oldest) at the start of its
segment, sigma (i + 1)/N. One stream step crosses every segment at once: the teacher takes s guided
Euler micro-steps of 1/(N·s); the student must land on the same latents in one unguided step of 1/N,
so its target velocity is ``N · (x − teacher(x))``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from streamdit_jax.flow import Scheme, add_noise, euler
from streamdit_jax.flow.loss import VelocityFn


def steady_buffers(latents: jax.Array, noise: jax.Array, scheme: Scheme) -> tuple[jax.Array, jax.Array]:
    """Clean buffers [B, F, h, w, C] noised to the scheme's steady state: (noisy latents, sigma [B, F])."""
    sigma = jnp.broadcast_to(jnp.asarray(scheme.steady_sigmas())[None], latents.shape[:2])
    return add_noise(latents, sigma, noise), sigma


def teacher_step(velocity: VelocityFn, latents: jax.Array, sigma: jax.Array, scheme: Scheme) -> jax.Array:
    """Where the teacher's s micro-steps take a steady-state buffer: every chunk to its segment's end."""
    step = jnp.broadcast_to(jnp.asarray(scheme.step_sizes())[None], sigma.shape)
    return euler(velocity, latents, sigma, step, scheme.micro_steps)[0]


def advance(stepped: jax.Array, fresh: jax.Array, chunk_frames: int) -> jax.Array:
    """The next steady-state buffer of a stream: the clean front chunk of ``stepped`` leaves, the rest
    moves one chunk forward and ``fresh`` noise [B, c, h, w, C] enters at the back."""
    return jnp.concatenate([stepped[:, chunk_frames:], fresh], axis=1)


def target_velocity(latents: jax.Array, target: jax.Array, scheme: Scheme) -> jax.Array:
    """The velocity whose one Euler step of 1/N takes ``latents`` to ``target``."""
    return (latents - target) * scheme.chunks
