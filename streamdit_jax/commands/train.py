"""``streamdit train``: the StreamDiT with buffered flow matching (mixed partition schemes) on the
config's data and mesh, from a fresh init, a converted checkpoint (``--init``) or its own last
checkpoint (``--resume``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import (
    add_config_args,
    add_workdir_args,
    load_config,
    print0,
    resuming,
    with_init,
)

HELP = "train the StreamDiT with buffered flow matching (mixed schemes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    add_workdir_args(parser, "checkpoints, TensorBoard, metrics.jsonl")
    parser.add_argument(
        "--init", help="start from this transformer checkpoint's weights (e.g. a converted Wan 2.1)"
    )


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.data.training import on_the_fly_encoders
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.storage import workpath
    from streamdit_jax.train import Trainer
    from streamdit_jax.train.flow_task import FlowTask

    cfg = with_init(load_config(args, overrides), "train", args.init)
    mesh = make_mesh(cfg.mesh)
    resume = resuming(args)
    initial = _initial_params(cfg, mesh, resume)
    print0(_start_line(args, cfg, mesh, initial, resume))
    vae, text_encoder = on_the_fly_encoders(cfg)
    task = FlowTask(cfg, vae, text_encoder)
    trainer = Trainer.for_stage(
        task, cfg, "teacher", args.workdir, mesh=mesh, resume=args.resume, initial=initial
    )
    with trainer:
        summary = trainer.run()
    print0(_held_out_line(summary))
    print0(f"checkpoint: {workpath(args.workdir)}")


def _initial_params(cfg, mesh, resume: bool):
    """The ``train.init`` checkpoint's weights on ``mesh``, unless the run resumes or has no init."""
    from streamdit_jax.model import initial_params

    if not cfg.train.init or resume:
        return None
    return initial_params(cfg.train.init, cfg.model, mesh, cfg.mesh.rules)


def _start_line(args: argparse.Namespace, cfg, mesh, initial, resume: bool) -> str:
    import jax

    start = f"from {cfg.train.init}" if initial is not None else "from a fresh init"
    start = f"resuming {args.workdir}" if resume else start
    return (
        f"training {args.config} {start} on {jax.device_count()} {jax.devices()[0].platform} devices in "
        f"{jax.process_count()} processes, mesh {dict(mesh.shape)}; data: {cfg.data.source}"
    )


def _held_out_line(summary: dict) -> str:
    held_out = summary["eval"]
    levels = ", ".join(
        f"{k.removeprefix('loss_sigma_')}: {v:.4f}" for k, v in held_out.items() if "sigma" in k
    )
    return (
        f"step {summary['end_step']}: held-out loss {held_out['loss']:.4f} (by sigma {levels}; EMA weights)"
    )
