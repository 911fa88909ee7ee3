"""``streamdit train-vae``: the preset's autoencoder (``autoencoder.kind``) on shapes clips; a kind without
weights (``patch``) only has its latent statistics measured. The checkpoint restores with
``autoencoder.restore_autoencoder``."""

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

HELP = "train the preset's video VAE on the shapes data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    add_workdir_args(parser, "where checkpoints and TensorBoard logs go")
    parser.add_argument("--init", help="start from this VAE checkpoint's weights (e.g. a converted Wan VAE)")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.autoencoder.training import prepare_autoencoder
    from streamdit_jax.storage import workpath

    cfg = with_init(load_config(args, overrides), "vae_train", args.init)
    summary = prepare_autoencoder(cfg, args.workdir, resume=args.resume, resuming=resuming(args))
    print0(_outcome(cfg, summary))
    print0(f"checkpoint: {workpath(args.workdir)}")


def _outcome(cfg, summary: dict) -> str:
    kind = cfg.autoencoder.kind
    if "eval" not in summary:
        return f"{kind} autoencoder: nothing to train; latent statistics measured on held-out shapes clips"
    held_out = summary["eval"]
    return (
        f"{kind} autoencoder step {summary['end_step']}: held-out PSNR {held_out['psnr']:.2f} dB, L1 "
        f"{held_out['l1']:.4f} ({cfg.vae_train.eval_batches * cfg.vae_train.batch_size} held-out shapes "
        "clips, EMA weights)"
    )
