"""``streamdit bench train``: the StreamDiT training step of a preset on its mesh, on synthetic batches.

The step is the Trainer's own (the same jitted, sharded, donated program ``streamdit train`` runs), fed
one fixed random batch of latents and text states, so that data loading stays out of the timing. Every
step is waited for; the warm-up (compilation included) is left out of the statistics.
"""

from __future__ import annotations

import tempfile

import jax
import numpy as np

from streamdit_jax.bench.common import (
    device_info,
    peak_memory_gib,
    peak_throughput,
    step_peak_from_rss,
    time_calls,
)
from streamdit_jax.bench.flops import train_step_flops
from streamdit_jax.config import Config, ConfigError
from streamdit_jax.sharding import make_mesh
from streamdit_jax.train import Trainer
from streamdit_jax.train.flow_task import FlowTask

RSS_STEP_PEAK = "per device: the resident train state + the steps' rise of the process's peak RSS (VmHWM)"


class SyntheticExamples:
    """Batches of random latents and text states of a preset's shapes, in ExampleSource's interface."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def batch(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        cfg, length = self.cfg, self.cfg.text.max_length
        return {
            "latents": rng.standard_normal(
                (batch_size, *cfg.latent_grid, cfg.model.latent_channels), np.float32
            ),
            "text": 0.5 * rng.standard_normal((batch_size, length, cfg.model.text_width), np.float32),
            "text_mask": np.broadcast_to(np.arange(length) < min(12, length), (batch_size, length)).copy(),
        }

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int):
        del process, processes
        while True:
            yield self.batch(batch_size, seed)

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        del process, processes
        return [self.batch(batch_size, seed=i) for i in range(count)]


def bench_train(cfg: Config, steps: int = 10, warmup: int = 2, peak_tflops: float | None = None) -> dict:
    """Times ``steps`` optimizer steps of ``cfg.train`` on the mesh ``cfg.mesh`` after ``warmup`` ones."""
    if steps < 1 or warmup < 1:
        raise ConfigError(f"--steps {steps} --warmup {warmup}: both must be >= 1 (the first step compiles)")
    mesh = make_mesh(cfg.mesh)
    examples = SyntheticExamples(cfg)
    task = FlowTask(cfg, examples=examples)
    with tempfile.TemporaryDirectory(prefix="streamdit-bench-") as workdir:
        trainer = Trainer.for_stage(task, cfg, "teacher", workdir, mesh=mesh, progress=False)
        with trainer:
            batch = examples.batch(trainer.local_batch)
            step, first = time_calls(lambda: trainer.step(batch), jax.block_until_ready, steps, warmup)
            memory, memory_source = peak_memory_gib()
            if memory_source.startswith("host"):  # CPU: the train state plus the steps' rise of the RSS
                measured = step_peak_from_rss(lambda: trainer.state, lambda: trainer.step(batch), mesh.size)
                if measured is not None:
                    memory, memory_source = [measured], RSS_STEP_PEAK
    seconds = step["median"] / 1000.0
    flops = train_step_flops(cfg)
    peak, peak_source = peak_throughput(peak_tflops)
    tokens = cfg.train.batch_size * task.tokens_per_example
    return {
        "bench": "train",
        **device_info(),
        "mesh": dict(zip(mesh.axis_names, mesh.devices.shape, strict=True)),
        "resolution": list(cfg.data.resolution),
        "latent_grid": list(cfg.latent_grid),
        "batch_size": cfg.train.batch_size,
        "dtype": cfg.model.dtype,
        "remat": cfg.model.remat,
        "step_ms": step,
        "first_step_s": first,
        "tokens_per_s": tokens / seconds,
        "flops_per_step": flops,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "mfu": flops / seconds / (peak * mesh.devices.size),
        "peak_gib_per_device": memory,
        "peak_memory_source": memory_source,
        "warmup": warmup,
        "steps": steps,
    }
