"""Video in and out for streaming: an input video read frame by frame, and an mp4/PNG sink."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from streamdit_jax.config import Config
from streamdit_jax.data import DataError
from streamdit_jax.data.frames import fit_frame, source_index
from streamdit_jax.storage import is_url, local_input, upload, workpath, write_with


class InputVideo:
    """A video file read as it is needed, resampled to ``cfg.data.fps`` and fitted to
    ``cfg.data.resolution`` (float32 frames in [-1, 1]). Opening it reads the first frame, so an
    unreadable file fails here, before anything is compiled."""

    def __init__(self, path: str | Path, cfg: Config):
        import imageio.v3 as iio

        self.path, self.cfg = local_input(path, "input video"), cfg
        if not self.path.is_file():
            raise FileNotFoundError(f"input video {self.path} does not exist")
        try:
            fps = float(iio.immeta(self.path, plugin="pyav").get("fps") or 0.0)
            if fps <= 0:
                raise ValueError("no frame rate in the file")
            frames = iio.imiter(self.path, plugin="pyav")
            self._frames = self._resampled(frames, fps, cfg)
            self._head = [next(self._frames)]
        except (OSError, ValueError, StopIteration, RuntimeError) as e:
            raise DataError(
                f"cannot read input video {self.path}: {e or type(e).__name__}. Fix: give a video file "
                "that PyAV/FFmpeg decodes (mp4, webm, mov, mkv, gif) with at least one frame"
            ) from e
        self.fps = fps
        self.frames_read = 0

    @staticmethod
    def _resampled(frames: Iterator[np.ndarray], fps: float, cfg: Config) -> Iterator[np.ndarray]:
        j = 0
        for i, frame in enumerate(frames):
            while source_index(j, fps, cfg.data.fps) <= i:
                yield fit_frame(np.asarray(frame), cfg.data.resolution)
                j += 1

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` frames [n, H, W, 3]; fewer (possibly none) at the end of the video."""
        out = self._head[:count]
        self._head = self._head[count:]
        try:
            while len(out) < count:
                out.append(next(self._frames))
        except StopIteration:
            pass
        except (OSError, ValueError, RuntimeError) as e:
            raise DataError(
                f"input video {self.path}: decoding failed after {self.frames_read} frames: {e}"
            ) from e
        self.frames_read += len(out)
        return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.float32)

    def reopen(self) -> InputVideo:
        """The same video from its first frame."""
        self.close()
        return InputVideo(self.path, self.cfg)

    def close(self) -> None:
        self._frames.close()


class LiveInput:
    """Frames pushed as they come (a webcam), read by a stream with ``take``. ``push`` fits each frame to
    ``cfg.data.resolution``; ``take(n)`` waits until n frames are there, or for ``patience`` seconds and
    then repeats the newest frame (mid-grey before the first), so a slow camera slows nothing. At most
    ``capacity`` frames wait (older ones are dropped)."""

    path = "live input"

    def __init__(self, cfg: Config, patience: float = 0.5, capacity: int = 64):
        import collections
        import threading

        self.cfg, self.patience = cfg, patience
        self._frames: collections.deque = collections.deque(maxlen=capacity)
        self._ready = threading.Condition()
        self._closed = False
        self._last: np.ndarray | None = None
        self.frames_read = self.frames_pushed = 0

    def push(self, frame: np.ndarray) -> None:
        """One RGB frame, uint8 [H, W, 3] of any size."""
        fitted = fit_frame(np.asarray(frame), self.cfg.data.resolution)
        with self._ready:
            self._frames.append(fitted)
            self.frames_pushed += 1
            self._ready.notify_all()

    def take(self, count: int) -> np.ndarray:
        """``count`` frames [n, H, W, 3] float32 in [-1, 1]; none once closed."""
        import time

        deadline = time.monotonic() + self.patience
        with self._ready:
            while not self._closed and len(self._frames) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(timeout=left)
            if self._closed:
                return np.zeros((0, 1, 1, 3), np.float32)
            out = [self._frames.popleft() for _ in range(min(count, len(self._frames)))]
        if out:
            self._last = out[-1]
        elif self._last is None:  # no frame yet: mid-grey
            self._last = np.zeros((*self.cfg.data.resolution, 3), np.float32)
        out += [self._last] * (count - len(out))
        self.frames_read += count
        return np.stack(out)

    def reopen(self) -> LiveInput:
        return self

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class VideoSink:
    """Writes uint8 frames [H, W, 3] to an H.264 mp4 (PyAV) and/or to numbered PNGs in a folder."""

    def __init__(self, fps: int, out: str | Path | None = None, frames_dir: str | Path | None = None):
        if out is None and frames_dir is None:
            raise ValueError("VideoSink needs an mp4 path, a frames folder, or both")
        self.frames = 0
        self._writer = None
        self._target = None if out is None else workpath(out)
        if self._target is not None:
            import imageio.v3 as iio

            if is_url(self._target):  # PyAV writes local files: encoded here, uploaded on close
                handle, local = tempfile.mkstemp(suffix=self._target.suffix or ".mp4")
                os.close(handle)
                self._local = Path(local)
            else:
                self._target.parent.mkdir(parents=True, exist_ok=True)
                self._local = Path(self._target)
            self._writer = iio.imopen(self._local, "w", plugin="pyav")
            self._writer.init_video_stream("libx264", fps=fps)
        self._dir = None if frames_dir is None else workpath(frames_dir)
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)

    def write(self, frame: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.write_frame(frame)
        if self._dir is not None:
            from PIL import Image

            image = Image.fromarray(frame)
            write_with(self._dir / f"frame_{self.frames:06d}.png", lambda f: image.save(f, format="PNG"))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            if is_url(self._target):
                upload(self._local, self._target)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class Recording:
    """What a stream wrote, and its clock: start, first frame and end (``time.perf_counter``)."""

    frames: int
    start: float
    first: float | None
    end: float

    @property
    def steady_fps(self) -> float:
        """Frames per second after the first frame (start-up and compilation left out)."""
        if self.first is None or self.frames < 2:
            return float("nan")
        return (self.frames - 1) / (self.end - self.first)

    def format(self, streamer, platform: str) -> str:
        first = self.first - self.start if self.first else float("nan")
        return "\n".join(
            [
                f"frames written: {self.frames} ({self.frames / streamer.fps:.2f} s at {streamer.fps} fps)",
                f"forward passes per chunk: {streamer.forward_passes_per_chunk}",
                f"measured frames per second: {self.steady_fps:.1f} after the first frame, "
                f"{self.frames / (self.end - self.start):.1f} overall; first frame after {first:.1f} s "
                f"(start-up and compilation included) on {platform}",
            ]
        )


def record(streamer, wanted: int | None, out: str | None, frames_dir: str | None) -> Recording:
    """Writes ``wanted`` frames of ``streamer`` (None: until it ends) to ``out`` and/or ``frames_dir``,
    with a progress bar of the steady frame rate."""
    from tqdm import tqdm

    start = time.perf_counter()
    first = None
    frames = iter(streamer)
    with VideoSink(streamer.fps, out, frames_dir) as sink, contextlib.closing(frames):
        bar = tqdm(total=wanted, unit="frame", dynamic_ncols=True)
        for frame in frames:
            if sink.frames == wanted:
                break
            sink.write(frame)
            bar.update(1)
            if first is None:
                first = time.perf_counter()
            elif sink.frames % 8 == 0:
                bar.set_postfix(fps=f"{(sink.frames - 1) / (time.perf_counter() - first):.1f}")
        bar.close()
    return Recording(sink.frames, start, first, time.perf_counter())
