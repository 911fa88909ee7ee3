"""What the commands share: the config, stream and decoder arguments, ``--guidance`` with its deprecated
``--cfg``, ``--mesh`` parsing, loading the config (and the checkpoint's, for streaming), and printing
from process 0."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from streamdit_jax.choices import DECODERS


def add_config_args(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        default=default,
        required=default is None,
        help="preset name or configs/X.py[:variant]; then --config.<section>.<field>=<value> overrides",
    )


def load_config(args: argparse.Namespace, overrides: Sequence[str]):
    """``--config`` with its ``--config.*`` overrides (multi-host: after joining the other processes)."""
    from streamdit_jax import distributed
    from streamdit_jax.config import load

    distributed.initialize()  # multi-host: before load() starts the JAX backend
    return load(args.config, overrides)


def print0(*values) -> None:
    """Prints from process 0 only."""
    import jax

    if jax.process_index() == 0:
        print(*values, flush=True)


class DeprecatedAlias(argparse.Action):
    """Stores the value; an option string in ``old`` prints a one-line note naming its new name."""

    def __init__(self, *args: Any, old: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        if option_string in self.old:
            print(f"note: {option_string} is deprecated and goes in the next release; use "
                  f"{self.option_strings[0]}", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def add_guidance_arg(p: argparse.ArgumentParser, help: str) -> None:
    """``--guidance`` (classifier-free guidance scale); ``--cfg`` its deprecated alias for one release."""
    p.add_argument("--guidance", "--cfg", type=float, action=DeprecatedAlias, old=("--cfg",), help=help)


def add_decoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--decoder",
        default="full",
        choices=DECODERS,
        help="what makes the frames: the VAE's decoder, or the tiny one distilled from it",
    )
    p.add_argument("--tiny-decoder", help="with --decoder tiny: a `streamdit train-decoder` work dir")


def add_stream_args(p: argparse.ArgumentParser) -> None:
    """The checkpoint and rollout arguments that ``stream`` and ``eval`` share."""
    p.add_argument("--checkpoint", required=True, help="a train or distill work dir, or any DiT checkpoint")
    add_preset_arg(p)
    p.add_argument("--scheme", help="K,N,c,s (default: the config's buffer and rollout)")
    add_guidance_arg(p, "guidance scale (default: rollout.guidance; 1 = off)")
    p.add_argument(
        "--startup-steps",
        type=int,
        help="micro-steps per chunk position of the first buffer's denoise (default: "
        "rollout.startup_micro_steps, else the scheme's s)",
    )
    p.add_argument(
        "--startup-guidance",
        "--startup-cfg",
        type=float,
        action=DeprecatedAlias,
        old=("--startup-cfg",),
        help="the first buffer's guidance scale (default: rollout.startup_guidance, else --guidance)",
    )
    p.add_argument("--seed", type=int, default=0)
    add_restore_args(p)


def add_preset_arg(p: argparse.ArgumentParser) -> None:
    """``--config`` of the streaming commands: optional, the checkpoint saves its run config."""
    p.add_argument("--config", help="the checkpoint's preset (default: the run config saved with it)")


def add_restore_args(p: argparse.ArgumentParser) -> None:
    """How the streaming commands restore a checkpoint: its VAE, mesh, weights and decoder."""
    p.add_argument("--vae", help="VAE checkpoint (default: the config's data.vae)")
    p.add_argument("--mesh", default="1,1,1,1", help="data,fsdp,context,model devices (data = fsdp = 1)")
    add_raw_arg(p)
    add_decoder_args(p)


def add_raw_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")


def add_workdir_args(p: argparse.ArgumentParser, workdir_help: str, resume_help: str | None = None) -> None:
    """``--workdir`` and ``--resume`` of the training commands."""
    p.add_argument("--workdir", required=True, help=workdir_help)
    p.add_argument(
        "--resume",
        action="store_true",
        help=resume_help or "continue from the newest checkpoint in --workdir",
    )


def parse_mesh(text: str) -> tuple[int, ...]:
    """``--mesh D,F,C,M``: the four mesh axis sizes."""
    from streamdit_jax.config import ConfigError

    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4:
        raise ConfigError(f"--mesh {text!r}: give four sizes (data, fsdp, context, model), e.g. 1,8,1,1")
    return shape


def with_init(cfg, section: str, init: str | None):
    """``cfg`` with ``--init`` (when given) as ``<section>.init``: the run config records where it started."""
    import dataclasses

    if not init:
        return cfg
    train_cfg = dataclasses.replace(getattr(cfg, section), init=str(init))
    return dataclasses.replace(cfg, **{section: train_cfg})


def resuming(args: argparse.Namespace) -> bool:
    """``--resume`` of a work dir that holds a checkpoint: the run goes on from it, ``--init`` is not read.
    (From the folder's listing: every process reads the same one before the trainer writes anything.)"""
    from streamdit_jax.checkpoint import saved_steps

    return bool(args.resume and saved_steps(args.workdir))


def stream_config(args: argparse.Namespace, overrides: Sequence[str]):
    """(config, scheme) of a checkpoint for ``stream``/``eval``/``serve``: read from JSON and checked,
    nothing restored or compiled."""
    from streamdit_jax.config import ConfigError
    from streamdit_jax.flow import Scheme
    from streamdit_jax.stream import StreamModel
    from streamdit_jax.stream.model import check_decoder

    check_decoder(args.decoder, args.tiny_decoder)
    if overrides and not args.config:
        raise ConfigError("--config.* overrides need --config PRESET (the preset the checkpoint belongs to)")
    cfg = StreamModel.load_config(args.checkpoint, load_config(args, overrides) if args.config else None)
    scheme = Scheme.parse(args.scheme) if args.scheme else Scheme(*cfg.scheme)
    scheme.check_buffer(cfg.buffer.frames)
    return cfg, scheme


def stream_model(args: argparse.Namespace, cfg):
    """The checkpoint's StreamModel on ``--mesh`` (EMA weights unless ``--raw``)."""
    from streamdit_jax.stream import StreamModel

    return StreamModel.restore(
        args.checkpoint, cfg, args.vae, parse_mesh(args.mesh), ema=not args.raw, decoder=args.decoder,
        tiny_decoder=args.tiny_decoder,
    )  # fmt: skip
