"""``streamdit plan``: the per-device memory of a preset's training step on a mesh, from the compiled step
(nothing is allocated): does it fit, the largest batch that does, and the smallest mesh that fits
(``streamdit_jax.train.plan``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamdit_jax.commands.common import add_config_args, load_config, parse_mesh

HELP = "will a preset's training step fit? Per-device memory, largest batch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)
    parser.add_argument(
        "--mesh", help="D,F,C,M: data, fsdp, context, model sizes (default: the config's mesh)"
    )
    parser.add_argument(
        "--devices", type=int, help="devices to plan for (a CPU host fakes them; default: all)"
    )
    parser.add_argument(
        "--device-memory", type=float, help="GiB per device (default: what the device reports)"
    )
    parser.add_argument(
        "--largest-batch",
        action="store_true",
        help="also search the largest batch when the config's does not fit",
    )
    parser.add_argument("--json", help="also write the plan here")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    import json

    from streamdit_jax.storage import workpath
    from streamdit_jax.train import plan

    plan.check_budget(args.device_memory)
    plan.request_cpu_devices(args.devices)  # before the config starts the backend
    cfg = load_config(args, overrides)
    if args.mesh:
        cfg = plan.with_mesh(cfg, parse_mesh(args.mesh))
    target = plan.target(cfg, args.devices, args.device_memory)
    print(plan.format_target(target, args.config), flush=True)
    report = plan.plan_step(target, args.config)
    print(plan.format_memory(report.step))
    print(plan.format_fit(report))
    report = plan.search(report, target, largest=args.largest_batch)
    for line in plan.format_searches(report, target):
        print(line)
    if args.json:
        workpath(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
