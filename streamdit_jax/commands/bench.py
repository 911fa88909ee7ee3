"""``streamdit bench``: times the streaming rollout, the training step or the PyTorch peer; prints the
JSON and the docs/benchmarks.md rows, and writes the JSON to ``--json``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streamdit_jax.choices import DECODERS
from streamdit_jax.commands.common import add_config_args, add_guidance_arg, load_config, print0

HELP = "benchmarks: the streaming rollout, the training step, the PyTorch peer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["rollout", "train", "peer"])
    add_config_args(parser)
    parser.add_argument("--resolution", help="video HEIGHTxWIDTH (default: the preset's data.resolution)")
    parser.add_argument("--scheme", help="rollout: K,N,c,s (default: the config's buffer and rollout)")
    add_guidance_arg(parser, "rollout: guidance scale (default: rollout.guidance)")
    parser.add_argument(
        "--modes", help="rollout: latents,decoded (default both); peer: forward,train (default both)"
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    parser.add_argument("--peak-tflops", type=float, help="peak TFLOP/s per device for MFU (default: table)")
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, help="peer: torch.compile (default: on GPUs)"
    )
    parser.add_argument(
        "--decoder", default="full", choices=DECODERS, help="rollout: what decodes (random weights)"
    )
    parser.add_argument("--json", help="also write the result here")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    import json

    from streamdit_jax.bench import TABLE_HEADER, table_rows
    from streamdit_jax.bench.common import with_resolution

    cfg = with_resolution(load_config(args, overrides), args.resolution)
    result = _bench(args, cfg)
    text = json.dumps(result, indent=2)
    if args.json:
        _write(args.json, text + "\n")
    print0(text)
    print0("\n" + TABLE_HEADER + "\n" + "\n".join(table_rows(result, args.config, _command_line())))


def _bench(args: argparse.Namespace, cfg) -> dict:
    """The result of the benchmark ``args.kind`` names."""
    modes = tuple(m.strip() for m in args.modes.split(",")) if args.modes else None
    if args.kind == "rollout":
        from streamdit_jax.bench import bench_rollout
        from streamdit_jax.bench.rollout import MODES
        from streamdit_jax.flow import Scheme

        scheme = Scheme.parse(args.scheme) if args.scheme else None
        return bench_rollout(
            cfg,
            scheme,
            args.guidance,
            args.steps,
            args.warmup,
            modes or MODES,
            args.peak_tflops,
            args.decoder,
        )
    if args.kind == "train":
        from streamdit_jax.bench import bench_train

        return bench_train(cfg, args.steps, args.warmup, args.peak_tflops)
    from streamdit_jax.bench.peer import PHASES, bench_peer

    return bench_peer(cfg, args.steps, args.warmup, compile_model=args.compile, phases=modes or PHASES)


def _write(path: str, text: str) -> None:
    from streamdit_jax.storage import workpath

    target = workpath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _command_line() -> str:
    """The command the table rows name: this one as typed, or ``streamdit bench`` when called in-process
    (tests)."""
    import shlex

    ran = Path(sys.argv[0]).name in ("streamdit", "cli.py")
    return "streamdit " + shlex.join(sys.argv[1:] if ran else ["bench"])
