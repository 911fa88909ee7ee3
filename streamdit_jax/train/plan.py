"""``streamdit plan``: does a preset's training step fit on a mesh, and with what batch?

The step is the Trainer's own program (``Trainer.program``), lowered on abstract inputs and compiled
for the mesh's devices; nothing is allocated. Per-device bytes come from two places: the train state's
shapes and shardings (``jax.eval_shape``: parameters, EMA, optimizer state) and XLA's memory analysis
of the compiled per-device program (arguments, outputs not aliased to the donated state, and the
temporaries: activations kept for the backward pass under the remat policy, and workspace).

The analysis is the compiler's for the platform it compiles on: plan on the accelerator itself, or on
a CPU host with ``--devices N`` fake devices for a cluster one does not have (XLA:CPU's buffer
assignment, which docs/training.md compares with measured peaks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np

from streamdit_jax.config import Config, ConfigError, MeshConfig
from streamdit_jax.sharding import batch_devices, make_mesh
from streamdit_jax.sharding.axes import MESH_AXES

GIB = 2**30
SEARCH_FACTOR = 8  # the search for a mesh that fits goes up to this many times the planned devices


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Bytes per device of one training step (the most loaded device's share of each sharded array)."""

    mesh: tuple[int, ...]
    batch_size: int  # global
    params: int  # trained parameters and the model's other state
    ema: int
    optimizer: int
    batch: int
    activations: int  # XLA temporaries: activations kept for the backward pass, and workspace
    outputs: int  # step outputs not written into the donated state (metrics)
    arguments: int  # XLA's count of the step's inputs (state + batch)

    @property
    def total(self) -> int:
        """The step's peak: inputs + outputs not aliased to them + temporaries."""
        return self.arguments + self.outputs + self.activations

    def to_dict(self) -> dict:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "mesh": dict(zip(MESH_AXES, self.mesh, strict=True)),
            "total": self.total,
        }


def _shard_bytes(tree) -> int:
    """Bytes of the largest shard (the most loaded device) of every abstract array in ``tree``, summed."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


def batch_shapes(cfg: Config, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The global batch the StreamDiT's training step takes (``bench train``'s synthetic one)."""
    from streamdit_jax.bench.train import SyntheticExamples

    one = SyntheticExamples(cfg).batch(1)
    return {k: jax.ShapeDtypeStruct((batch_size, *v.shape[1:]), v.dtype) for k, v in one.items()}


def step_memory(cfg: Config, devices: Sequence[jax.Device] | None = None) -> StepMemory:
    """Compiles ``cfg``'s training step for ``cfg.mesh`` over ``devices`` (default: all) and reads its
    per-device memory; a ConfigError when the batch does not split over the mesh."""
    from streamdit_jax.bench.train import SyntheticExamples
    from streamdit_jax.train import Trainer
    from streamdit_jax.train.flow_task import FlowTask

    devices = list(jax.devices() if devices is None else devices)
    mesh = make_mesh(cfg.mesh, devices)
    task = FlowTask(cfg, examples=SyntheticExamples(cfg))
    program = Trainer.program(task, cfg.train, cfg.optimizer, mesh, cfg.mesh.rules)
    state = program.abstract_state()
    batch = batch_shapes(cfg, cfg.train.batch_size)
    analysis = program.lower_step(batch).compile().memory_analysis()
    batch_sharded = [
        jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=program.batch_shardings[k]) for k, v in batch.items()
    ]
    return StepMemory(
        mesh=tuple(int(n) for n in mesh.devices.shape),
        batch_size=cfg.train.batch_size,
        params=_shard_bytes((state.params, state.rest)),
        ema=_shard_bytes(state.ema),
        optimizer=_shard_bytes(state.opt_state),
        batch=_shard_bytes(batch_sharded),
        activations=int(analysis.temp_size_in_bytes),
        outputs=int(analysis.output_size_in_bytes - analysis.alias_size_in_bytes),
        arguments=int(analysis.argument_size_in_bytes),
    )


def with_batch(cfg: Config, batch_size: int) -> Config:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch_size))


def with_mesh(cfg: Config, shape: tuple[int, ...]) -> Config:
    return dataclasses.replace(cfg, mesh=MeshConfig(shape=tuple(shape), rules=cfg.mesh.rules))


def batch_unit(cfg: Config, shape: tuple[int, ...]) -> int:
    """The smallest global batch the trainer takes on ``shape``: one example for each device of the mesh
    axes the batch is sharded over (``mesh.rules``' batch axis; at least one per process), times the
    accumulation micro-steps."""
    devices = batch_devices(cfg.mesh.rules, dict(zip(MESH_AXES, shape, strict=True)))
    return max(devices, jax.process_count()) * cfg.train.grad_accum


def _resolved(cfg: Config) -> tuple[int, ...]:
    if -1 in cfg.mesh.shape:
        raise ValueError(f"mesh.shape {cfg.mesh.shape}: resolve the -1 first (plan.with_mesh)")
    return tuple(cfg.mesh.shape)


