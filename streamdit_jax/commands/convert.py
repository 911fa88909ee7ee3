"""``streamdit convert``: public weights (diffusers Wan 2.1 transformer or VAE) into a streamdit
checkpoint."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

HELP = "convert public weights into a streamdit checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["wan-transformer", "wan-vae"], help="what to convert")
    parser.add_argument(
        "--src", required=True, help="diffusers WanTransformer3DModel / AutoencoderKLWan folder"
    )
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.add_argument(
        "--window", help="transformer attention window F,H,W in tokens (default: full, as Wan)"
    )
    parser.add_argument(
        "--param-dtype", default="float32", choices=["float32", "bfloat16"], help="transformer"
    )


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.config import ConfigError

    if overrides:
        raise ConfigError(f"convert takes no --config overrides, got {list(overrides)}")
    start = time.perf_counter()
    convert = _convert_vae if args.kind == "wan-vae" else _convert_transformer
    path, summary = convert(args)
    print(summary)
    print(f"saved {path} in {time.perf_counter() - start:.1f} s")


def _convert_vae(args: argparse.Namespace) -> tuple[object, str]:
    """(saved path, summary table) of the converted Wan VAE."""
    from flax import nnx

    from streamdit_jax.checkpoint import save_params
    from streamdit_jax.convert import wan_vae
    from streamdit_jax.summary import format_autoencoder_summary

    vae = wan_vae(args.src)
    path = save_params(args.out, vae.cfg, nnx.state(vae))
    return path, format_autoencoder_summary(vae.cfg, title=f"converted {args.src}")


def _convert_transformer(args: argparse.Namespace) -> tuple[object, str]:
    """(saved path, summary table) of the converted Wan transformer."""
    from streamdit_jax.checkpoint import save_params
    from streamdit_jax.convert import wan_transformer_params
    from streamdit_jax.summary import format_summary

    model_cfg, params = wan_transformer_params(args.src, _window(args.window), param_dtype=args.param_dtype)
    path = save_params(args.out, model_cfg, params)
    return path, format_summary(model_cfg, title=f"converted {args.src}")


def _window(text: str | None) -> tuple[int, int, int] | None:
    """``--window F,H,W``."""
    from streamdit_jax.config import ConfigError

    if text is None:
        return None
    window = tuple(int(v) for v in text.split(","))
    if len(window) != 3:
        raise ConfigError(f"--window {text!r}: expected three sizes F,H,W in tokens, e.g. 16,16,16")
    return window
