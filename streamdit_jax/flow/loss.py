"""The buffered flow-matching loss: velocity MSE over the non-reference frames (the model's output
adapted to a velocity by ``flow.prediction``, whatever ``model.prediction`` it is trained for)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from streamdit_jax.flow.noise import Mixture, add_noise, sample_sigmas
from streamdit_jax.flow.prediction import velocity_target

# velocity_fn(noisy latents [B,F,h,w,C], sigma [B,F]) -> velocity [B,F,h,w,C]
VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]

# Noise levels at which the held-out loss is broken down.
EVAL_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)


def frame_errors(velocity: jax.Array, target: jax.Array) -> jax.Array:
    """Per-frame mean squared error [B, F] of a predicted velocity against the target velocity."""
    error = velocity.astype(jnp.float32) - target.astype(jnp.float32)
    return jnp.mean(jnp.square(error), axis=(2, 3, 4))


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def flow_loss(
    velocity_fn: VelocityFn,
    latents: jax.Array,
    sigma: jax.Array,
    noise: jax.Array,
    loss_mask: jax.Array,
    prediction: str = "velocity",
) -> jax.Array:
    """MSE between the predicted velocity (``velocity_fn``: the model's output already adapted from its
    ``prediction`` target) and the target velocity, averaged over the frames of ``loss_mask``."""
    velocity = velocity_fn(add_noise(latents, sigma, noise), sigma)
    target = velocity_target(latents, noise, sigma, prediction)
    return masked_mean(frame_errors(velocity, target), loss_mask)


def buffered_loss(
    velocity_fn: VelocityFn,
    latents: jax.Array,
    key: jax.Array,
    mixture: Mixture,
    prediction: str = "velocity",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One noise draw for the whole buffer (docs/training.md): sigmas from ``mixture``, the velocity
    loss, and the mean sigma and uniform-mode share as metrics."""
    k_sigma, k_noise = jax.random.split(key)
    batch, frames = latents.shape[:2]
    drawn = sample_sigmas(k_sigma, batch, frames, mixture)
    noise = jax.random.normal(k_noise, latents.shape, latents.dtype)
    loss = flow_loss(velocity_fn, latents, drawn.sigma, noise, drawn.loss_mask, prediction)
    uniform = jnp.mean((drawn.choice == mixture.chunk_sizes.shape[0]).astype(jnp.float32))
    return loss, {"sigma_mean": masked_mean(drawn.sigma, drawn.loss_mask), "uniform_share": uniform}


def loss_by_level(
    velocity_fn: VelocityFn,
    latents: jax.Array,
    key: jax.Array,
    reference: jax.Array,
    prediction: str = "velocity",
) -> dict[str, jax.Array]:
    """The velocity loss with every non-reference frame at one noise level, for each of EVAL_LEVELS."""
    noise = jax.random.normal(key, latents.shape, latents.dtype)
    batch, frames = latents.shape[:2]
    mask = jnp.broadcast_to(jnp.arange(frames)[None] >= reference, (batch, frames))
    out = {}
    for level in EVAL_LEVELS:
        sigma = jnp.where(mask, level, 0.0).astype(jnp.float32)
        out[f"loss_sigma_{level:.1f}"] = flow_loss(velocity_fn, latents, sigma, noise, mask, prediction)
    return out
