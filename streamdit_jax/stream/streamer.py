"""Streamer: an endless iterator over decoded video frames, with live prompt changes and video-to-video.

The DiT runs one jitted :class:`Rollout` step per emitted chunk; a second thread runs the VAE's streaming
decoder on the emitted chunks, so the DiT step for chunk k + 1 is dispatched before chunk k's frames are
fetched. Nothing grows with the stream: the rollout's state is donated from step to step, the decoder
carries fixed-size caches, and at most ``LOOKAHEAD`` chunks are in flight.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.autoencoder import VideoVAE
from streamdit_jax.config import Config, ConfigError, MeshConfig
from streamdit_jax.flow import Scheme
from streamdit_jax.model import restore_params
from streamdit_jax.sharding import make_mesh
from streamdit_jax.stream.rollout import Conditioning, Rollout, StreamState
from streamdit_jax.stream.video import InputVideo
from streamdit_jax.text import TextEncoder

log = logging.getLogger(__name__)
LOOKAHEAD = 2  # chunks dispatched ahead of the one being handed out


@dataclasses.dataclass
class StreamModel:
    """Everything a stream needs: the run's config, the transformer on its mesh, the VAE, the text encoder."""

    cfg: Config
    graphdef: nnx.GraphDef
    params: nnx.State
    vae: VideoVAE
    text_encoder: TextEncoder
    mesh: Mesh
    _rollouts: dict = dataclasses.field(default_factory=dict, repr=False)

    def rollout(self, scheme: Scheme, startup_micro_steps: int | None = None) -> Rollout:
        """The jitted rollout of ``scheme`` (with that start-up), shared by every Streamer of this model
        (compiled once)."""
        key = (scheme, startup_micro_steps or scheme.micro_steps)
        if key not in self._rollouts:
            self._rollouts[key] = Rollout(self.graphdef, scheme, self.mesh, self.cfg.mesh.rules, key[1])
        return self._rollouts[key]

    @staticmethod
    def load_config(checkpoint: str | Path, config: Config | None = None, step: int | None = None) -> Config:
        """The config to stream a checkpoint with: ``config``, else the run config saved with it; checked
        against the checkpoint's transformer. Reads only JSON: cheap, and nothing is compiled."""
        step = ckpt.latest_step(checkpoint) if step is None else step
        config = config or ckpt.restore_run_config(checkpoint, step)
        if config is None:
            raise ConfigError(
                f"{checkpoint} holds no run config (it was not written by `streamdit train`). Fix: pass "
                "the preset it belongs to, e.g. --config small"
            )
        saved = ckpt.restore_config(checkpoint, step)
        if not isinstance(saved, type(config.model)):
            raise ConfigError(f"{checkpoint} holds a {type(saved).__name__} checkpoint, not a transformer's")
        shape_free = {f: getattr(config.model, f) for f in ckpt.SHAPE_FREE_FIELDS}
        if dataclasses.replace(saved, **shape_free) != config.model:
            raise ConfigError(
                f"config field 'model': the transformer in {checkpoint} is {saved}, the config asks for "
                f"{config.model}. Fix: use the preset the checkpoint was trained with"
            )
        return config

    @classmethod
    def restore(
        cls,
        checkpoint: str | Path,
        config: Config | None = None,
        vae: str | Path | None = None,
        mesh_shape: Sequence[int] = (1, 1, 1, 1),
        ema: bool = True,
        step: int | None = None,
    ) -> StreamModel:
        """A training or distillation checkpoint's weights (EMA by default) on a mesh of the first
        ``prod(mesh_shape)`` devices, whatever mesh trained it. ``config`` defaults to the run config
        saved with the checkpoint (needed for checkpoints without one, e.g. ``convert``'s); ``vae``
        defaults to that config's ``data.vae``."""
        from streamdit_jax.data.training import preset_vae
        from streamdit_jax.text import build_encoder

        step = ckpt.latest_step(checkpoint) if step is None else step
        config = cls.load_config(checkpoint, config, step)
        if vae is not None:
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, vae=str(vae)))
        size = math.prod(mesh_shape)
        if len(mesh_shape) != 4 or mesh_shape[0] * mesh_shape[1] != 1:
            raise ConfigError(
                f"mesh {tuple(mesh_shape)}: a stream is one video (batch 1), so the data and fsdp axes must "
                "be 1. Fix: put devices on the context and model axes, e.g. --mesh 1,1,2,4"
            )
        if size > jax.device_count():
            raise ConfigError(
                f"mesh {tuple(mesh_shape)} needs {size} devices, {jax.device_count()} are present. Fix: "
                "choose a smaller --mesh"
            )
        mesh = make_mesh(MeshConfig(shape=tuple(mesh_shape), rules=config.mesh.rules), jax.devices()[:size])
        shape_free = {f: getattr(config.model, f) for f in ckpt.SHAPE_FREE_FIELDS}
        _, graphdef, params = restore_params(
            checkpoint, mesh, config.mesh.rules, step, model_overrides=shape_free, ema=ema
        )
        return cls(config, graphdef, params, preset_vae(config), build_encoder(config.text), mesh)


