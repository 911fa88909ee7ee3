"""Grain pipelines: per-process slices of a random-access source, shuffled, repeated and batched."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

# Bounded read-ahead: sources render or decode on the fly and must not run far ahead of training.
READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def train_batches(
    source: Sequence[Any],
    transform: Callable[[Any], dict[str, np.ndarray]],
    batch_size: int,
    seed: int,
    process: int = 0,
    processes: int = 1,
) -> grain.IterDataset:
    """An endless, checkpointable stream of this process's batches of ``transform(source[i])``."""
    dataset = grain.MapDataset.source(source).seed(seed).shuffle().repeat()[process::processes]
    return dataset.map(transform).batch(batch_size, drop_remainder=True).to_iter_dataset(READ_OPTIONS)


def fixed_batches(
    source: Sequence[Any],
    transform: Callable[[Any], dict[str, np.ndarray]],
    batch_size: int,
    count: int,
    process: int = 0,
    processes: int = 1,
) -> list[dict[str, np.ndarray]]:
    """``count`` fixed batches of this process: the first examples of ``source``, sliced per process."""
    examples = [transform(source[i]) for i in range(process, count * batch_size * processes, processes)]
    return [
        {
            key: np.stack([ex[key] for ex in examples[b * batch_size : (b + 1) * batch_size]])
            for key in examples[0]
        }
        for b in range(count)
    ]
