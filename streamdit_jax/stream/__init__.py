"""Streaming rollout (docs/streaming.md): the jitted buffered step, the Streamer, its settings and live
commands, video in and out."""

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
from streamdit_jax.stream.rollout import Conditioning, Rollout, StreamState
from streamdit_jax.stream.settings import LOOKAHEAD, StreamSettings
from streamdit_jax.stream.streamer import Chunk, PromptChange, Streamer, warm_up
from streamdit_jax.stream.video import InputVideo, LiveInput, Recording, VideoSink, record

__all__ = [
    "LOOKAHEAD",
    "Chunk",
    "Command",
    "Conditioning",
    "InputVideo",
    "LiveInput",
    "Pause",
    "PromptChange",
    "Recording",
    "Restart",
    "Resume",
    "Rollout",
    "SetGuidance",
    "SetInput",
    "SetMicroSteps",
    "SetPrompt",
    "SetScheme",
    "SetStrength",
    "StreamModel",
    "StreamSettings",
    "StreamState",
    "Streamer",
    "VideoSink",
    "record",
    "warm_up",
]
