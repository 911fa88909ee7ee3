"""Buffered flow matching: partition schemes, per-frame noise, the velocity loss, Euler sampling."""

from streamdit_jax.flow.loss import EVAL_LEVELS, buffered_loss, flow_loss, loss_by_level
from streamdit_jax.flow.noise import BufferNoise, Mixture, add_noise, sample_sigmas
from streamdit_jax.flow.prediction import (
    SIGMA_FLOOR,
    as_velocity,
    model_velocity,
    to_velocity,
    velocity_target,
)
from streamdit_jax.flow.sampler import euler, guided, steady_round, text_to_video
from streamdit_jax.flow.schemes import Scheme, SchemeError

__all__ = [
    "EVAL_LEVELS",
    "SIGMA_FLOOR",
    "BufferNoise",
    "Mixture",
    "Scheme",
    "SchemeError",
    "add_noise",
    "as_velocity",
    "buffered_loss",
    "euler",
    "flow_loss",
    "guided",
    "loss_by_level",
    "model_velocity",
    "sample_sigmas",
    "steady_round",
    "text_to_video",
    "to_velocity",
    "velocity_target",
]
