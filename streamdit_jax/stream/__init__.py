"""Streaming rollout: the jitted buffered step, the Streamer iterator, video in and out (DESIGN §6)."""

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
