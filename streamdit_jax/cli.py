"""The ``streamdit`` command: ``streamdit <subcommand> --help`` for each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamdit_jax.commands import (
    bench,
    convert,
    demo,
    distill,
    encode,
    eval_decoder,
    eval_vae,
    plan,
    serve,
    stream,
    summary,
    train,
    train_decoder,
    train_vae,
)
from streamdit_jax.commands import eval as eval_  # the module, not the builtin

# The subcommands in the order ``streamdit --help`` lists them: each module has HELP, add_arguments(parser)
# and run(args, overrides).
COMMANDS = (
    ("summary", summary),
    ("convert", convert),
    ("train", train),
    ("train-vae", train_vae),
    ("eval-vae", eval_vae),
    ("train-decoder", train_decoder),
    ("eval-decoder", eval_decoder),
    ("encode", encode),
    ("stream", stream),
    ("eval", eval_),
    ("serve", serve),
    ("distill", distill),
    ("bench", bench),
    ("plan", plan),
    ("demo", demo),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS:
        p = sub.add_parser(name, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(fn=command.run)
    return parser


def parse_args(
    argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> tuple[argparse.Namespace, list[str]]:
    """(arguments, ``--config.<section>.<field>=<value>`` overrides); anything else unknown is a usage
    error (exit 2), with a hint for an override written with a space."""
    parser = parser or build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = [a for a in rest if a.startswith("--config.")]
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        spaced = [a for a in overrides if "=" not in a]
        hint = f" (write overrides as {spaced[0]}=VALUE)" if spaced else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args, overrides


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    from streamdit_jax.config import ConfigError
    from streamdit_jax.convert import ConversionError
    from streamdit_jax.data import DataError
    from streamdit_jax.flow import SchemeError
    from streamdit_jax.train import NonFiniteLoss

    try:
        args.fn(args, overrides)
    except (
        ConfigError,
        ConversionError,
        DataError,
        SchemeError,
        NonFiniteLoss,
        FileNotFoundError,
        FileExistsError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
