"""Video frames conformed to a preset: read a file, resample its frame rate, resize and centre-crop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from streamdit_jax.config import Config


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames [T, H, W, 3] uint8 and the frame rate of a video file (mp4, webm, gif, ...).

    Decoded with PyAV itself: imageio's PyAV plugin runs a full ``gc.collect()`` each time it closes a
    file, which takes seconds in a process that holds many Python objects (a training job)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream in the file")
        stream = container.streams.video[0]
        fps = float(stream.guessed_rate or 0.0)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames or fps <= 0:
        raise ValueError(f"no frames with a frame rate ({len(frames)} frames, fps {fps})")
    return np.stack(frames), fps


def conform(frames: np.ndarray, fps: float, cfg: Config) -> np.ndarray:
    """Frames resampled to ``cfg.data.fps``, resized and centre-cropped to ``cfg.data.resolution``,
    as float32 in [-1, 1]."""
    count = math.floor(len(frames) / fps * cfg.data.fps + 1e-6)
    index = np.minimum([source_index(j, fps, cfg.data.fps) for j in range(count)], len(frames) - 1)
    out = np.empty((count, *cfg.data.resolution, 3), np.float32)
    for i, source in enumerate(index):
        out[i] = fit_frame(frames[source], cfg.data.resolution)
    return out


def source_index(j: int, fps: float, target_fps: float) -> int:
    """The source frame shown at frame ``j`` of the video resampled from ``fps`` to ``target_fps``."""
    return math.floor(j * fps / target_fps + 1e-6)


def fit_frame(frame: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """One uint8 frame [H, W, 3+] resized (bicubic) and centre-cropped to ``resolution``; float32 in
    [-1, 1]."""
    height, width = resolution
    scale = max(height / frame.shape[0], width / frame.shape[1])
    size = (max(width, round(frame.shape[1] * scale)), max(height, round(frame.shape[0] * scale)))
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    image = Image.fromarray(frame[..., :3]).resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return np.asarray(image, np.float32)[top : top + height, left : left + width] / 127.5 - 1.0
