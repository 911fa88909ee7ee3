"""The prediction target (``model.prediction``): one adapter from the model's output to a velocity for
training, the streaming rollout and distillation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import randomize

from streamdit_jax.config import BufferConfig, ModelConfig
from streamdit_jax.flow import (
    SIGMA_FLOOR,
    Mixture,
    Scheme,
    add_noise,
    buffered_loss,
    model_velocity,
    sample_sigmas,
    to_velocity,
)
from streamdit_jax.model import StreamDiT

SMALL = ModelConfig(width=32, num_heads=2, mlp_width=64, num_layers=2, text_width=8, latent_channels=4,
                    freq_dim=16, prediction="x0")  # fmt: skip
SHAPE = (2, 4, 4, 4, 4)  # [B, F, h, w, C]


def _draws(seed: int = 0):
    keys = jax.random.split(jax.random.key(seed), 3)
    latents = jax.random.normal(keys[0], SHAPE)
    noise = jax.random.normal(keys[1], SHAPE)
    sigma = jax.random.uniform(keys[2], SHAPE[:2], minval=SIGMA_FLOOR, maxval=1.0)
    return latents, noise, sigma


def test_the_true_clean_latents_give_the_true_velocity():
    """(x_sigma - x) / sigma = noise - x: the adapter of a model that returns x is the flow's velocity.
    In float32 x_sigma carries rounding of a few ulps of values up to ~5 (normal draws), which the
    subtraction keeps and the division by sigma >= 0.05 multiplies by at most 20: ~2e-5 at most."""
    latents, noise, sigma = _draws()
    velocity = to_velocity(latents, add_noise(latents, sigma, noise), sigma, "x0")
    np.testing.assert_allclose(np.asarray(velocity), np.asarray(noise - latents), atol=5e-5, rtol=0)
    assert to_velocity(noise - latents, latents, sigma, "velocity") is not None
    np.testing.assert_array_equal(to_velocity(noise, latents, sigma, "velocity"), noise)  # the identity
    clean = jnp.zeros(SHAPE[:2])  # clean frames (reference frames, sigma 0) stay finite
    assert bool(jnp.isfinite(to_velocity(latents, noise, clean, "x0")).all())


def _model(prediction: str = "x0", seed: int = 0):
    model = StreamDiT(ModelConfig(**{**SMALL.__dict__, "prediction": prediction}), rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model)
    return nnx.merge(graphdef, randomize(params, seed=seed))


def _text(batch: int = 2):
    return jax.random.normal(jax.random.key(9), (batch, 5, 8)), jnp.ones((batch, 5), bool)


@pytest.mark.slow
def test_the_x0_loss_is_the_velocity_loss_of_the_adapted_output():
    """An independent numpy computation: the model's raw output x̂, turned into (x_sigma - x̂) / max(sigma,
    0.05), against the velocity of the true x under the same clamp (noise - x where sigma >= 0.05)."""
    batch = 8  # chunks of one frame: the oldest draws sigma in [0, 1/3], below 0.05 for some examples
    model, (text, mask) = _model(), _text(batch)
    shape = (batch, *SHAPE[1:])
    latents = jax.random.normal(jax.random.key(1), shape)
    buffer = BufferConfig(frames=4, reference_frames=1, chunk_sizes=(1,), chunk_weights=(1.0,),
                          uniform_share=0)  # fmt: skip
    mixture, key = Mixture.from_config(buffer), jax.random.key(2)
    graphdef, params = nnx.split(model)

    @jax.jit
    def loss_of(params):
        velocity = model_velocity(nnx.merge(graphdef, params))
        return buffered_loss(lambda x, s: velocity(x, s, text, mask), latents, key, mixture, "x0")[0]

    loss = loss_of(params)
    k_sigma, k_noise = jax.random.split(key)
    sigma = np.asarray(sample_sigmas(k_sigma, batch, 4, mixture).sigma, np.float64)
    noise = np.asarray(jax.random.normal(k_noise, shape), np.float64)
    x = np.asarray(latents, np.float64)
    s = sigma[:, :, None, None, None]
    noisy = (1 - s) * x + s * noise
    forward = jax.jit(lambda x, s: nnx.merge(graphdef, params)(x, s, text, mask))
    output = np.asarray(forward(jnp.asarray(noisy, jnp.float32), jnp.asarray(sigma, jnp.float32)))
    level = np.maximum(s, SIGMA_FLOOR)
    expected = (((noisy - output) / level - (noisy - x) / level) ** 2)[:, 1:].mean()  # K = 1: no loss
    assert (sigma[:, 1:] < SIGMA_FLOOR).any()  # the clamp is exercised
    assert float(loss) == pytest.approx(expected, rel=1e-4)  # float32 model, float64 reference


def test_the_jitted_loss_does_not_retrace_when_levels_or_mixture_change():
    model, (text, mask) = _model(), _text()
    graphdef, params = nnx.split(model)
    latents = jax.random.normal(jax.random.key(1), SHAPE)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(params, latents, key, mixture):
        velocity = model_velocity(nnx.merge(graphdef, params))
        return buffered_loss(lambda x, s: velocity(x, s, text, mask), latents, key, mixture, "x0")[0]

    values = set()
    for i, buffer in enumerate([
        BufferConfig(frames=4, chunk_sizes=(1, 2), chunk_weights=(1.0, 1.0), level_density="uniform"),
        BufferConfig(frames=4, chunk_sizes=(2, 4), chunk_weights=(3.0, 1.0), level_density="shifted",
                     level_shift=3.0),
        BufferConfig(frames=4, chunk_sizes=(1, 4), chunk_weights=(1.0, 2.0), level_density="logit_normal",
                     uniform_share=0.5),
    ]):  # fmt: skip
        values.add(float(loss(params, latents, jax.random.key(i), Mixture.from_config(buffer))))
    assert len(values) == 3


class Oracle(nnx.Module):
    """A model whose output is always ``clean`` (it knows the answer): under x-prediction, exact."""

    def __init__(self, clean: jax.Array):
        self.cfg = SMALL
        self.clean = nnx.Param(clean)

    def __call__(self, latents, sigma, text, text_mask):
        return jnp.broadcast_to(self.clean[...], latents.shape)


def test_the_rollout_lands_on_the_x0_of_an_exact_model():
    """One stream step of (0, 2, 2, 1): every chunk is crossed in one Euler step of 1/N >= the clamp, so
    an exact x-prediction emits the clean chunk and leaves the next at its lower level."""
    from streamdit_jax.stream.rollout import Conditioning, Rollout

    clean = jax.random.normal(jax.random.key(5), SHAPE[1:])[None]
    graphdef, params = nnx.split(Oracle(clean))
    rollout = Rollout(graphdef, Scheme(0, 2, 2, 1))
    text, mask = _text(1)
    state = rollout.start(params, Conditioning(text, mask), jax.random.key(0), SHAPE[2:])
    state, chunk = rollout.step(params, state, Conditioning(text, mask))
    np.testing.assert_allclose(np.asarray(chunk), np.asarray(clean[:, :2]), atol=1e-5)


@pytest.mark.slow
def test_training_rollout_and_distillation_share_one_adapter(monkeypatch):
    """Every path from the model's output to a velocity goes through flow.prediction.to_velocity."""
    from streamdit_jax.flow import prediction

    calls = []
    original = prediction.to_velocity

    def counted(output, latents, sigma, target):
        calls.append(target)
        return original(output, latents, sigma, target)

    monkeypatch.setattr(prediction, "to_velocity", counted)
    model, (text, mask) = _model(), _text()
    graphdef, params = nnx.split(model)

    # training (FlowTask's loss)
    from types import SimpleNamespace

    from streamdit_jax.config import DistillConfig
    from streamdit_jax.train.flow_task import FlowTask

    task = FlowTask.__new__(FlowTask)  # the loss needs no data source, only the mixture
    task.mixture = Mixture.from_config(BufferConfig(frames=4, chunk_sizes=(1, 2), chunk_weights=(1.0, 1.0)))
    batch = {"latents": jax.random.normal(jax.random.key(1), SHAPE), "text": text, "text_mask": mask}
    task.loss(model, batch, jax.random.key(0))
    assert calls.count("x0") == 2  # the model's output and the target
    # the rollout
    from streamdit_jax.stream.rollout import Conditioning, Rollout

    calls.clear()
    rollout = Rollout(graphdef, Scheme(0, 2, 2, 1))
    state = rollout.start(params, Conditioning(text[:1], mask[:1]), jax.random.key(0), SHAPE[2:])
    rollout.step(params, state, Conditioning(text[:1], mask[:1]))
    assert calls and set(calls) == {"x0"}
    # distillation: the teacher's guided velocity and the student's
    from streamdit_jax.distill.task import DistillTask

    calls.clear()
    distill = DistillTask.__new__(DistillTask)
    distill.cfg = SimpleNamespace(distill=DistillConfig(chunk_frames=2, teacher_micro_steps=2))
    distill.teacher_graphdef = graphdef
    distill.teacher_scheme, distill.student_scheme = Scheme(0, 2, 2, 2), Scheme(0, 2, 2, 1)
    frozen = {"teacher": params, "null_text": jnp.zeros((1, 5, 8)), "null_mask": jnp.ones((1, 5), bool)}
    distill.loss(model, batch, jax.random.key(0), frozen)
    assert calls.count("x0") >= 3 and set(calls) == {"x0"}  # teacher (cond + uncond batch) and student
