"""``streamdit distill``: segment-wise distillation of a trained StreamDiT into a student that takes one
unguided step per emitted chunk."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, add_workdir_args, load_config, print0

HELP = "segment-wise distillation: one unguided step per emitted chunk"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    parser.add_argument("--teacher", required=True, help="a `streamdit train` checkpoint directory")
    add_workdir_args(parser, "where the student's checkpoints go", "continue the student in --workdir")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.distill import distill_trainer
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.storage import workpath

    cfg = load_config(args, overrides)
    mesh = make_mesh(cfg.mesh)
    print0(_start_line(args, cfg, mesh))
    with distill_trainer(cfg, args.teacher, args.workdir, mesh, resume=args.resume) as trainer:
        summary = trainer.run()
    print0(
        f"step {summary['end_step']}: held-out distillation loss {summary['eval']['loss']:.4f} (EMA weights)"
    )
    print0(
        f"student: {workpath(args.workdir)} (streams with s = 1 and no CFG by default: streamdit "
        f"stream --checkpoint {args.workdir} --prompt '...')"
    )


def _start_line(args: argparse.Namespace, cfg, mesh) -> str:
    import dataclasses

    import jax

    from streamdit_jax.distill import schemes

    teacher, student = (dataclasses.astuple(s) for s in schemes(cfg))
    return (
        f"distilling {args.teacher} on {jax.device_count()} {jax.devices()[0].platform} devices, mesh "
        f"{dict(mesh.shape)}: teacher (K, N, c, s) = {teacher} with CFG {cfg.distill.guidance:g} -> "
        f"student {student} without guidance"
    )
