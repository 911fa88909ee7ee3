"""``streamdit stream``: a checkpoint streamed to an mp4 (and/or PNG frames): text-to-video, a prompt
schedule, or video-to-video. Every argument is checked before anything is compiled."""

from __future__ import annotations

import argparse
import dataclasses
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
    from streamdit_jax.stream import InputVideo, Streamer, StreamSettings, record
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
        f"guidance {streamer.guidance:g}, {'x'.join(map(str, cfg.data.resolution))} at {streamer.fps} fps",
        flush=True,
    )
    wanted = None if args.seconds is None else round(args.seconds * streamer.fps)
    recording = record(streamer, wanted, args.out, args.frames_dir)
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
