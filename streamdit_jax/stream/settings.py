"""StreamSettings: how a Streamer rolls out (scheme, guidance, seed, start-up, prompt schedule, input,
pacing), its defaults taken from the model's config and every value checked in one place.

The checks run on the caller's thread, from the config alone: :meth:`StreamSettings.resolved` before a
model is restored (the CLI) or when a Streamer is made, the live commands' (stream/commands.py) when one
is sent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamdit_jax.config import Config, ConfigError
from streamdit_jax.flow import Scheme
from streamdit_jax.stream.video import InputVideo, LiveInput

log = logging.getLogger(__name__)
LOOKAHEAD = 2  # chunks dispatched ahead of the one being handed out (throughput); 0 for live latency


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """A stream's settings; None takes the model config's value (:meth:`resolved`).

    ``scheme`` defaults to the config's rollout (K, N, c, s); ``guidance`` to ``rollout.guidance`` (1 =
    no guidance, one forward pass per micro-step; otherwise two, as one doubled batch).
    ``startup_micro_steps`` and ``startup_guidance`` (default: ``rollout``'s, else s and ``guidance``)
    set the first buffer's denoise. ``schedule`` is a list of (seconds, prompt): an entry takes over at
    the step that emits the frame at its time, and a live prompt holds until the next entry. With
    ``input_video`` (a file or :class:`InputVideo`, or a :class:`LiveInput`) the stream is video-to-video
    (SDEdit): the input is encoded as it is read and every chunk enters the buffer noised to
    ``strength``; the stream ends with the input (with ``keep_alive``, it goes on as text-to-video).
    ``lookahead`` sets how many chunks the DiT runs ahead of the decoder; with ``paced`` the stream
    dispatches a step only when a consumer asked for it (``Streamer.request``), so that live commands
    reach the earliest chunk.
    """

    scheme: Scheme | None = None
    guidance: float | None = None
    startup_micro_steps: int | None = None
    startup_guidance: float | None = None
    seed: int = 0
    schedule: Sequence[tuple[float, str]] = ()
    input_video: str | Path | InputVideo | LiveInput | None = None
    strength: float = 0.7
    lookahead: int = LOOKAHEAD
    paced: bool = False
    keep_alive: bool = False

    def resolved(self, cfg: Config) -> StreamSettings:
        """These settings with every default taken from ``cfg``, checked: a ConfigError (or SchemeError)
        that names the fix, before anything is restored or compiled."""
        rollout = cfg.rollout
        scheme = check_scheme(self.scheme or Scheme(*cfg.scheme), cfg)
        guidance = check_scale(rollout.guidance if self.guidance is None else self.guidance)
        startup_guidance = _first(self.startup_guidance, rollout.startup_guidance, guidance)
        startup_guidance = check_scale(startup_guidance, "start-up guidance scale")
        startup = _first(self.startup_micro_steps, rollout.startup_micro_steps or None, scheme.micro_steps)
        if startup < 1:
            raise ConfigError(f"start-up micro-steps {startup} < 1. Fix: use a whole number >= 1, e.g. 16")
        strength = check_strength(self.strength)
        if self.lookahead < 0 or (self.paced and self.lookahead):
            raise ConfigError(
                f"lookahead {self.lookahead} (paced={self.paced}): need >= 0, and 0 when paced. Fix: "
                "lookahead=0 for a paced (live) stream, e.g. 2 otherwise"
            )
        schedule = tuple(sorted((float(at), str(text)) for at, text in self.schedule))
        return dataclasses.replace(
            self, scheme=scheme, guidance=guidance, startup_micro_steps=int(startup),
            startup_guidance=startup_guidance, seed=int(self.seed), schedule=schedule, strength=strength,
        )  # fmt: skip


def _first(*values):
    """The first value that is not None."""
    return next(v for v in values if v is not None)


def check_scheme(scheme: Scheme, cfg: Config) -> Scheme:
    """``scheme`` if it fills ``cfg``'s buffer (a SchemeError otherwise); a warning when its chunk size is
    not among the trained ones."""
    scheme.check_buffer(cfg.buffer.frames)
    trained = (*cfg.buffer.chunk_sizes, cfg.buffer.denoised_frames)
    if scheme.chunk_frames not in trained:
        log.warning("chunk size c=%d is not among the trained ones %s", scheme.chunk_frames, trained)
    return scheme


def check_scale(scale: float, name: str = "guidance scale") -> float:
    """A guidance scale as a float: finite and >= 0 (1 = off)."""
    scale = float(scale)
    if not np.isfinite(scale) or scale < 0:
        raise ConfigError(f"{name} {scale} is negative or not a number. Fix: 1 (off) or more, e.g. 3")
    return scale


def check_strength(strength: float) -> float:
    """A video-to-video strength as a float in (0, 1]."""
    strength = float(strength)
    if not 0.0 < strength <= 1.0:
        raise ConfigError(f"strength {strength} is not in (0, 1]. Fix: e.g. 0.7 (1 ignores the input)")
    return strength
