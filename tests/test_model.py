"""The StreamDiT forward/backward on CPU: windows, shifts, remat, precision, input checks, retracing."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import randomize, relative_error

from streamdit_jax import config as config_lib
from streamdit_jax.model import StreamDiT, abstract_model, apply, init_params

TINY = config_lib.load("tiny", num_devices=1)


def _model_cfg(**fields):
    return dataclasses.replace(TINY.model, **fields)


def _inputs(cfg, batch=2, frames=8, hw=8, text_len=16, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    latents = jax.random.normal(keys[0], (batch, frames, hw, hw, cfg.latent_channels))
    sigma = jnp.sort(jax.random.uniform(keys[1], (batch, frames)), axis=1)
    text = jax.random.normal(keys[2], (batch, text_len, cfg.text_width))
    return latents, sigma, text, jnp.ones((batch, text_len), bool)


def _random_model(cfg, seed=0):
    graphdef, params = init_params(cfg, jax.random.key(seed))
    return graphdef, randomize(params, seed)


def _forward(cfg):
    """The jitted forward of a model config (its graphdef), for any params of matching shapes."""
    graphdef = abstract_model(cfg)[0]
    return jax.jit(lambda params, *inputs: apply(graphdef, params, *inputs))


def _frame_influence(cfg):
    """Which output frames change when only input frame 0 changes (4 latent frames, 2 layers)."""
    _, params = _random_model(cfg)
    latents, sigma, text, mask = _inputs(cfg, batch=1, frames=4)
    forward = _forward(cfg)
    out_a = forward(params, latents, sigma, text, mask)
    out_b = forward(params, latents.at[:, 0].add(1.0), sigma, text, mask)
    return [bool(jnp.any(out_a[:, f] != out_b[:, f])) for f in range(4)]


@pytest.mark.slow
def test_windows_limit_what_each_frame_sees():
    # Token grid (4, 4, 4). Per-frame windows: no frame sees another.
    assert _frame_influence(_model_cfg(window=(1, 4, 4))) == [True, False, False, False]
    # Two-frame windows: layer 0 mixes frames {0,1}; layer 1 is shifted by one frame, mixing {1,2},
    # and puts {3,0} in one window, but the wrapped pair is masked: frame 3 never sees frame 0.
    assert _frame_influence(_model_cfg(window=(2, 4, 4))) == [True, True, True, False]
    # Full attention: everything sees everything.
    assert _frame_influence(_model_cfg(window=None)) == [True, True, True, True]


@pytest.mark.slow
def test_forward_backward_runs_and_every_parameter_learns():
    cfg = TINY.model
    graphdef, params = _random_model(cfg)
    latents, sigma, text, mask = _inputs(cfg)
    target = jax.random.normal(jax.random.key(9), latents.shape)

    def loss(p):
        return jnp.mean((apply(graphdef, p, latents, sigma, text, mask) - target) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert jnp.isfinite(value)
    norms = {
        jax.tree_util.keystr(path): float(jnp.linalg.norm(g)) for path, g in jax.tree.leaves_with_path(grads)
    }
    assert all(np.isfinite(v) and v > 0 for v in norms.values()), {
        k: v for k, v in norms.items() if not v > 0
    }


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_policies_give_the_same_gradients(policy):
    base = TINY.model
    _, params = _random_model(base)
    latents, sigma, text, mask = _inputs(base)

    def grads(cfg):
        graphdef = abstract_model(cfg)[0]
        return jax.jit(jax.grad(lambda p: jnp.sum(apply(graphdef, p, latents, sigma, text, mask) ** 2)))(
            params
        )

    want, got = grads(base), grads(_model_cfg(remat=policy))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert relative_error(a, b) < 1e-5


@pytest.mark.slow
def test_bfloat16_compute_stays_close_to_float32():
    _, params = _random_model(TINY.model)
    inputs = _inputs(TINY.model)
    want = _forward(TINY.model)(params, *inputs)
    got = _forward(_model_cfg(dtype="bfloat16"))(params, *inputs)
    assert got.dtype == jnp.float32
    assert relative_error(got, want) < 1e-2  # seen: ~5e-3 on the CPU


@pytest.mark.slow
def test_per_frame_sigma_changes_only_through_time_embedding():
    """sigma is per frame: changing one frame's sigma changes the output (it is not ignored)."""
    cfg = _model_cfg(window=(1, 4, 4))
    _, params = _random_model(cfg)
    latents, sigma, text, mask = _inputs(cfg, frames=4)
    forward = _forward(cfg)
    out_a = forward(params, latents, sigma, text, mask)
    out_b = forward(params, latents, sigma.at[:, 2].set(0.99), text, mask)
    changed = [bool(jnp.any(out_a[:, f] != out_b[:, f])) for f in range(4)]
    assert changed == [False, False, True, False]


def test_a_prompt_without_valid_tokens_contributes_nothing():
    """An all-false mask means "no text": the padding's values must not matter, and no NaN appears."""
    cfg = TINY.model
    _, params = _random_model(cfg)
    latents, sigma, text, _ = _inputs(cfg)
    empty = jnp.zeros(text.shape[:2], bool)
    forward = _forward(cfg)
    a = forward(params, latents, sigma, text, empty)
    b = forward(params, latents, sigma, 5.0 * text + 3.0, empty)
    assert bool(jnp.isfinite(a).all())
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_changing_values_and_prompt_length_does_not_retrace():
    graphdef, params = init_params(TINY.model, jax.random.key(0))
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(params, latents, sigma, text, mask):
        return apply(graphdef, params, latents, sigma, text, mask)

    latents, sigma, text, _ = _inputs(TINY.model)
    for seed, length in enumerate((16, 3, 9, 1)):
        mask = jnp.broadcast_to(jnp.arange(16) < length, (2, 16))
        sigma = jax.random.uniform(jax.random.key(seed), sigma.shape)
        text = jax.random.normal(jax.random.key(seed + 10), text.shape)
        forward(params, latents, sigma, text, mask).block_until_ready()
    # A fresh prompt that is not a jax array (NumPy) still hits the cache.
    forward(params, latents, np.asarray(sigma), np.asarray(text), np.asarray(mask)).block_until_ready()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, s, t, m: (x[..., :3], s, t, m), "channels last"),
        (lambda x, s, t, m: (x, s[:, :3], t, m), "per latent frame"),
        (lambda x, s, t, m: (x, s, t[..., :5], m), "Dt=384"),
        (lambda x, s, t, m: (x, s, t, m[:, :4]), "text_mask"),
        (lambda x, s, t, m: (x[:, :, :7], s, t, m), "patch_size"),
    ],
)
def test_bad_inputs_name_the_problem(change, message):
    model = StreamDiT(TINY.model, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=message):
        model(*change(*_inputs(TINY.model)))


@pytest.mark.slow
def test_odd_layer_count_with_shifted_windows_is_an_error():
    model = StreamDiT(_model_cfg(num_layers=3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="even number of layers"):
        model(*_inputs(TINY.model))
