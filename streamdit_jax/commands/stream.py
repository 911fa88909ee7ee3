"""``streamdit stream``: a checkpoint streamed to an mp4 (and/or PNG frames): text-to-video, a prompt
schedule, or video-to-video. Every argument is checked before anything is compiled."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

from streamdit_jax.commands.common import add_stream_args, stream_config, stream_model

HELP = "stream a checkpoint to an mp4: prompts, schedules, video-to-video"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_args(parser)
    parser.add_argument("--prompt", help="the prompt")
    parser.add_argument("--prompts", help='jsonl of {"at": seconds, "prompt": text}: a prompt schedule')
    parser.add_argument(
        "--seconds", type=float, help="length of the video (video-to-video: default the input's)"
    )
    parser.add_argument("--out", help="mp4 to write (H.264)")
    parser.add_argument("--frames-dir", help="also (or instead) write every frame as a PNG here")
    parser.add_argument("--input-video", help="video-to-video (SDEdit): the video to restyle")
    parser.add_argument("--strength", type=float, default=0.7, help="video-to-video noise level in (0, 1]")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.storage import workpath
    from streamdit_jax.stream import InputVideo, Streamer, StreamSettings
    from streamdit_jax.stream.streamer import read_schedule

    _check_outputs_and_prompts(args)
    schedule = read_schedule(args.prompts) if args.prompts else []
    cfg, scheme = stream_config(args, overrides)
    video = InputVideo(args.input_video, cfg) if args.input_video else None
    settings = StreamSettings(
        scheme=scheme, guidance=args.guidance, seed=args.seed, schedule=schedule, input_video=video,
        strength=args.strength, startup_micro_steps=args.startup_steps,
        startup_guidance=args.startup_guidance,
    ).resolved(cfg)  # fmt: skip
    model = stream_model(args, cfg)
    streamer = Streamer(model, args.prompt or "", settings)
    mode = "video-to-video" if video else "text-to-video"
    print(
        f"streaming {mode} from {args.checkpoint}: scheme (K, N, c, s) = {dataclasses.astuple(scheme)}, "
        f"cfg {streamer.guidance:g}, {'x'.join(map(str, cfg.data.resolution))} at {streamer.fps} fps",
        flush=True,
    )
    wanted = None if args.seconds is None else round(args.seconds * streamer.fps)
    recording = _record(streamer, wanted, args.out, args.frames_dir)
    for step, prompt in streamer.prompt_log:
        print(f"  from step {step} (frame {streamer.frames_before(step)}): {prompt!r}")
    print(recording.format(streamer, platform=model.mesh.devices.flat[0].platform))
    for target in (args.out, args.frames_dir):
        if target:
            print(f"wrote {workpath(target)}")


def _check_outputs_and_prompts(args: argparse.Namespace) -> None:
    from streamdit_jax.config import ConfigError

    if args.out is None and args.frames_dir is None:
        raise ConfigError("stream needs --out FILE.mp4, --frames-dir DIR, or both")
    if args.input_video is None and args.seconds is None:
        raise ConfigError("--seconds is required for text-to-video (video-to-video defaults to the input)")
    if (args.prompt is None) == (args.prompts is None):
        raise ConfigError("give one of --prompt TEXT or --prompts FILE.jsonl")


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


def _record(streamer, wanted: int | None, out: str | None, frames_dir: str | None) -> Recording:
    """Writes ``wanted`` frames of ``streamer`` (None: until it ends) to ``out`` and/or ``frames_dir``,
    with a progress bar of the steady frame rate."""
    import contextlib

    from tqdm import tqdm

    from streamdit_jax.stream import VideoSink

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
