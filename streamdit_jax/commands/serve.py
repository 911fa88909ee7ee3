"""``streamdit serve``: the live studio. Restores the checkpoint (by default the demo's student), compiles
its stream, then serves the page that streams it in the browser and steers it live."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from streamdit_jax.commands.common import add_preset_arg, add_restore_args, stream_config, stream_model

HELP = "the live studio: stream a checkpoint in the browser, steer it live"
DEMO_STUDENT = Path("runs/demo/student")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="a train or distill work dir (default: runs/demo/student)")
    add_preset_arg(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--max-sessions", type=int, default=2, help="streams at once; later tabs wait in a queue"
    )
    parser.add_argument("--max-upload-mb", type=float, default=32.0, help="largest clip for video-to-video")
    add_restore_args(parser)
    parser.set_defaults(scheme=None)  # stream_config reads it: the checkpoint's own scheme


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from aiohttp import web

    from streamdit_jax.stream import warm_up
    from streamdit_jax.studio import Studio, StudioOptions

    args.checkpoint = args.checkpoint or _demo_student()
    options = StudioOptions(args.max_sessions, args.max_upload_mb, checkpoint=Path(args.checkpoint).name)
    _warn_if_public(args.host)
    cfg, scheme = stream_config(args, overrides)
    model = stream_model(args, cfg)
    print(f"compiling the stream of {args.checkpoint}, scheme {dataclasses.astuple(scheme)} ...", flush=True)
    seconds = warm_up(model, scheme, guidances=(cfg.rollout.guidance,))
    print(f"compiled in {seconds:.1f} s", flush=True)
    studio = Studio(model, options)
    print(
        f"streamdit studio: http://{args.host}:{args.port}/ ({args.max_sessions} sessions at most)",
        flush=True,
    )
    web.run_app(studio.app, host=args.host, port=args.port, print=None)


def _demo_student() -> str:
    from streamdit_jax.config import ConfigError

    if not DEMO_STUDENT.is_dir():
        raise ConfigError(
            "no --checkpoint, and runs/demo/student does not exist. Fix: make one with `streamdit demo "
            "--workdir runs/demo` (30 minutes on a 2-core CPU), or pass --checkpoint DIR"
        )
    return str(DEMO_STUDENT)


def _warn_if_public(host: str) -> None:
    import jax

    if not _loopback(host):
        print(
            f"WARNING: --host {host} serves the studio to the network: anyone who can reach this "
            f"machine can use its {jax.devices()[0].platform.upper()} through it, with no login.",
            file=sys.stderr,
        )


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
