"""``streamdit demo``: the embedded default run (autoencoder, latents, StreamDiT teacher and student,
held-out streams and their scores, the report), resumable stage by stage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, load_config, print0

HELP = "train the VAE and StreamDiT on shapes, stream, evaluate (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, default="small")
    parser.add_argument("--workdir", default="runs/demo")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    import jax

    from streamdit_jax.demo import DemoPaths, run_demo
    from streamdit_jax.storage import workpath

    cfg = load_config(args, overrides)
    paths = DemoPaths(workpath(args.workdir))
    print0(
        f"streamdit demo ({args.config}) in {paths.root} on {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s); finished stages are skipped, interrupted ones resume"
    )
    run_demo(cfg, paths.root, log=print0)
    print0(_where_things_are(cfg, paths))


def _where_things_are(cfg, paths) -> str:
    """The closing note: what the run wrote, and where."""
    return "\n".join(
        [
            "done. Everything is under " + str(paths.root) + ":",
            f"  stream.mp4   the first held-out stream ({cfg.demo.seconds:g} s, "
            f"{cfg.demo.segments - 1} prompt changes); all streams in {paths.streams.name}/",
            "  eval.json    scores of every stream (eval.md: the same as tables; adherence.png, "
            "seams.png, strips.png)",
            "  report.png   training curves, frames per prompt, adherence, summary vs targets",
            f"  autoencoder/ teacher/ student/  checkpoints (stream the student, one pass a chunk: "
            f"streamdit stream --checkpoint {paths.student} --prompt '...')",
        ]
    )
