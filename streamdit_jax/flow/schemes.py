"""Partition schemes (K, N, c, s): how a buffer of B = K + N·c latent frames is split and denoised."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


class SchemeError(ValueError):
    """A scheme that the buffer cannot hold; the message names the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class Scheme:
    """K clean reference frames, then N chunks of c frames; s Euler micro-steps per chunk position.

    Chunk i (0 = oldest) covers noise levels [i/N, (i+1)/N]; each of its frames takes ``s`` steps of
    ``1 / (N·s)`` to cross it, so a frame sees ``N·s`` steps from pure noise to clean.
    """

    reference: int  # K
    chunks: int  # N
    chunk_frames: int  # c
    micro_steps: int = 1  # s

    def __post_init__(self) -> None:
        values = dataclasses.astuple(self)
        if self.reference < 0 or min(values[1:]) < 1:
            raise SchemeError(f"scheme (K, N, c, s) = {values} is invalid. Fix: use K >= 0 and N, c, s >= 1")

    @classmethod
    def parse(cls, text: str) -> Scheme:
        """'K,N,c,s' (the CLI's --scheme) -> Scheme."""
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 4:
            raise SchemeError(f"scheme {text!r}: expected four integers K,N,c,s, e.g. 0,8,2,1")
        return cls(*values)

    @classmethod
    def for_buffer(cls, frames: int, reference: int, chunk_frames: int, micro_steps: int = 1) -> Scheme:
        """The scheme with chunks of ``chunk_frames`` that fills a buffer of ``frames``."""
        denoised = frames - reference
        if denoised < 1 or denoised % chunk_frames:
            raise SchemeError(
                f"a buffer of {frames} frames with K={reference} reference frames cannot hold chunks of "
                f"{chunk_frames}. Fix: choose c among {divisors(max(denoised, 1))}"
            )
        return cls(reference, denoised // chunk_frames, chunk_frames, micro_steps)

    @property
    def frames(self) -> int:
        """B = K + N·c."""
        return self.reference + self.chunks * self.chunk_frames

    @property
    def steps_per_frame(self) -> int:
        """N·s: the Euler steps each frame takes from noise to clean."""
        return self.chunks * self.micro_steps

    def check_buffer(self, frames: int) -> None:
        """Raises SchemeError unless this scheme fills a model buffer of ``frames`` latent frames."""
        if self.frames != frames:
            raise SchemeError(
                f"scheme (K, N, c, s) = {dataclasses.astuple(self)} fills {self.frames} frames, but the "
                f"model's buffer holds {frames}. Fix: choose K + N·c = {frames}, e.g. "
                f"{self.reference},{(frames - self.reference) // self.chunk_frames},{self.chunk_frames},"
                f"{self.micro_steps} if c divides {frames - self.reference}"
            )

    def steady_sigmas(self) -> np.ndarray:
        """Per-frame noise levels [B] of a buffer in steady state: chunk i at the top of its range
        (i + 1)/N, reference frames at 0 — the state from which one round of s micro-steps emits a chunk."""
        chunk = np.arange(self.chunks * self.chunk_frames) // self.chunk_frames
        return np.concatenate([np.zeros(self.reference), (chunk + 1) / self.chunks]).astype(np.float32)

    def step_sizes(self) -> np.ndarray:
        """Per-frame sigma decrement [B] of one micro-step: 1/(N·s), 0 on reference frames."""
        size = 1.0 / self.steps_per_frame
        return np.concatenate(
            [np.zeros(self.reference), np.full(self.chunks * self.chunk_frames, size)]
        ).astype(np.float32)

    def as_array(self) -> jnp.ndarray:
        return jnp.asarray(dataclasses.astuple(self), jnp.int32)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
