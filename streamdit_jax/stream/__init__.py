"""Streaming rollout (docs/streaming.md): the jitted buffered step, the Streamer, video in and out."""

from streamdit_jax.stream.rollout import Conditioning, Rollout, StreamState
from streamdit_jax.stream.streamer import LOOKAHEAD, Streamer, StreamModel
from streamdit_jax.stream.video import InputVideo, VideoSink

__all__ = [
    "LOOKAHEAD",
    "Conditioning",
    "InputVideo",
    "Rollout",
    "StreamModel",
    "StreamState",
    "Streamer",
    "VideoSink",
]
