"""``streamdit summary``: the parameter count and per-module table of a preset, or of a saved checkpoint
(a transformer, an autoencoder or a tiny decoder); nothing is allocated."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, load_config

HELP = "parameter count and per-module table of a preset or checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser, default="small")
    parser.add_argument("--checkpoint", help="summarise a saved checkpoint's model instead of a preset")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.summary import format_summary

    if args.checkpoint:
        print(_checkpoint_summary(args.checkpoint))
        return
    cfg = load_config(args, overrides)
    print(format_summary(cfg.model, cfg, title=f"StreamDiT {args.config}"))


def _checkpoint_summary(checkpoint: str) -> str:
    """The table of the model the checkpoint's saved config describes, whichever kind it is."""
    from streamdit_jax.checkpoint import restore_config
    from streamdit_jax.config import AutoencoderConfig, TinyDecoderConfig
    from streamdit_jax.summary import format_autoencoder_summary, format_summary, format_tiny_decoder_summary

    saved = restore_config(checkpoint)
    title = f"checkpoint {checkpoint}"
    if isinstance(saved, AutoencoderConfig):
        return format_autoencoder_summary(saved, title=title)
    if isinstance(saved, TinyDecoderConfig):
        return format_tiny_decoder_summary(saved, title=title)
    return format_summary(saved, title=title)
