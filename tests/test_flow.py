"""Buffered flow matching: per-frame sigma sampling, the velocity loss, and the Euler sampler."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax.config import BufferConfig
from streamdit_jax.flow import (
    Mixture,
    Scheme,
    SchemeError,
    add_noise,
    buffered_loss,
    euler,
    sample_sigmas,
    steady_round,
    text_to_video,
)

DRAWS = 20_000


def _draw(buffer: BufferConfig, batch: int = DRAWS, seed: int = 0):
    return jax.jit(sample_sigmas, static_argnums=(1, 2))(
        jax.random.key(seed), batch, buffer.frames, Mixture.from_config(buffer)
    )


@pytest.mark.parametrize("reference", [0, 2])
def test_each_chunk_draws_within_its_range_and_noise_rises_along_the_buffer(reference):
    buffer = BufferConfig(frames=8 + reference, reference_frames=reference, chunk_sizes=(1, 2, 4, 8))
    drawn = _draw(buffer)
    sigma, c = np.asarray(drawn.sigma), np.asarray(drawn.chunk_frames)
    assert np.all(sigma[:, :reference] == 0.0) and not np.asarray(drawn.loss_mask)[:, :reference].any()
    assert np.asarray(drawn.loss_mask)[:, reference:].all()
    denoised = sigma[:, reference:]
    assert np.all(np.diff(denoised, axis=1) >= 0.0), "noise must not fall from oldest to newest frame"
    for size in (1, 2, 4, 8):
        rows = denoised[(c == size) & (np.asarray(drawn.choice) < 4)]
        chunks = 8 // size
        index = np.arange(8) // size  # chunk of each frame, 0 = oldest
        assert np.all(rows >= index / chunks) and np.all(rows <= (index + 1) / chunks)
        # One draw per chunk: the frames of a chunk share their sigma; chunks draw independently.
        per_chunk = rows.reshape(len(rows), chunks, size)
        assert np.all(per_chunk == per_chunk[:, :, :1])
        # Within its range each chunk's sigma is uniform: mean at the midpoint (stated tolerance 0.01).
        offsets = per_chunk[:, :, 0] * chunks - np.arange(chunks)
        np.testing.assert_allclose(offsets.mean(0), 0.5, atol=0.01)


def test_mixture_frequencies_match_the_config():
    """Each of 20,000 draws picks c with the configured weights; the observed shares must lie within
    5 standard errors (sqrt(p(1-p)/n) <= 0.0035, so within ~0.018) of the configured probabilities."""
    buffer = BufferConfig(
        frames=8, chunk_sizes=(1, 2, 4, 8), chunk_weights=(4.0, 2.0, 1.0, 1.0), uniform_share=0.2
    )
    choice = np.asarray(_draw(buffer).choice)
    expected = np.array([0.4, 0.2, 0.1, 0.1, 0.2])
    observed = np.bincount(choice, minlength=5) / DRAWS
    bound = 5 * np.sqrt(expected * (1 - expected) / DRAWS)
    assert np.all(np.abs(observed - expected) <= bound), (observed, expected)


def test_the_uniform_share_gives_one_sigma_per_sample():
    buffer = BufferConfig(frames=8, reference_frames=2, chunk_sizes=(1, 2), uniform_share=1.0)
    drawn = _draw(buffer, batch=4000)
    sigma = np.asarray(drawn.sigma)[:, 2:]
    assert np.all(sigma == sigma[:, :1]) and np.all(np.asarray(drawn.chunk_frames) == 6)
    assert sigma[:, 0].min() < 0.01 and sigma[:, 0].max() > 0.99  # the whole range [0, 1]
    assert abs(sigma[:, 0].mean() - 0.5) < 0.02


# (density fields, numpy draws of the documented density over [0, 1]): an independent reference.
DENSITIES = [
    ({"level_density": "uniform"}, lambda rng, n: rng.uniform(size=n)),
    (
        {"level_density": "logit_normal", "level_mean": 0.5, "level_std": 1.2},
        lambda rng, n: 1.0 / (1.0 + np.exp(-(0.5 + 1.2 * rng.standard_normal(n)))),
    ),
    (
        {"level_density": "shifted", "level_shift": 3.0},
        lambda rng, n: (lambda u: 3.0 * u / (1.0 + 2.0 * u))(rng.uniform(size=n)),
    ),
]


@pytest.mark.parametrize(("fields", "reference"), DENSITIES, ids=[f["level_density"] for f, _ in DENSITIES])
def test_level_densities_draw_what_they_document_over_the_range_and_within_each_chunk(fields, reference):
    """Two-sample Kolmogorov-Smirnov against numpy draws of the documented density: over [0, 1] (the
    uniform share) and restricted to each chunk's range (chunks of 2 in 8 frames: N = 4). With 20,000
    draws a side the test fails at p < 1e-3 (a KS distance above ~0.02)."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    truth = reference(rng, 400_000)
    whole = np.asarray(_draw(BufferConfig(frames=8, uniform_share=1.0, **fields)).sigma)[:, 0]
    assert ks_2samp(whole, truth[:DRAWS]).pvalue > 1e-3
    chunked = _draw(
        BufferConfig(frames=8, chunk_sizes=(2,), chunk_weights=(1.0,), uniform_share=0.0, **fields)
    )
    sigma = np.asarray(chunked.sigma)[:, ::2]  # [draws, 4 chunks]
    for i in range(4):
        inside = truth[(truth >= i / 4) & (truth <= (i + 1) / 4)]
        assert np.all((sigma[:, i] >= i / 4) & (sigma[:, i] <= (i + 1) / 4))
        assert ks_2samp(sigma[:, i], inside[:DRAWS]).pvalue > 1e-3, (i, len(inside))


