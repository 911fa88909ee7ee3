"""Euler sampling of any partition scheme: rounds of s micro-steps over the whole buffer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from streamdit_jax.flow.loss import VelocityFn
from streamdit_jax.flow.schemes import Scheme


def guided(model_fn, text, text_mask, null_text, null_mask, scale) -> VelocityFn:
    """Classifier-free guidance ``v_null + scale·(v_text − v_null)`` in one forward of a doubled batch.

    ``model_fn(latents, sigma, text, text_mask) -> velocity``; ``scale`` may be traced.
    """

    def velocity(latents: jax.Array, sigma: jax.Array) -> jax.Array:
        both = model_fn(
            jnp.concatenate([latents, latents]),
            jnp.concatenate([sigma, sigma]),
            jnp.concatenate([text, jnp.broadcast_to(null_text, text.shape)]),
            jnp.concatenate([text_mask, jnp.broadcast_to(null_mask, text_mask.shape)]),
        )
        cond, uncond = jnp.split(both, 2)
        return uncond + jnp.asarray(scale, both.dtype) * (cond - uncond)

    return velocity


def euler(
    velocity_fn: VelocityFn, latents: jax.Array, sigma: jax.Array, step: jax.Array, steps: int
) -> tuple[jax.Array, jax.Array]:
    """``steps`` Euler updates ``x <- x − d·v(x, sigma)``, ``sigma <- sigma − d`` with per-frame step
    ``d`` [B, F] (0 on frames that stay put); returns (latents, sigma)."""

    def body(_, carry):
        x, s = carry
        v = velocity_fn(x, s)
        x = x - step[:, :, None, None, None].astype(x.dtype) * v.astype(x.dtype)
        return x, jnp.maximum(s - step, 0.0)

    return jax.lax.fori_loop(0, steps, body, (latents, sigma))


def steady_round(velocity_fn: VelocityFn, latents: jax.Array, scheme: Scheme) -> jax.Array:
    """One round of a buffer in steady state: s micro-steps take chunk i from (i+1)/N to i/N, so the
    oldest chunk comes out clean. Latents [B, F, h, w, C] with F = scheme.frames."""
    batch = latents.shape[0]
    sigma = jnp.broadcast_to(jnp.asarray(scheme.steady_sigmas()), (batch, scheme.frames))
    step = jnp.broadcast_to(jnp.asarray(scheme.step_sizes()), (batch, scheme.frames))
    return euler(velocity_fn, latents, sigma, step, scheme.micro_steps)[0]


def text_to_video(velocity_fn: VelocityFn, noise: jax.Array, steps: int, reference: jax.Array | None = None):
    """Plain text-to-video: every frame from sigma 1 to 0 in ``steps`` equal Euler steps (uniform mode);
    the first K frames may be given clean ``reference`` latents [B, K, h, w, C] and are kept."""
    k = 0 if reference is None else reference.shape[1]
    scheme = Scheme(k, 1, noise.shape[1] - k, steps)
    latents = noise if reference is None else jnp.concatenate([reference, noise[:, k:]], axis=1)
    return steady_round(velocity_fn, latents, scheme)
