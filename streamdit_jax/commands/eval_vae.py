"""``streamdit eval-vae``: the held-out PSNR of an autoencoder checkpoint on the clips train-vae evaluates
on, and the shapes detector's scores on its reconstructions beside the true clips'; optionally a PNG
strip of originals above reconstructions."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, add_raw_arg, load_config

HELP = "held-out PSNR of a VAE checkpoint (and a reconstruction strip)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clips", type=int, default=0, help="default: the clips train-vae evaluates on")
    parser.add_argument("--frames", type=int, help="clip length (1 + 4k; default: the training clips')")
    parser.add_argument("--png", help="write originals and reconstructions to this PNG")
    add_raw_arg(parser)


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.autoencoder import restore_autoencoder
    from streamdit_jax.autoencoder.training import evaluate_autoencoder

    cfg = load_config(args, overrides)
    autoencoder = restore_autoencoder(args.checkpoint, ema=not args.raw)
    clips = args.clips or cfg.vae_train.eval_batches * cfg.vae_train.batch_size
    scores, image = evaluate_autoencoder(autoencoder, cfg, clips, args.frames)
    weights = "raw" if args.raw else "EMA"
    frames = args.frames or cfg.vae_train.clip_frames
    what = f"{clips} clips of {frames} frames ({autoencoder.cfg.kind} autoencoder, {weights} weights)"
    print(f"held-out PSNR over {what}: {scores['all']:.2f} dB")
    print(_format_scores(scores))
    if args.png:
        _write_strip(image, args.png)
        print(f"wrote {args.png}: originals above reconstructions, first, middle and last frame")


def _format_scores(scores: dict) -> str:
    """The detector's scores, then the PSNR by background."""
    from streamdit_jax.autoencoder.training import DETECTOR_SCORES

    scores = {k: v for k, v in scores.items() if k != "all"}
    lines = [
        f"  detector {name}: reconstructions {scores.pop(name + '_reconstruction'):.1%}, true clips "
        f"{scores.pop(name + '_true'):.1%}"
        for name in DETECTOR_SCORES
    ]
    lines += [f"  {background} background: {score:.2f} dB" for background, score in sorted(scores.items())]
    return "\n".join(lines)


def _write_strip(image, png: str) -> None:
    """``image`` in [-1, 1] as a PNG."""
    from PIL import Image

    from streamdit_jax.storage import workpath, write_with

    strip = Image.fromarray(((image + 1.0) * 127.5).clip(0, 255).astype("uint8"))
    write_with(workpath(png), lambda f: strip.save(f, format="PNG"))
