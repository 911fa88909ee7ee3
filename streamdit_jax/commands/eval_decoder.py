"""``streamdit eval-decoder``: a tiny decoder against the full one on held-out shapes clips: PSNR against
the full decoder and the true frames, and the shapes detector's scores on each."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import load_config

HELP = "a tiny decoder against the full one: PSNR, detector scores"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a `streamdit train-decoder` work dir")
    parser.add_argument("--config", help="the preset (default: the run config saved with the checkpoint)")
    parser.add_argument("--vae", help="the VAE checkpoint (default: the one it was trained from)")
    parser.add_argument("--clips", type=int, default=0, help="default: the clips train-decoder evaluates on")
    parser.add_argument("--frames", type=int, help="clip length (1 + 4k; default: decoder_train.frames)")
    parser.add_argument("--json", help="also write the scores here")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    import json

    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.autoencoder.decoder_training import evaluate_decoder
    from streamdit_jax.autoencoder.tiny import restore_tiny_decoder
    from streamdit_jax.storage import workpath

    cfg = _config(args, overrides)
    vae_dir = args.vae or cfg.data.vae
    vae = restore_matching_autoencoder(vae_dir, cfg.autoencoder)
    tiny = restore_tiny_decoder(args.checkpoint, vae, vae_dir)
    clips = args.clips or cfg.decoder_train.eval_batches * cfg.decoder_train.batch_size
    scores = evaluate_decoder(tiny, vae, cfg, clips, args.frames)
    print(f"{clips} held-out clips of {args.frames or cfg.decoder_train.frames} frames:")
    print(_format_scores(scores))
    if args.json:
        workpath(args.json).write_text(json.dumps(scores, indent=2) + "\n")
        print(f"wrote {args.json}")


def _config(args: argparse.Namespace, overrides: Sequence[str]):
    """``--config``, else the run config saved with the checkpoint; ``--frames`` checked against it."""
    from streamdit_jax.checkpoint import restore_run_config
    from streamdit_jax.config import ConfigError

    cfg = load_config(args, overrides) if args.config else restore_run_config(args.checkpoint)
    if cfg is None:
        raise ConfigError(f"{args.checkpoint} holds no run config. Fix: pass --config PRESET")
    step = cfg.autoencoder.temporal_compression
    if args.frames is not None and (args.frames < 1 or (args.frames - 1) % step):
        raise ConfigError(f"--frames {args.frames}: the causal VAE takes 1 + {step}k frames. Fix: e.g. 17")
    return cfg


def _format_scores(scores: dict) -> str:
    lines = [
        f"  PSNR: tiny vs full decoder {scores['psnr_tiny_full']:.2f} dB, tiny vs true frames "
        f"{scores['psnr_tiny_true']:.2f} dB, full vs true frames {scores['psnr_full_true']:.2f} dB"
    ]
    for name in ("colour", "shape", "position"):
        lines.append(
            f"  detector {name}: true frames {scores[name + '_true']:.1%}, full decoder "
            f"{scores[name + '_full']:.1%}, tiny decoder {scores[name + '_tiny']:.1%} "
            f"({scores[name + '_ratio']:.1%} of the full decoder's); agrees with the full decoder's reading "
            f"{scores[name + '_agreement']:.1%}"
        )
    return "\n".join(lines)