class Streamer:
    """An endless iterator over decoded frames (uint8 [H, W, 3]) of one stream.

    ``model`` is a :class:`StreamModel` or a checkpoint directory. ``scheme`` defaults to the config's
    rollout (K, N, c, s); ``cfg_scale`` to ``rollout.cfg_scale`` (1 = no guidance, one forward pass per
    micro-step; otherwise two, as one doubled batch). ``startup_micro_steps`` and ``startup_cfg_scale``
    (default: ``rollout``'s, else s and ``cfg_scale``) set the first buffer's denoise. ``schedule`` is a
    list of (seconds, prompt): a prompt takes over at the step that emits the frame at that time.
    ``set_prompt`` changes the prompt live, from the next step dispatched. With ``input_video`` the
    stream is video-to-video (SDEdit): the input is encoded as it is read, and every chunk enters the
    buffer noised to ``strength``; the stream ends with the input. ``config``, ``vae``, ``mesh_shape``
    and ``ema`` go to :meth:`StreamModel.restore` when ``model`` is a checkpoint directory; every argument
    is checked before the model is restored or anything is compiled. A Streamer streams once.
    """

    def __init__(
        self,
        model: StreamModel | str | Path,
        prompt: str = "",
        *,
        scheme: Scheme | None = None,
        cfg_scale: float | None = None,
        startup_micro_steps: int | None = None,
        startup_cfg_scale: float | None = None,
        seed: int = 0,
        schedule: Sequence[tuple[float, str]] = (),
        input_video: str | Path | InputVideo | None = None,
        strength: float = 0.7,
        config: Config | None = None,
        vae: str | Path | None = None,
        mesh_shape: Sequence[int] = (1, 1, 1, 1),
        ema: bool = True,
    ):
        cfg = model.cfg if isinstance(model, StreamModel) else StreamModel.load_config(model, config)
        self.scheme = scheme or Scheme(*cfg.scheme)
        self.scheme.check_buffer(cfg.buffer.frames)
        trained = (*cfg.buffer.chunk_sizes, cfg.buffer.denoised_frames)
        if self.scheme.chunk_frames not in trained:
            log.warning("chunk size c=%d is not among the trained ones %s", self.scheme.chunk_frames, trained)
        self.cfg_scale = cfg.rollout.cfg_scale if cfg_scale is None else float(cfg_scale)
        startup_cfg_scale = (
            startup_cfg_scale if startup_cfg_scale is not None else cfg.rollout.startup_cfg_scale
        )
        self.startup_cfg_scale = self.cfg_scale if startup_cfg_scale is None else float(startup_cfg_scale)
        for name, scale in (("cfg scale", self.cfg_scale), ("start-up cfg scale", self.startup_cfg_scale)):
            if scale < 0:
                raise ConfigError(f"{name} {scale} is negative. Fix: use 1 (off) or a value > 1")
        startup = startup_micro_steps
        if startup is None:
            startup = cfg.rollout.startup_micro_steps or self.scheme.micro_steps
        if startup < 1:
            raise ConfigError(f"start-up micro-steps {startup} < 1. Fix: use a whole number >= 1, e.g. 16")
        self.startup_micro_steps = int(startup)
        if not 0.0 < strength <= 1.0:
            raise ConfigError(f"strength {strength} is not in (0, 1]. Fix: e.g. 0.7 (1 ignores the input)")
        if isinstance(input_video, str | Path):
            input_video = InputVideo(input_video, cfg)
        self.input = input_video
        if not isinstance(model, StreamModel):
            model = StreamModel.restore(model, cfg, vae, mesh_shape, ema)
        self.model = model
        self.strength, self.seed, self.fps = strength, seed, cfg.data.fps
        self.schedule = sorted((float(at), str(text)) for at, text in schedule)
        self.latent_shape = (*cfg.latent_grid[1:], cfg.model.latent_channels)  # (h, w, C)
        self.rollout = self.model.rollout(self.scheme, self.startup_micro_steps)
        self._replicated = NamedSharding(self.model.mesh, PartitionSpec())
        self._null = self._encode("") if self.guided or self.startup_cfg_scale != 1.0 else None
        self.steps = 0  # stream steps dispatched (one per emitted chunk)
        self._started = False
        self.prompt_log: list[tuple[int, str]] = []  # (first step, prompt) of every prompt used
        self.set_prompt(prompt)

    @property
    def guided(self) -> bool:
        return self.cfg_scale != 1.0

    @property
    def forward_passes_per_chunk(self) -> int:
        """Model evaluations per emitted chunk: s, twice that with classifier-free guidance."""
        return self.scheme.micro_steps * (2 if self.guided else 1)

    @property
    def startup_forward_passes(self) -> int:
        """Model evaluations of the first buffer: N·s' (twice with guidance), once per stream."""
        rounds = self.scheme.chunks if self.scheme.reference else self.scheme.chunks - 1
        return rounds * self.startup_micro_steps * (2 if self.startup_cfg_scale != 1.0 else 1)

    def _encode(self, prompt: str) -> tuple[jax.Array, jax.Array]:
        tokens, mask = self.model.text_encoder([prompt])
        return self._put(jnp.asarray(tokens, jnp.float32)), self._put(jnp.asarray(mask, bool))

    def _put(self, x) -> jax.Array:
        return jax.device_put(x, self._replicated)

    def _conditioning(self, text: jax.Array, mask: jax.Array, scale: float) -> Conditioning:
        if scale == 1.0:
            return Conditioning(text, mask)
        return Conditioning(text, mask, *self._null, self._put(jnp.asarray(scale, jnp.float32)))

    def set_prompt(self, prompt: str) -> None:
        """Conditions every step dispatched from now on on ``prompt`` (no recompilation)."""
        self._text = self._encode(prompt)
        self._cond = self._conditioning(*self._text, self.cfg_scale)
        if not self.prompt_log or prompt != self.prompt:
            self.prompt_log.append((self.steps, prompt))
        self.prompt = prompt

    # -- the stream ---------------------------------------------------------------------------------

    def frames_before(self, step: int) -> int:
        """Video frames emitted before the chunk of stream step ``step`` (the causal VAE makes the very
        first latent frame one video frame, every later one 4)."""
        latents = self.scheme.reference + step * self.scheme.chunk_frames
        return 0 if latents == 0 else 1 + self.model.vae.cfg.temporal_compression * (latents - 1)

    def latent_chunks(self) -> Iterator[jax.Array]:
        """The stream's clean latent chunks [1, n, h, w, C]: with K > 0 first the K reference frames of
        the start-up, then one chunk of c frames per step. Lazily dispatched, never fetched."""
        state = self.start()
        k = self.scheme.reference
        if k:
            yield state.latents[:, :k]
        incoming: jax.Array | None = None
        while True:
            self._follow_schedule()
            if self.input is not None:
                incoming = self._next_input(incoming)
                if incoming is None:
                    return
            state, chunk = self.rollout.step(self.model.params, state, self._cond, incoming)
            self.steps += 1
            yield chunk

    def start(self) -> StreamState:
        """The first steady-state buffer (``latent_chunks`` begins with this)."""
        if self._started:
            raise RuntimeError("this Streamer has streamed already; make a new one for another stream")
        self._started = True
        self._follow_schedule()
        initial = None
        if self.input is not None:
            needed = 1 + self.model.vae.cfg.temporal_compression * (self.scheme.frames - 1)
            first = self.input.take(needed)
            if len(first) < needed:
                raise ConfigError(
                    f"input video {self.input.path} has {len(first)} frames at {self.fps} fps; the first "
                    f"buffer needs {needed}. Fix: give a longer video"
                )
            self._encoder = self.model.vae.streaming_encoder()
            initial = self._put(self._encoder.step(jnp.asarray(first[None])))
            self._input_latents = self.scheme.frames  # latent frames of the input read so far
        strength = 1.0 if self.input is None else self.strength
        key = self._put(jax.random.key(self.seed))
        cond = self._conditioning(*self._text, self.startup_cfg_scale)
        return self.rollout.start(self.model.params, cond, key, self.latent_shape, initial, strength)

    def _next_input(self, previous: jax.Array | None) -> jax.Array | None:
        """The input's next clean latent chunk; after the input ends, its last chunk again until every
        input frame has left the buffer, then None (the stream ends)."""
        frames = self.input.take(self.model.vae.cfg.temporal_compression * self.scheme.chunk_frames)
        if len(frames) == self.model.vae.cfg.temporal_compression * self.scheme.chunk_frames:
            self._input_latents += self.scheme.chunk_frames
            return self._put(self._encoder.step(jnp.asarray(frames[None])))
        emitted = self.scheme.reference + self.steps * self.scheme.chunk_frames
        if emitted >= self._input_latents:
            return None
        if previous is None:  # the input held just the first buffer
            previous = self._put(jnp.zeros((1, self.scheme.chunk_frames, *self.latent_shape)))
        return previous

    def _follow_schedule(self) -> None:
        time = self.frames_before(self.steps) / self.fps
        due = [text for at, text in self.schedule if at <= time]
        if due and due[-1] != self.prompt:
            self.set_prompt(due[-1])

    def chunks(self) -> Iterator[np.ndarray]:
        """Decoded chunks, uint8 [n, H, W, 3]. The VAE decodes on its own thread; the DiT is kept
        ``LOOKAHEAD`` chunks ahead of the chunk handed out."""
        decoder = self.model.vae.streaming_decoder()

        def decode(chunk):
            return np.asarray(_to_uint8(decoder.step(chunk)))

        with ThreadPoolExecutor(1, thread_name_prefix="streamdit-decode") as pool:
            pending: collections.deque = collections.deque()
            for chunk in self.latent_chunks():
                pending.append(pool.submit(decode, chunk))
                if len(pending) > LOOKAHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks():
            yield from chunk


@jax.jit
def _to_uint8(video: jax.Array) -> jax.Array:
    """The first video of a batch [B, T, H, W, 3] in [-1, 1] as uint8 [T, H, W, 3]."""
    return jnp.round((video[0] + 1.0) * 127.5).clip(0, 255).astype(jnp.uint8)


def read_schedule(path: str | Path) -> list[tuple[float, str]]:
    """A prompt schedule from a jsonl file of ``{"at": seconds, "prompt": text}`` lines."""
    schedule = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            schedule.append((float(item["at"]), str(item["prompt"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(
                f'{path}:{number}: expected {{"at": seconds, "prompt": text}}, got {line[:80]!r} ({e}). '
                'Fix: one JSON object per line, e.g. {"at": 0, "prompt": "a red circle"}'
            ) from e
    if not schedule:
        raise ConfigError(f'{path} holds no prompts. Fix: add lines like {{"at": 0, "prompt": "..."}}')
    return sorted(schedule)
