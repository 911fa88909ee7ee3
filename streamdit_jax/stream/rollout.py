"""The jitted streaming computation: start-up from a uniform-mode denoise, then one step per emitted chunk.

The buffer holds B = K + N·c latent frames, oldest first: K clean reference frames, then N chunks whose
noise rises towards the newest. In steady state chunk i (0 = oldest) sits at ``strength·(i + 1)/N``. One
step runs s Euler micro-steps of ``strength/(N·s)`` on every non-reference frame, which brings chunk 0 to
sigma 0; that chunk is emitted, the reference frames become the last K clean frames, the other chunks
move one place towards the front, and a fresh chunk at sigma ``strength`` is pushed at the back: pure
noise for text-to-video (strength 1), or the next input chunk noised to ``strength`` (video-to-video,
SDEdit). The per-frame sigmas are therefore the same before every step; they are set once at start-up.

The start-up may take ``startup_micro_steps`` (s') per chunk position instead of the scheme's s, and
its own conditioning (e.g. guided while the steps are not): it is paid once per stream.

Random numbers: ``start`` splits its key into (stream key, first-buffer noise key); every ``step``
splits the stream key into (next stream key, key of the pushed chunk's noise).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.flow import Scheme, add_noise, euler, guided, model_velocity
from streamdit_jax.sharding import DEFAULT_RULES, use_mesh


class Conditioning(NamedTuple):
    """The prompt's token states [B, L, Dt] and mask [B, L]; for classifier-free guidance also the empty
    prompt's and the scale (a traced scalar, so changing it does not recompile). Without guidance the
    last three are None."""

    text: jax.Array
    text_mask: jax.Array
    null_text: jax.Array | None = None
    null_mask: jax.Array | None = None
    scale: jax.Array | None = None


class StreamState(NamedTuple):
    """What one step carries to the next (donated to it)."""

    latents: jax.Array  # [B, F, h, w, C] the buffer, oldest frame first
    sigma: jax.Array  # [B, F] per-frame noise level at the start of a step (constant after start-up)
    strength: jax.Array  # [B] the level at which chunks enter: 1 = pure noise, < 1 = SDEdit of an input
    key: jax.Array  # the stream's PRNG key
    index: jax.Array  # int32 scalar: chunks emitted so far


class Rollout:
    """``start`` and ``step`` of one model (graphdef) under one scheme, jitted once each.

    ``step(params, state, cond, incoming=None) -> (state, chunk [B, c, h, w, C])`` donates ``state``;
    ``incoming`` is the next clean input chunk for video-to-video. ``startup_micro_steps`` (None: the
    scheme's s) are the start-up's Euler steps per chunk position. ``traces`` counts how often either
    function was traced (a stream that retraces shows up here).
    """

    def __init__(
        self,
        graphdef: nnx.GraphDef,
        scheme: Scheme,
        mesh: Mesh | None = None,
        rules: Sequence = DEFAULT_RULES,
        startup_micro_steps: int | None = None,
    ):
        self.graphdef, self.scheme, self.mesh, self.rules = graphdef, scheme, mesh, rules
        self.startup_micro_steps = startup_micro_steps or scheme.micro_steps
        self.traces = 0
        self._start = jax.jit(self._start_fn)
        self._step = jax.jit(self._step_fn, donate_argnums=1)

    def start(
        self,
        params: nnx.State,
        cond: Conditioning,
        key: jax.Array,
        latent_shape: tuple[int, int, int],
        initial: jax.Array | None = None,
        strength: float = 1.0,
    ) -> StreamState:
        """The first steady-state buffer. Text-to-video: ``initial`` None and strength 1. Video-to-video:
        ``initial`` [B, F, h, w, C] clean latents of the input's first B frames, noised to ``strength``.

        The whole buffer is denoised in uniform mode (every frame at one sigma, N·s' steps of
        strength/(N·s'), s' = ``startup_micro_steps``), keeping the latents after every s' steps; chunk i
        is taken from the snapshot at its steady-state level, the reference frames from the clean end of
        the run.
        """
        batch = cond.text.shape[0]
        strength = jnp.full((batch,), strength, jnp.float32)
        if initial is None:
            initial = jnp.zeros((batch, self.scheme.frames, *latent_shape), jnp.float32)
        with self._mesh():
            return self._start(params, cond, key, initial, strength)

    def step(
        self, params: nnx.State, state: StreamState, cond: Conditioning, incoming: jax.Array | None = None
    ) -> tuple[StreamState, jax.Array]:
        with self._mesh():
            return self._step(params, state, cond, incoming)

    def _mesh(self):
        return use_mesh(self.mesh, self.rules) if self.mesh is not None else contextlib.nullcontext()

    def velocity_fn(self, params: nnx.State, cond: Conditioning):
        """``(latents, sigma) -> velocity`` of the model under ``cond`` (guided when it has a scale)."""

        def model_fn(latents, sigma, text, mask):
            return model_velocity(nnx.merge(self.graphdef, params))(latents, sigma, text, mask)

        if cond.scale is None:
            return lambda latents, sigma: model_fn(latents, sigma, cond.text, cond.text_mask)
        return guided(model_fn, cond.text, cond.text_mask, cond.null_text, cond.null_mask, cond.scale)

    def _start_fn(self, params, cond, key, initial, strength) -> StreamState:
        self.traces += 1
        k, n, c, _ = dataclasses.astuple(self.scheme)
        s = self.startup_micro_steps
        key, noise_key = jax.random.split(key)
        level = strength[:, None]  # [B, 1]
        noise = jax.random.normal(noise_key, initial.shape, jnp.float32)
        x = add_noise(initial, level, noise)
        velocity = self.velocity_fn(params, cond)
        uniform_step = jnp.broadcast_to(level / (n * s), (x.shape[0], x.shape[1]))

        def uniform_round(x, r):
            sigma = jnp.broadcast_to(level * (1.0 - r / n), uniform_step.shape)
            return euler(velocity, x, sigma, uniform_step, s)[0], x

        # Chunk i needs the snapshot after N - 1 - i rounds; the reference frames need all N rounds.
        rounds = n if k else n - 1
        x, snapshots = jax.lax.scan(uniform_round, x, jnp.arange(rounds, dtype=jnp.float32))
        parts = [x[:, :k]]
        for i in range(n):
            source = snapshots[n - 1 - i] if n - 1 - i < rounds else x
            parts.append(source[:, k + i * c : k + (i + 1) * c])
        steady = jnp.asarray(self.scheme.steady_sigmas())[None]
        return StreamState(
            latents=jnp.concatenate(parts, axis=1),
            sigma=steady * level,
            strength=strength,
            key=key,
            index=jnp.zeros((), jnp.int32),
        )

    def _step_fn(self, params, state: StreamState, cond, incoming) -> tuple[StreamState, jax.Array]:
        self.traces += 1
        k, c, s = self.scheme.reference, self.scheme.chunk_frames, self.scheme.micro_steps
        # strength/(N·s) on chunk frames, 0 on reference frames
        step_size = jnp.asarray(self.scheme.step_sizes())[None] * state.strength[:, None]
        x, _ = euler(self.velocity_fn(params, cond), state.latents, state.sigma, step_size, s)
        chunk = x[:, k : k + c]
        key, noise_key = jax.random.split(state.key)
        noise = jax.random.normal(noise_key, chunk.shape, jnp.float32)
        pushed = noise if incoming is None else add_noise(incoming, state.strength[:, None], noise)
        references = jnp.concatenate([x[:, :k], chunk], axis=1)[:, -k:] if k else x[:, :0]
        latents = jnp.concatenate([references, x[:, k + c :], pushed], axis=1)
        return state._replace(latents=latents, key=key, index=state.index + 1), chunk