def test_a_wrong_density_parameter_is_seen_by_the_test_above():
    """The KS check has power: logit-normal draws with mean 0.6 are told apart from mean 0.5."""
    from scipy.stats import ks_2samp

    fields = {"level_density": "logit_normal", "level_mean": 0.6, "level_std": 1.2}
    drawn = np.asarray(_draw(BufferConfig(frames=8, uniform_share=1.0, **fields)).sigma)[:, 0]
    assert ks_2samp(drawn, DENSITIES[1][1](np.random.default_rng(0), DRAWS)).pvalue < 1e-3


def test_one_trace_serves_every_scheme_mixture_and_reference_count():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw(key, mixture):
        return sample_sigmas(key, 64, 12, mixture)

    for buffer in (
        BufferConfig(frames=12, chunk_sizes=(1, 2, 3), chunk_weights=(1, 1, 1)),
        BufferConfig(frames=12, chunk_sizes=(4, 6, 12), chunk_weights=(0, 2, 1), uniform_share=0.5),
        BufferConfig(frames=12, reference_frames=4, chunk_sizes=(2, 4, 8), chunk_weights=(1, 0, 1)),
        BufferConfig(
            frames=12, chunk_sizes=(2, 4, 12), chunk_weights=(1, 1, 1), level_density="logit_normal"
        ),
        BufferConfig(
            frames=12,
            chunk_sizes=(3, 4, 12),
            chunk_weights=(1, 1, 1),
            level_density="logit_normal",
            level_mean=-0.5,
            level_std=2.0,
        ),
        BufferConfig(
            frames=12,
            chunk_sizes=(2, 4, 12),
            chunk_weights=(1, 1, 1),
            level_density="shifted",
            level_shift=5.0,
        ),
    ):
        drawn = draw(jax.random.key(1), Mixture.from_config(buffer))
        sizes = set(np.asarray(drawn.chunk_frames).tolist())
        allowed = {c for c, w in zip(buffer.chunk_sizes, buffer.chunk_weights, strict=True) if w > 0}
        allowed |= {buffer.denoised_frames} if buffer.uniform_share > 0 else set()
        assert sizes <= allowed and sizes
        assert not np.asarray(drawn.loss_mask)[:, : buffer.reference_frames].any()


def test_reference_frames_carry_no_loss():
    """Changing the prediction on reference frames leaves the loss unchanged; on others it does not."""
    buffer = BufferConfig(frames=6, reference_frames=2, chunk_sizes=(1, 2, 4))
    keys = jax.random.split(jax.random.key(0), 2)
    latents = jax.random.normal(keys[0], (4, 6, 2, 2, 3))
    mixture = Mixture.from_config(buffer)

    def loss_with(offset_frames):
        def velocity(x, sigma):
            bump = jnp.zeros(6).at[offset_frames].set(5.0)
            return x * 0.0 + bump[None, :, None, None, None]

        return float(buffered_loss(velocity, latents, keys[1], mixture)[0])

    base = loss_with(jnp.array([], jnp.int32))
    assert loss_with(jnp.array([0, 1])) == pytest.approx(base, rel=1e-6)
    assert loss_with(jnp.array([2])) > base + 1.0


