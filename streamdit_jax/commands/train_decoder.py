"""``streamdit train-decoder``: distils the tiny streaming decoder from the VAE of ``--vae`` on that VAE's
own latents of shapes clips."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, add_workdir_args, load_config, print0

HELP = "distil the tiny streaming decoder from a VAE's decoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    parser.add_argument("--vae", required=True, help="the VAE checkpoint to imitate (streamdit train-vae)")
    add_workdir_args(parser, "where checkpoints and TensorBoard logs go")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.autoencoder.decoder_training import DecoderTask
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.storage import workpath
    from streamdit_jax.train import Trainer

    cfg = _with_vae(load_config(args, overrides), args.vae)
    mesh = make_mesh(cfg.mesh)
    task = DecoderTask(cfg, restore_matching_autoencoder(args.vae, cfg.autoencoder))
    print0(_start_line(args, task, mesh))
    trainer = Trainer.for_stage(
        task, cfg, "decoder", args.workdir, mesh=mesh, resume=args.resume, frozen=task.frozen(mesh)
    )
    with trainer:
        summary = trainer.run()
    print0(_held_out_line(summary["eval"], summary["end_step"]))
    print0(f"checkpoint: {workpath(args.workdir)} (stream with it: --decoder tiny --tiny-decoder DIR)")


def _with_vae(cfg, vae: str):
    """``cfg`` with ``--vae`` as ``data.vae``: the run config records which VAE the decoder imitates."""
    import dataclasses

    from streamdit_jax.storage import workpath

    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, vae=str(workpath(vae))))


def _start_line(args: argparse.Namespace, task, mesh) -> str:
    import jax

    return (
        f"distilling the tiny decoder of {args.vae} (fingerprint {task.model_config.vae_fingerprint}) on "
        f"{jax.device_count()} {jax.devices()[0].platform} devices, mesh {dict(mesh.shape)}"
    )


def _held_out_line(held_out: dict, step: int) -> str:
    return (
        f"tiny decoder step {step}: held-out loss {held_out['loss']:.4f} against the full "
        f"decoder, PSNR {held_out['psnr']:.2f} dB against it and {held_out['psnr_true']:.2f} dB against the "
        f"true frames (the full decoder's: {held_out['psnr_full_true']:.2f} dB; EMA weights)"
    )
