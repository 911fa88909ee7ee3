"""Grain pipelines: this process's share of shuffled, repeated global batches.

Global batch b holds items [b·G, (b+1)·G) of the (shuffled, repeated) source, G = L·P for P processes
of L examples each; process p reads the block [b·G + p·L, b·G + (p+1)·L). So the global batch, and every
per-example random choice keyed by the item's global position, is the same for any process count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

# Bounded read-ahead: sources render or decode on the fly and must not run far ahead of training.
READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)

# transform(example, position) -> arrays; position is the item's index in the global stream.
Transform = Callable[[Any, int], dict[str, np.ndarray]]


def global_position(index: int, local_batch: int, process: int, processes: int) -> int:
    """The global stream position of this process's ``index``-th item."""
    batch, offset = divmod(index, local_batch)
    return batch * local_batch * processes + process * local_batch + offset


def train_batches(
    source: Sequence[Any] | grain.MapDataset,
    transform: Transform,
    batch_size: int,
    seed: int,
    process: int = 0,
    processes: int = 1,
) -> grain.IterDataset:
    """An endless, checkpointable stream of this process's batches of ``transform(item, position)``."""
    data = source if isinstance(source, grain.MapDataset) else grain.MapDataset.source(source)
    stream = data.seed(seed).shuffle().repeat()

    def read(index: int) -> dict[str, np.ndarray]:
        position = global_position(index, batch_size, process, processes)
        return transform(stream[position], position)

    local = grain.MapDataset.range(len(stream) // processes).map(read)
    return local.batch(batch_size, drop_remainder=True).to_iter_dataset(READ_OPTIONS)


def fixed_batches(
    source: Sequence[Any],
    transform: Transform,
    batch_size: int,
    count: int,
    process: int = 0,
    processes: int = 1,
) -> list[dict[str, np.ndarray]]:
    """``count`` fixed batches of this process: its blocks of the first ``count`` global batches."""
    batches = []
    for b in range(count):
        positions = [
            global_position(b * batch_size + i, batch_size, process, processes) for i in range(batch_size)
        ]
        examples = [transform(source[p], p) for p in positions]
        batches.append({key: np.stack([ex[key] for ex in examples]) for key in examples[0]})
    return batches
