"""The transformer's output as a velocity (``model.prediction``): the one adapter that training, the
streaming rollout and distillation share.

- ``velocity``: the network predicts ``v = noise - x`` directly (Wan's target).
- ``x0``: the network predicts the clean latents x̂ (x-prediction, as JiT does for high-dimensional pixel
  patches, where predicting the noise is hard and the clean data lies on a low-dimensional manifold).
  Since ``x_sigma = (1 - sigma)·x + sigma·noise``, the velocity is ``(x_sigma - x̂) / sigma``, with sigma
  clamped at ``SIGMA_FLOOR`` so that clean frames (sigma 0) stay finite. The loss stays in velocity
  space: MSE(v(x̂), v(x)), the clean latents' velocity under the same clamp (the true velocity
  wherever sigma >= SIGMA_FLOOR), which weighs x-errors by 1 / max(sigma, SIGMA_FLOOR)².
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# model_fn(latents [B,F,h,w,C], sigma [B,F], text [B,L,Dt], text_mask [B,L]) -> output [B,F,h,w,C]
ModelFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]

SIGMA_FLOOR = 0.05  # JiT's clamp of the noise level in the x -> v conversion


def to_velocity(output: jax.Array, latents: jax.Array, sigma: jax.Array, prediction: str) -> jax.Array:
    """The velocity of noisy ``latents`` at per-frame ``sigma`` [B, F] that the model's ``output`` means."""
    if prediction == "velocity":
        return output
    if prediction != "x0":
        raise ValueError(f"unknown prediction target {prediction!r} (velocity or x0)")
    level = jnp.maximum(sigma, SIGMA_FLOOR)[:, :, None, None, None].astype(output.dtype)
    return (latents.astype(output.dtype) - output) / level


def velocity_target(latents: jax.Array, noise: jax.Array, sigma: jax.Array, prediction: str) -> jax.Array:
    """What the loss compares the adapted output with: the adapted output of a perfect model (for
    ``velocity`` the true velocity ``noise - latents``; for ``x0`` the same where sigma >= SIGMA_FLOOR)."""
    ideal = noise - latents if prediction == "velocity" else latents
    s = sigma[:, :, None, None, None].astype(latents.dtype)
    return to_velocity(ideal, (1.0 - s) * latents + s * noise, sigma, prediction)


def as_velocity(model_fn: ModelFn, prediction: str) -> ModelFn:
    """``model_fn`` with its output turned into a velocity (float32)."""

    def velocity(latents: jax.Array, sigma: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        output = model_fn(latents, sigma, text, text_mask).astype(jnp.float32)
        return to_velocity(output, latents, sigma, prediction)

    return velocity


def model_velocity(model) -> ModelFn:
    """A transformer (a StreamDiT: callable, its ``cfg.prediction`` saying what it outputs) as a velocity
    function: how training, the rollout and distillation all call the model."""
    return as_velocity(model, model.cfg.prediction)
