"""Streamer: one stream of decoded video under StreamSettings, driven by live commands (stream/commands.py).

The DiT runs one jitted :class:`Rollout` step per emitted chunk and the VAE's streaming decoder turns the
chunk into frames. A stream has one owner thread (started by :meth:`Streamer.open`, the context manager
or the first :meth:`Streamer.next_chunk`): it applies the queued commands between steps, dispatches the
steps, decodes (on a second thread, ``lookahead`` chunks behind the DiT) and hands out :class:`Chunk`
records with their timestamps through a bounded queue. Any thread may send commands; nothing else
touches the stream's state. Nothing grows with the stream: the rollout's state is donated from step to
step, the decoder carries fixed-size caches and at most ``lookahead`` + 1 chunks wait.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from streamdit_jax.config import ConfigError
from streamdit_jax.flow import Scheme
from streamdit_jax.storage import workpath
from streamdit_jax.stream.commands import (
    Command,
    Pause,
    Restart,
    Resume,
    SetGuidance,
    SetInput,
    SetMicroSteps,
    SetPrompt,
    SetScheme,
    SetStrength,
)
from streamdit_jax.stream.model import StreamModel
from streamdit_jax.stream.rollout import Conditioning, StreamState
from streamdit_jax.stream.settings import StreamSettings
from streamdit_jax.stream.video import InputVideo, LiveInput

log = logging.getLogger(__name__)
_END = object()  # the owner thread's last item


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One emitted chunk of frames and when it was made (``time.perf_counter()`` seconds)."""

    frames: np.ndarray  # uint8 [n, H, W, 3]
    index: int  # chunks handed out by this Streamer before this one (across restarts)
    run: int  # restarts before this chunk's run
    step: int  # the run's stream step that emitted it (-1: the start-up's K reference frames)
    first_frame: int  # the run's frame index of frames[0]
    prompt_id: int  # the entry of ``Streamer.prompts`` that conditioned it
    dispatched: float  # its DiT step was dispatched
    ready: float  # its frames were on the host


@dataclasses.dataclass(frozen=True)
class PromptChange:
    """A prompt the stream took, from which step of which run, and when it was asked for."""

    id: int
    text: str
    run: int
    step: int
    received: float  # ``time.perf_counter()`` when the command arrived


