"""Streaming rollout (docs/streaming.md): the jitted buffered step, the Streamer, video in and out."""

from streamdit_jax.stream.model import StreamModel
from streamdit_jax.stream.rollout import Conditioning, Rollout, StreamState
from streamdit_jax.stream.streamer import LOOKAHEAD, Chunk, PromptChange, Streamer, warm_up
from streamdit_jax.stream.video import InputVideo, LiveInput, VideoSink

__all__ = [
    "LOOKAHEAD",
    "Chunk",
    "Conditioning",
    "InputVideo",
    "LiveInput",
    "PromptChange",
    "Rollout",
    "StreamModel",
    "StreamState",
    "Streamer",
    "VideoSink",
    "warm_up",
]
