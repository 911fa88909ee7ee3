"""``streamdit eval``: streams the held-out prompt schedules (or ``--prompts``) from a checkpoint and
scores them with the shapes detector: eval.json, eval.md and the plots."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from streamdit_jax.commands.common import add_stream_args, stream_config, stream_model

HELP = "stream held-out prompt schedules and score them (shapes detector)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stream_args(parser)
    parser.add_argument(
        "--prompts", help='one schedule to score instead: jsonl of {"at": seconds, "prompt": text}'
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each stream")
    parser.add_argument("--count", type=int, default=4, help="held-out schedules to stream")
    parser.add_argument(
        "--segments", type=int, default=3, help="prompts per held-out schedule (the demo streams 4)"
    )
    parser.add_argument("--out", help="output folder (default: CHECKPOINT/eval)")
    parser.add_argument(
        "--videos", action="store_true", help="also write every stream to OUT/streams/NAME.mp4"
    )


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.eval.run import run_eval
    from streamdit_jax.storage import workpath

    prompts = _prompts(args)
    cfg, scheme = stream_config(args, overrides)
    model = stream_model(args, cfg)
    out = workpath(args.out) if args.out else workpath(args.checkpoint) / "eval"
    print(
        f"evaluating {args.checkpoint} ({model.decoder} decoder): {len(prompts)} streams of "
        f"{args.seconds:g} s -> {out}",
        flush=True,
    )
    videos = out / "streams" if args.videos else None
    startup = (args.startup_steps, args.startup_guidance)
    report = run_eval(
        model, prompts, args.seconds, out, scheme, args.guidance, args.seed, videos, progress=True,
        startup=startup,
    )  # fmt: skip
    print(_format_report(report, out, videos))


def _prompts(args: argparse.Namespace) -> list:
    """``--prompts``' schedule, else ``--count`` held-out schedules of ``--segments`` prompts."""
    from streamdit_jax.config import ConfigError
    from streamdit_jax.eval.run import heldout_prompts, prompts_from_schedule
    from streamdit_jax.stream.streamer import read_schedule

    if args.prompts:
        return [prompts_from_schedule(Path(args.prompts).stem, read_schedule(args.prompts))]
    if args.segments < 1:
        raise ConfigError(f"--segments {args.segments}: a schedule needs at least one prompt. Fix: e.g. 3")
    return heldout_prompts(args.count, args.seconds, segments=args.segments)


def _format_report(report: dict, out, videos) -> str:
    lines = [f"  {key}: {value:.3f}" for key, value in report["summary"].items()]
    lines.append(f"wrote {out / 'eval.json'}, {out / 'eval.md'}, adherence.png, seams.png, strips.png")
    if videos:
        lines.append(f"wrote the streams to {videos}")
    return "\n".join(lines)
