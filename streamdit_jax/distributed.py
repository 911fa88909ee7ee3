"""Multi-host start-up: ``jax.distributed.initialize`` before anything creates a JAX backend.

Three ways in, checked in this order:

- ``STREAMDIT_COORDINATOR=host:port``, ``STREAMDIT_NUM_PROCESSES``, ``STREAMDIT_PROCESS_ID`` (set by
  ``launch/local.sh`` and usable anywhere): explicit; on CPU the collectives go through gloo.
- a cluster launcher JAX detects by itself: SLURM with more than one task, a multi-worker TPU VM slice,
  Open MPI; then ``jax.distributed.initialize()`` reads the cluster's own variables.
- neither: one process, nothing to do.
"""

from __future__ import annotations

import os

import jax

COORDINATOR, NUM_PROCESSES, PROCESS_ID = (
    "STREAMDIT_COORDINATOR",
    "STREAMDIT_NUM_PROCESSES",
    "STREAMDIT_PROCESS_ID",
)


def launched_by_cluster(env: dict[str, str] | None = None) -> bool:
    """Whether a multi-process cluster launcher started this process."""
    env = os.environ if env is None else env
    return (
        int(env.get("SLURM_NTASKS", "1")) > 1
        or "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )


def initialize() -> None:
    """Joins the multi-process job this process belongs to, if any (idempotent)."""
    if jax.distributed.is_initialized():
        return
    coordinator = os.environ.get(COORDINATOR)
    if coordinator:
        try:
            processes, process = int(os.environ[NUM_PROCESSES]), int(os.environ[PROCESS_ID])
        except (KeyError, ValueError) as e:
            raise ValueError(
                f"{COORDINATOR} is set, so {NUM_PROCESSES} and {PROCESS_ID} must be integers too ({e})"
            ) from e
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, processes, process)
    elif launched_by_cluster():
        jax.distributed.initialize()