class Streamer:
    """One stream of decoded frames (uint8 [H, W, 3]) of a :class:`StreamModel`, from ``prompt``, under
    ``settings`` (:class:`StreamSettings`: scheme, guidance, seed, start-up, schedule, input, pacing;
    their defaults are the model config's and they are checked before anything is compiled).

    Consumers: iterate frames (``for frame in streamer``), decoded chunks (:meth:`chunks`), chunk records
    (:meth:`next_chunk`), or drive :meth:`latent_chunks` on their own thread. Live commands
    (stream/commands.py) go in through :meth:`send` (or its shorthands :meth:`set_prompt`, :meth:`pause`,
    ...) from any thread. ``close()`` (or leaving the ``with`` block) stops the owner thread and frees
    the stream's device arrays.
    """

    def __init__(self, model: StreamModel, prompt: str = "", settings: StreamSettings | None = None):
        self.model, self.cfg, self.fps = model, model.cfg, model.cfg.data.fps
        self.settings = (settings or StreamSettings()).resolved(model.cfg)
        self.latent_shape = (*self.cfg.latent_grid[1:], self.cfg.model.latent_channels)  # (h, w, C)
        self._replicated = NamedSharding(model.mesh, PartitionSpec())  # the stream's device arrays
        self._null = None  # the empty prompt's encoding, once guidance needs it
        self._take_settings(self.settings)
        self._reset_counters()
        self._open_channels(self.settings.lookahead)
        self._take_prompt(prompt, time.perf_counter())

    def _take_settings(self, settings: StreamSettings) -> None:
        """What commands change, as the settings set it: scheme (and rollout), guidance, seed, strength,
        input, pause."""
        self.scheme, self.guidance, self.seed = settings.scheme, settings.guidance, settings.seed
        self.strength, self.input = settings.strength, settings.input_video
        if isinstance(self.input, str | Path):
            self.input = InputVideo(self.input, self.cfg)
        self.rollout = self.model.rollout(self.scheme, settings.startup_micro_steps)
        self.paused = False

    def _reset_counters(self) -> None:
        """The stream's and its first run's counters and logs."""
        self.steps = 0  # stream steps dispatched in this run (one per emitted chunk)
        self.runs = 0  # restarts so far
        self.prompts: list[PromptChange] = []  # every prompt taken, in order
        self.prompt_log: list[tuple[int, str]] = []  # (first step, prompt) of this run's prompts
        self._schedule_times = [at for at, _ in self.settings.schedule]
        self._schedule_taken = 0
        self._restart = self._started = False
        self._handed_out = 0

    def _open_channels(self, lookahead: int) -> None:
        """The owner thread's inputs (commands, demand, stop) and output (decoded chunks)."""
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._out: queue.Queue = queue.Queue(maxsize=max(1, lookahead))
        self._credits = threading.Semaphore(0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0

    @property
    def forward_passes_per_chunk(self) -> int:
        """Model evaluations per emitted chunk: s, twice that with classifier-free guidance."""
        return self.scheme.micro_steps * (2 if self.guided else 1)

    @property
    def startup_forward_passes(self) -> int:
        """Model evaluations of the first buffer: N·s' (twice with guidance), once per stream."""
        rounds = self.scheme.chunks if self.scheme.reference else self.scheme.chunks - 1
        guided = self.settings.startup_guidance != 1.0
        return rounds * self.settings.startup_micro_steps * (2 if guided else 1)

    @property
    def prompt(self) -> str:
        """The prompt of the step dispatched last (or next, before the stream starts)."""
        return self.prompts[-1].text

    # -- commands: sent from any thread, applied by the stream between steps ---------------------------

    def send(self, command: Command) -> None:
        """Queues a live command (stream/commands.py): checked here, on the caller's thread (a bad value
        raises here), applied by the owner thread before its next step."""
        if type(command) not in _APPLY:
            raise TypeError(f"{command!r} is not a live command of a stream (stream/commands.py)")
        if self._stop.is_set():
            raise RuntimeError("this Streamer is closed")
        command.check(self.cfg)
        self._commands.put((command, time.perf_counter()))

    # Shorthands, one command each (stream/commands.py says what each does).

    def set_prompt(self, prompt: str) -> None:
        self.send(SetPrompt(str(prompt)))

    def pause(self) -> None:
        self.send(Pause())

    def resume(self) -> None:
        self.send(Resume())

    def restart(self, seed: int | None = None) -> None:
        self.send(Restart(seed))

    def set_guidance(self, scale: float) -> None:
        self.send(SetGuidance(scale))

    def set_scheme(self, scheme: Scheme) -> None:
        self.send(SetScheme(scheme))

    def set_strength(self, strength: float) -> None:
        self.send(SetStrength(strength))

    def set_input(self, video: InputVideo | LiveInput | None, strength: float | None = None) -> None:
        self.send(SetInput(video, strength))

    def request(self, chunks: int = 1) -> None:
        """With ``paced``: allows the owner to dispatch ``chunks`` more steps."""
        for _ in range(chunks):
            self._credits.release()

    def _apply_commands(self) -> None:
        while True:
            try:
                command, received = self._commands.get_nowait()
            except queue.Empty:
                return
            _APPLY[type(command)](self, command, received)

    # How each command changes the stream (_APPLY, after the class), on the owner thread.

    def _on_prompt(self, command: SetPrompt, received: float) -> None:
        self._take_prompt(command.text, received)

    def _on_pause(self, command: Pause, received: float) -> None:
        self.paused = True

    def _on_resume(self, command: Resume, received: float) -> None:
        self.paused = False

    def _on_restart(self, command: Restart, received: float) -> None:
        self.seed = self.seed if command.seed is None else int(command.seed)
        self._restart = True

    def _on_guidance(self, command: SetGuidance, received: float) -> None:
        self.guidance = float(command.scale)
        self._cond = self._conditioning(*self._text, self.guidance)

    def _on_scheme(self, command: SetScheme, received: float) -> None:
        self.scheme, self._restart = command.scheme, True
        self.rollout = self.model.rollout(command.scheme, self.settings.startup_micro_steps)

    def _on_micro_steps(self, command: SetMicroSteps, received: float) -> None:
        self._on_scheme(SetScheme(dataclasses.replace(self.scheme, micro_steps=command.value)), received)

    def _on_strength(self, command: SetStrength, received: float) -> None:
        """A restart only when there is an input to restyle."""
        self.strength, self._restart = float(command.value), self._restart or self.input is not None

    def _on_input(self, command: SetInput, received: float) -> None:
        self.input, self._restart = command.video, True
        self.strength = self.strength if command.strength is None else float(command.strength)

    def _take_prompt(self, prompt: str, received: float) -> None:
        if self.prompts and prompt == self.prompt:
            return
        self._text = self._encode(prompt)
        self._cond = self._conditioning(*self._text, self.guidance)
        self.prompts.append(PromptChange(len(self.prompts), prompt, self.runs, self.steps, received))
        self.prompt_log.append((self.steps, prompt))

    def _encode(self, prompt: str) -> tuple[jax.Array, jax.Array]:
        tokens, mask = self.model.text_encoder([prompt])
        return self._put(jnp.asarray(tokens, jnp.float32)), self._put(jnp.asarray(mask, bool))

    def _put(self, x) -> jax.Array:
        return jax.device_put(x, self._replicated)

    def _conditioning(self, text: jax.Array, mask: jax.Array, scale: float) -> Conditioning:
        if scale == 1.0:
            return Conditioning(text, mask)
        if self._null is None:
            self._null = self._encode("")
        return Conditioning(text, mask, *self._null, self._put(jnp.asarray(scale, jnp.float32)))

    # -- the stream ---------------------------------------------------------------------------------

    def frames_before(self, step: int) -> int:
        """Video frames emitted before the chunk of stream step ``step`` (the causal VAE makes the very
        first latent frame one video frame, every later one 4)."""
        latents = self.scheme.reference + step * self.scheme.chunk_frames
        return 0 if latents == 0 else 1 + self.model.autoencoder.cfg.temporal_compression * (latents - 1)

    def latent_chunks(self) -> Iterator[jax.Array]:
        """The run's clean latent chunks [1, n, h, w, C]: with K > 0 first the K reference frames of the
        start-up, then one chunk of c frames per step. Lazily dispatched, never fetched; commands are
        applied between steps on the thread that iterates. Ends when the input ends, at a restart or
        when the Streamer closes."""
        if self._thread is not None and self._thread is not threading.current_thread():
            raise RuntimeError(
                "this Streamer's owner thread runs its stream: take chunks with next_chunk() or chunks(), "
                "or drive latent_chunks() on a Streamer that was never opened"
            )
        state = self.start()
        k = self.scheme.reference
        if k:
            self._chunk_step = -1
            yield state.latents[:, :k]
        incoming: jax.Array | None = None
        while True:
            if not self._next_step_allowed():
                return
            if self.input is not None:
                incoming = self._next_input(incoming)
                if incoming is None:
                    return
            self._dispatched, self._chunk_step = time.perf_counter(), self.steps
            state, chunk = self.rollout.step(self.model.params, state, self._cond, incoming)
            self.steps += 1
            yield chunk

    def _next_step_allowed(self) -> bool:
        """Waits for demand (``paced``) and for resume, applying commands; False to end the run."""
        while True:
            if self.settings.paced and not self._stop.is_set():
                while not self._credits.acquire(timeout=0.05) and not self._stop.is_set():
                    pass
            self._apply_commands()
            self._follow_schedule()
            if self._stop.is_set() or self._restart:
                if self.settings.paced:
                    self._credits.release()  # the demand carries over to the next run
                return False
            if not self.paused:
                return True
            if self.settings.paced:
                self._credits.release()  # the demand stays for after the pause
            time.sleep(0.02)

    def start(self) -> StreamState:
        """The first steady-state buffer of a run (``latent_chunks`` begins with this)."""
        if self._started:
            raise RuntimeError("this run has started already; call restart() (or make a new Streamer)")
        self._started = True
        self._apply_commands()
        self._follow_schedule()
        initial = None
        if self.input is not None:
            needed = 1 + self.model.autoencoder.cfg.temporal_compression * (self.scheme.frames - 1)
            first = self.input.take(needed)
            if len(first) < needed:
                raise ConfigError(
                    f"input video {self.input.path} has {len(first)} frames at {self.fps} fps; the first "
                    f"buffer needs {needed}. Fix: give a longer video"
                )
            self._encoder = self.model.autoencoder.streaming_encoder()
            initial = self._put(self._encoder.step(jnp.asarray(first[None])))
            self._input_latents = self.scheme.frames  # latent frames of the input read so far
        strength = 1.0 if self.input is None else self.strength
        key = self._put(jax.random.key(self.seed))
        cond = self._conditioning(*self._text, self.settings.startup_guidance)
        self._dispatched = time.perf_counter()
        return self.rollout.start(self.model.params, cond, key, self.latent_shape, initial, strength)

    def _next_input(self, previous: jax.Array | None) -> jax.Array | None:
        """The input's next clean latent chunk; after the input ends, its last chunk again until every
        input frame has left the buffer, then None (the stream ends)."""
        frames = self.input.take(self.model.autoencoder.cfg.temporal_compression * self.scheme.chunk_frames)
        if len(frames) == self.model.autoencoder.cfg.temporal_compression * self.scheme.chunk_frames:
            self._input_latents += self.scheme.chunk_frames
            return self._put(self._encoder.step(jnp.asarray(frames[None])))
        emitted = self.scheme.reference + self.steps * self.scheme.chunk_frames
        if emitted >= self._input_latents:
            return None
        if previous is None:  # the input held just the first buffer
            previous = self._put(jnp.zeros((1, self.scheme.chunk_frames, *self.latent_shape)))
        return previous

    def _follow_schedule(self) -> None:
        """Takes the schedule's entries as they fall due; each one once, so a live prompt holds until
        the next."""
        time_s = self.frames_before(self.steps) / self.fps
        due = bisect.bisect_right(self._schedule_times, time_s)
        if due > self._schedule_taken:
            self._schedule_taken = due
            self._take_prompt(self.settings.schedule[due - 1][1], time.perf_counter())

    def _new_run(self) -> None:
        self.runs += 1
        self.steps, self._started, self._restart, self._schedule_taken = 0, False, False, 0
        self.prompt_log = [(0, self.prompt)]
        if self.input is not None and self.input.frames_read:
            self.input = self.input.reopen()  # a file from its beginning; a live input goes on

    # -- the owner thread -------------------------------------------------------------------------------

    def open(self) -> Streamer:
        """Starts the owner thread (once)."""
        if self._thread is None:
            if self._stop.is_set():
                raise RuntimeError("this Streamer is closed")
            self._thread = threading.Thread(target=self._own, name="streamdit-stream", daemon=True)
            self._thread.start()
        return self

    def _own(self) -> None:
        try:
            while not self._stop.is_set():
                self._run_once()
                if self._stop.is_set():
                    break
                if not self._restart:  # the input ended
                    if not (self.settings.keep_alive and self.input is not None):
                        break
                    self.input = None
                self._new_run()
        except BaseException as e:  # handed to the consumer, raised there
            self._emit(e)
        finally:
            self._emit(_END)

    def _run_once(self) -> None:
        decoder = self.model.streaming_decoder()
        first_frame = 0

        def decode(latents: jax.Array) -> np.ndarray:
            return np.asarray(_to_uint8(decoder.step(latents)))

        def hand_out(meta: dict, frames: np.ndarray) -> None:
            nonlocal first_frame
            ready = time.perf_counter()
            chunk = Chunk(frames, self._handed_out, first_frame=first_frame, ready=ready, **meta)
            first_frame += len(frames)
            self._handed_out += 1
            self._emit(chunk)

        lookahead = self.settings.lookahead
        pool = ThreadPoolExecutor(1, thread_name_prefix="streamdit-decode") if lookahead else None
        pending: collections.deque = collections.deque()
        try:
            for latents in self.latent_chunks():
                meta = dict(run=self.runs, step=self._chunk_step, prompt_id=self.prompts[-1].id,
                            dispatched=self._dispatched)  # fmt: skip
                if pool is None:
                    hand_out(meta, decode(latents))
                    continue
                pending.append((meta, pool.submit(decode, latents)))
                while len(pending) > lookahead:
                    hand_out(*_result(pending.popleft()))
            while pending and not self._stop.is_set():
                hand_out(*_result(pending.popleft()))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _emit(self, item: Any) -> None:
        while True:
            try:
                self._out.put(item, timeout=0.05)
                return
            except queue.Full:
                if self._stop.is_set() and item is not _END:
                    return
                if self._stop.is_set():  # make room for the end marker
                    self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._out.get_nowait()
            except queue.Empty:
                return

    def next_chunk(self, timeout: float | None = None) -> Chunk | None:
        """The next chunk (starting the owner thread if needed); None when the stream has ended, or when
        ``timeout`` seconds passed without one. A ``paced`` stream makes only the chunks asked for with
        :meth:`request`."""
        self.open()
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._out.put(_END)  # later calls see the end too
            return None
        if isinstance(item, BaseException):
            self._out.put(_END)
            raise item
        return item

    @property
    def waiting(self) -> int:
        """Decoded chunks waiting to be handed out."""
        return self._out.qsize()

    def chunks(self) -> Iterator[np.ndarray]:
        """Decoded chunks, uint8 [n, H, W, 3], until the stream ends; closing the iterator closes the
        stream."""
        try:
            while (chunk := self.next_chunk()) is not None:
                yield chunk.frames
        finally:
            self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks():
            yield from chunk

    def close(self) -> None:
        """Stops the owner thread after its current step and releases the stream's device arrays."""
        self._stop.set()
        self._credits.release()
        if isinstance(self.input, LiveInput):
            self.input.close()  # wakes a step waiting for live frames
        if self._thread is not None and self._thread is not threading.current_thread():
            while self._thread.is_alive():
                self._drain()
                self._thread.join(timeout=0.05)
        self._drain()
        self._out.put(_END)
        self._text = self._cond = self._null = self._encoder = None
        if self.input is not None:
            self.input.close()

    def __enter__(self) -> Streamer:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def warm_up(
    model: StreamModel, scheme: Scheme | None = None, guidances: Sequence[float] = (1.0,), chunks: int = 3
) -> float:
    """Compiles everything a stream of ``model`` under ``scheme`` runs (start-up, the step with each
    guidance in ``guidances``, the decoder's first and later chunks) by streaming ``chunks`` chunks of
    each; the seconds it took. Afterwards a new stream compiles nothing (a server warms up before its
    first viewer)."""
    began = time.perf_counter()
    for scale in dict.fromkeys(float(s) for s in guidances):
        with Streamer(model, "", StreamSettings(scheme=scheme, guidance=scale)) as streamer:
            for _ in range(chunks):
                streamer.next_chunk()
    return time.perf_counter() - began


_APPLY = {
    SetPrompt: Streamer._on_prompt,
    Pause: Streamer._on_pause,
    Resume: Streamer._on_resume,
    Restart: Streamer._on_restart,
    SetGuidance: Streamer._on_guidance,
    SetScheme: Streamer._on_scheme,
    SetMicroSteps: Streamer._on_micro_steps,
    SetStrength: Streamer._on_strength,
    SetInput: Streamer._on_input,
}


def _result(item: tuple[dict, Any]) -> tuple[dict, np.ndarray]:
    meta, future = item
    return meta, future.result()


@jax.jit
def _to_uint8(video: jax.Array) -> jax.Array:
    """The first video of a batch [B, T, H, W, 3] in [-1, 1] as uint8 [T, H, W, 3]."""
    return jnp.round((video[0] + 1.0) * 127.5).clip(0, 255).astype(jnp.uint8)


def read_schedule(path: str | Path) -> list[tuple[float, str]]:
    """A prompt schedule from a jsonl file of ``{"at": seconds, "prompt": text}`` lines."""
    schedule = []
    for number, line in enumerate(workpath(path).read_text().splitlines(), start=1):
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