def test_loss_is_the_velocity_mse_of_an_independent_numpy_computation():
    buffer = BufferConfig(frames=4, reference_frames=1, chunk_sizes=(1, 3))
    latents = jax.random.normal(jax.random.key(3), (3, 4, 2, 2, 2))
    key = jax.random.key(4)
    weight = 0.3

    def velocity(x, sigma):  # any function of both inputs
        return weight * x + sigma[:, :, None, None, None]

    loss, _ = buffered_loss(velocity, latents, key, Mixture.from_config(buffer))
    k_sigma, k_noise = jax.random.split(key)
    sigma = np.asarray(sample_sigmas(k_sigma, 3, 4, Mixture.from_config(buffer)).sigma)
    noise = np.asarray(jax.random.normal(k_noise, latents.shape))
    x = np.asarray(latents)
    s = sigma[:, :, None, None, None]
    noisy = (1 - s) * x + s * noise
    error = (weight * noisy + s - (noise - x)) ** 2
    expected = error[:, 1:].mean()
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_schemes_validate_and_describe_their_buffer():
    scheme = Scheme.for_buffer(16, 0, 2, micro_steps=16)
    assert (scheme.chunks, scheme.frames, scheme.steps_per_frame) == (8, 16, 128)
    np.testing.assert_allclose(scheme.steady_sigmas()[:4], [1 / 8, 1 / 8, 2 / 8, 2 / 8])
    assert Scheme.parse("2,3,2,4") == Scheme(2, 3, 2, 4)
    with pytest.raises(SchemeError, match=r"cannot hold chunks of 3.*choose c among"):
        Scheme.for_buffer(8, 0, 3)
    with pytest.raises(SchemeError, match="fills 10 frames, but the model's buffer holds 8"):
        Scheme(2, 4, 2, 1).check_buffer(8)
    with pytest.raises(SchemeError, match="four integers"):
        Scheme.parse("1,2")


def test_euler_round_follows_the_flow_and_emits_a_clean_front_chunk():
    """With the exact velocity of a single data point the Euler round is exact: the oldest chunk comes
    out equal to the data, every other chunk at the noise level of the next lower segment."""
    scheme = Scheme(1, 3, 2, 4)  # K=1, N=3, c=2, s=4
    keys = jax.random.split(jax.random.key(0), 2)
    data = jax.random.normal(keys[0], (2, scheme.frames, 2, 2, 4))
    noise = jax.random.normal(keys[1], data.shape)
    sigma0 = jnp.broadcast_to(jnp.asarray(scheme.steady_sigmas()), (2, scheme.frames))
    start = add_noise(data, sigma0, noise)
    out = steady_round(lambda x, s: noise - data, start, scheme)
    expected = add_noise(data, jnp.maximum(sigma0 - 1 / scheme.chunks, 0.0), noise)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out[:, :3]), np.asarray(data[:, :3]), atol=1e-5)  # ref + chunk 0


def test_euler_matches_an_unrolled_loop_and_text_to_video_is_uniform():
    keys = jax.random.split(jax.random.key(1), 2)
    noise = jax.random.normal(keys[0], (1, 4, 2, 2, 3))
    w = jax.random.normal(keys[1], (3, 3)) * 0.3

    def velocity(x, sigma):
        return x @ w + sigma[:, :, None, None, None]

    x, seen = np.asarray(noise), []
    sigma = np.ones((1, 4), np.float32)
    for _ in range(5):
        seen.append(sigma.copy())
        x = x - 0.2 * np.asarray(velocity(jnp.asarray(x), jnp.asarray(sigma)))
        sigma = sigma - 0.2
    np.testing.assert_allclose(np.asarray(text_to_video(velocity, noise, 5)), x, rtol=1e-5, atol=1e-6)
    assert all(np.all(s == s[0, 0]) for s in seen)  # uniform mode: one sigma for all frames
    out, final_sigma = euler(velocity, noise, jnp.ones((1, 4)), jnp.full((1, 4), 0.2), 5)
    np.testing.assert_allclose(np.asarray(out), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(final_sigma), 0.0, atol=1e-6)