def largest_batch(cfg: Config, budget: int, devices: Sequence[jax.Device] | None = None) -> StepMemory | None:
    """The step of the largest global batch (a multiple of :func:`batch_unit`) within ``budget`` bytes per
    device on ``cfg``'s (resolved) mesh, or None when not even the smallest fits.

    Memory grows about linearly with the batch: two compiles give the slope; the batch it points at and
    the next one are compiled to confirm the edge, and a miss is searched by bisection (growth faster or
    slower than linear costs a few more compiles, never a wrong answer)."""
    shape = _resolved(cfg)
    devices = list(jax.devices() if devices is None else devices)[: math.prod(shape)]
    unit = batch_unit(cfg, shape)
    compiled: dict[int, StepMemory] = {}

    def memory(units: int) -> StepMemory:
        if units not in compiled:
            compiled[units] = step_memory(with_batch(cfg, units * unit), devices)
        return compiled[units]

    if memory(1).total > budget:
        return None
    per_unit = max(memory(2).total - memory(1).total, 1)
    guess = max(1, 1 + (budget - memory(1).total) // per_unit)
    fits, over = 1, None  # the largest multiple known to fit, the smallest known not to
    for units in (2, guess, guess + 1):
        if over is not None and units >= over:
            continue
        if memory(units).total <= budget:
            fits = max(fits, units)
        else:
            over = units if over is None else min(over, units)
    while over is None:  # slower than linear: grow until a batch does not fit
        units = 2 * fits
        if memory(units).total <= budget:
            fits = units
        else:
            over = units
    while over - fits > 1:
        middle = (fits + over) // 2
        if memory(middle).total <= budget:
            fits = middle
        else:
            over = middle
    return memory(fits)


def smallest_fitting_mesh(
    cfg: Config, budget: int, devices: Sequence[jax.Device] | None = None
) -> StepMemory | None:
    """With the configured batch, the mesh of fewest devices that fits ``budget``: ``cfg``'s (resolved)
    mesh with its fsdp axis doubled until it fits and the batch still splits, on at most ``devices``."""
    devices = list(jax.devices() if devices is None else devices)
    shape = list(_resolved(cfg))
    while math.prod(shape) * 2 <= len(devices):
        shape[1] *= 2
        if cfg.train.batch_size % batch_unit(cfg, tuple(shape)):
            break  # the batch no longer splits over the grown axis
        memory = step_memory(with_mesh(cfg, tuple(shape)), devices[: math.prod(shape)])
        if memory.total <= budget:
            return memory
    return None


def gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB" if nbytes >= GIB / 10 else f"{nbytes / 2**20:.1f} MiB"


def format_memory(memory: StepMemory) -> str:
    """The per-device table ``streamdit plan`` prints."""
    rows = [
        ("parameters (+ model state)", memory.params, ""),
        ("EMA", memory.ema, ""),
        ("optimizer state", memory.optimizer, ""),
        ("batch", memory.batch, ""),
        ("activations and workspace", memory.activations, "XLA temporaries under the remat policy"),
        ("step outputs", memory.outputs, "not written into the donated state"),
        ("total", memory.total, "the step's peak: inputs + outputs + temporaries"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"per device (mesh {memory.mesh}, global batch {memory.batch_size}):"]
    lines += [f"  {name:<{width}}  {gib(n):>11}  {note}".rstrip() for name, n, note in rows]
    return "\n".join(lines)


def device_memory_bytes(device: jax.Device) -> int | None:
    """What the device's allocator may use (GPU, TPU); None where it does not say (CPU)."""
    stats = device.memory_stats() or {}
    return stats.get("bytes_limit")


def check_budget(budget_gib: float | None) -> None:
    if budget_gib is not None and budget_gib <= 0:
        raise ConfigError(f"--device-memory {budget_gib}: give the memory of one device in GiB, e.g. 80")


def request_cpu_devices(count: int | None) -> None:
    """Checks ``--devices`` and, on a CPU host, fakes ``count`` devices (``SEARCH_FACTOR`` times as many,
    for the search of a mesh that fits). Once the backend is up (in-process use), the devices present
    must do."""
    if count is None:
        return
    if count < 1:
        raise ConfigError(f"--devices {count}: give the number of devices to plan for, e.g. 8")
    with contextlib.suppress(RuntimeError):
        jax.config.update("jax_num_cpu_devices", count * SEARCH_FACTOR)


@dataclasses.dataclass(frozen=True)
class Target:
    """What a plan is for: the config on its resolved mesh, its devices, and the memory of one (GiB;
    None when neither given nor reported)."""

    cfg: Config
    devices: list[jax.Device]
    budget_gib: float | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.cfg.mesh.shape)

    @property
    def platform(self) -> str:
        return self.devices[0].platform

    @property
    def budget(self) -> int | None:
        return None if self.budget_gib is None else int(self.budget_gib * GIB)


def target(cfg: Config, devices: int | None = None, device_memory_gib: float | None = None) -> Target:
    """``cfg`` planned on ``devices`` of those present (default: the mesh's count, or all of them for a
    mesh with a -1 axis), its mesh resolved for them, in ``device_memory_gib`` per device (default: what
    the device reports)."""
    present = jax.devices()
    count = devices or (len(present) if -1 in cfg.mesh.shape else math.prod(cfg.mesh.shape))
    if count > len(present):
        raise ConfigError(
            f"--devices {count}: only {len(present)} {present[0].platform} devices are present. Fix: plan "
            "on a CPU host in a fresh process (JAX_PLATFORMS=cpu streamdit plan ... --devices N)"
        )
    chosen = present[:count]
    budget_gib = device_memory_gib
    if budget_gib is None and (limit := device_memory_bytes(chosen[0])):
        budget_gib = limit / GIB
    return Target(with_mesh(cfg, cfg.mesh.resolved_shape(count)), chosen, budget_gib)


def format_target(target: Target, name: str) -> str:
    cfg = target.cfg
    return (
        f"planning {name}: mesh {target.shape} (data, fsdp, context, model) on {len(target.devices)} "
        f"{target.platform} devices, global batch {cfg.train.batch_size} (grad_accum "
        f"{cfg.train.grad_accum}), remat {cfg.model.remat}, dtype {cfg.model.dtype} ..."
    )


@dataclasses.dataclass(frozen=True)
class PlanReport:
    """A plan: the step's memory, whether it fits the budget, and what the searches found (a search
    that ran and found nothing leaves None; ``searched`` names those that ran)."""

    config: str
    platform: str
    step: StepMemory
    budget_gib: float | None = None
    largest_batch: StepMemory | None = None
    smallest_mesh: StepMemory | None = None
    searched: tuple[str, ...] = ()  # "largest_batch", "smallest_mesh"
    mesh_search_devices: int = 0  # the most devices the smallest-mesh search could use

    @property
    def fits(self) -> bool | None:
        """None without a budget."""
        return None if self.budget_gib is None else self.step.total <= self.budget_gib * GIB

    def to_dict(self) -> dict:
        """The JSON of ``streamdit plan --json``."""
        report = {"config": self.config, "platform": self.platform, "step": self.step.to_dict()}
        if self.budget_gib is not None:
            report |= {"device_memory_gib": self.budget_gib, "fits": self.fits}
        for name in self.searched:
            found = getattr(self, name)
            report[name] = found and found.to_dict()
        return report


def plan_step(target: Target, name: str) -> PlanReport:
    """Compiles the step of ``target`` and checks it against the budget (no search yet)."""
    step = step_memory(target.cfg, target.devices)
    return PlanReport(name, target.platform, step, target.budget_gib)


def search(report: PlanReport, target: Target, largest: bool = False) -> PlanReport:
    """The searches the fit calls for: the largest batch that fits when the step fits (or when
    ``largest``), the smallest mesh that fits when it does not (up to ``SEARCH_FACTOR`` times the
    planned devices, of those present). Without a budget, none."""
    if report.fits is None:
        return report
    if report.fits or largest:
        found = largest_batch(target.cfg, target.budget, target.devices)
        report = dataclasses.replace(
            report, largest_batch=found, searched=(*report.searched, "largest_batch")
        )
    if not report.fits:
        devices = jax.devices()[: len(target.devices) * SEARCH_FACTOR]
        found = smallest_fitting_mesh(target.cfg, target.budget, devices)
        report = dataclasses.replace(
            report, smallest_mesh=found, searched=(*report.searched, "smallest_mesh"),
            mesh_search_devices=len(devices),
        )  # fmt: skip
    return report


def format_fit(report: PlanReport) -> str:
    if report.budget_gib is None:
        return "give --device-memory GiB to check a fit (this device does not report its memory)"
    return f"{'fits' if report.fits else 'does NOT fit'} in {report.budget_gib:g} GiB per device"


def format_searches(report: PlanReport, target: Target) -> list[str]:
    """A line for each search that ran: what it found, or what to try."""
    lines = []
    if "largest_batch" in report.searched:
        largest = report.largest_batch
        lines.append(
            f"largest global batch that fits on {target.shape}: "
            + (f"{largest.batch_size} ({gib(largest.total)} per device)" if largest else "none")
        )
    if "smallest_mesh" in report.searched:
        smallest, batch = report.smallest_mesh, target.cfg.train.batch_size
        if smallest is None:
            remat = "" if target.cfg.model.remat == "full" else "remat (--config.model.remat=full), "
            lines.append(
                f"no mesh of up to {report.mesh_search_devices} devices (the fsdp axis grown) fits batch "
                f"{batch}: try {remat}a smaller batch (--largest-batch), gradient accumulation, the mesh's "
                "context axis, or fused attention (model.attention=cudnn on NVIDIA GPUs: plan it there)"
            )
        else:
            lines.append(
                f"smallest mesh that fits batch {batch}: {smallest.mesh} on {math.prod(smallest.mesh)} "
                f"devices, {gib(smallest.total)} per device"
            )
    return lines
