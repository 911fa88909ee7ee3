"""The live commands of a stream: frozen records that any thread hands a Streamer (``Streamer.send``).

A command is checked on the sender's thread against the stream's config (``check``: a bad value raises
there) and applied by the stream's owner thread between two steps (``Streamer`` holds how each one
changes the stream). The studio parses its page's messages into these (studio/protocol.py).
"""

from __future__ import annotations

import dataclasses

from streamdit_jax.config import Config, ConfigError
from streamdit_jax.flow import Scheme
from streamdit_jax.stream.settings import check_scale, check_scheme, check_strength
from streamdit_jax.stream.video import InputVideo, LiveInput


class Command:
    """A live command. ``check`` raises a ConfigError (or SchemeError) for a value that a stream of
    ``cfg`` cannot take; most commands take any."""

    def check(self, cfg: Config) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class SetPrompt(Command):
    """Conditions every step dispatched after it on ``text`` (no recompilation), until the schedule's
    next entry."""

    text: str


@dataclasses.dataclass(frozen=True)
class Pause(Command):
    """Stops dispatching steps (after the chunks in flight) until :class:`Resume`."""


@dataclasses.dataclass(frozen=True)
class Resume(Command):
    """Dispatches steps again after a :class:`Pause`."""


@dataclasses.dataclass(frozen=True)
class Restart(Command):
    """A new run from a new first buffer of ``seed`` (None: the stream's seed); the prompt stays."""

    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class SetGuidance(Command):
    """The guidance scale of the following steps (1 = off; the first switch between off and on compiles a
    program)."""

    scale: float

    def check(self, cfg: Config) -> None:
        check_scale(self.scale)


@dataclasses.dataclass(frozen=True)
class SetScheme(Command):
    """Restarts with ``scheme``; its rollout compiles once per model."""

    scheme: Scheme

    def check(self, cfg: Config) -> None:
        check_scheme(self.scheme, cfg)


@dataclasses.dataclass(frozen=True)
class SetMicroSteps(Command):
    """Restarts with ``value`` micro-steps per chunk (the scheme's s; the rest of the scheme stays)."""

    value: int

    def check(self, cfg: Config) -> None:
        if self.value < 1:
            raise ConfigError(f"micro-steps {self.value} < 1. Fix: a whole number >= 1, e.g. 1")


@dataclasses.dataclass(frozen=True)
class SetStrength(Command):
    """The video-to-video strength; a video-to-video stream restarts (a file input from its beginning)."""

    value: float

    def check(self, cfg: Config) -> None:
        check_strength(self.value)


@dataclasses.dataclass(frozen=True)
class SetInput(Command):
    """Restarts as video-to-video of ``video`` (None: text-to-video) at ``strength`` (None: the stream's)."""

    video: InputVideo | LiveInput | None
    strength: float | None = None

    def check(self, cfg: Config) -> None:
        if self.strength is not None:
            check_strength(self.strength)
