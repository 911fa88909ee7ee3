"""``streamdit encode``: videos + captions (or shapes scenes) into ArrayRecord shards of latents and text
states that ``train`` reads (``data.source=latents``); a rerun resumes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, load_config

HELP = "videos + captions -> ArrayRecord shards of latents and text states"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    parser.add_argument("--videos", help="folder the caption file's video paths are relative to")
    parser.add_argument("--captions", help='jsonl of {"video": path, "caption": text}')
    parser.add_argument("--shapes", type=int, help="instead of videos: this many shapes training scenes")
    parser.add_argument(
        "--vae", required=True, help="the preset's VAE checkpoint (streamdit train-vae or convert)"
    )
    parser.add_argument("--out", required=True, help="output folder of shards (rerun to resume)")
    parser.add_argument("--videos-per-shard", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="clips per VAE call")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.data.encode import clip_frames, read_captions

    cfg = load_config(args, overrides)
    _check_sources(args)
    entries = read_captions(args.captions, args.videos) if args.shapes is None else None
    vae, text_encoder = _checked_encoders(cfg, args.vae)
    what = f"{len(entries)} videos" if entries else f"{args.shapes} shapes scenes (training split)"
    print(
        f"encoding {what} into clips of {clip_frames(cfg)} frames at {cfg.data.fps} fps, "
        f"{cfg.data.resolution[0]}x{cfg.data.resolution[1]} -> {args.out}"
    )
    report = _encode(args, cfg, entries, vae, text_encoder)
    print(
        f"wrote {report.shards_written} shards ({report.shards_skipped} already complete): "
        f"{report.clips} clips from {report.videos} videos; skipped {len(report.skipped)} videos"
    )
    for item in report.skipped:
        print(f"  skipped {item['video']}: {item['reason']}")


def _check_sources(args: argparse.Namespace) -> None:
    """Either ``--videos`` with ``--captions``, or ``--shapes``."""
    from streamdit_jax.config import ConfigError

    if (args.shapes is None) == (args.videos is None and args.captions is None):
        raise ConfigError("pass either --videos DIR --captions FILE, or --shapes N (not both)")
    if args.shapes is None and (args.videos is None or args.captions is None):
        raise ConfigError("--videos and --captions go together: the folder and its caption file")


def _checked_encoders(cfg, vae_dir: str):
    """(autoencoder of ``vae_dir``, text encoder), both checked against the preset."""
    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.config import ConfigError
    from streamdit_jax.text import build_encoder

    autoencoder = restore_matching_autoencoder(vae_dir, cfg.autoencoder)
    text_encoder = build_encoder(cfg.text)
    if text_encoder.width != cfg.model.text_width:
        raise ConfigError(
            f"config field 'model.text_width': {cfg.model.text_width}, but the text encoder gives "
            f"{text_encoder.width}. Fix: match model.text_width to the encoder"
        )
    return autoencoder, text_encoder


def _encode(args: argparse.Namespace, cfg, entries, vae, text_encoder):
    """The shapes scenes or the caption file's videos into shards (each process its share of videos)."""
    import jax

    from streamdit_jax.data.encode import encode_shapes, encode_videos

    if entries is None:
        return encode_shapes(cfg, args.shapes, args.out, vae, text_encoder, args.videos_per_shard, args.batch)
    return encode_videos(
        cfg,
        entries,
        args.out,
        vae,
        text_encoder,
        args.videos_per_shard,
        args.batch,
        jax.process_index(),
        jax.process_count(),
    )
