"""Precomputed training examples: ArrayRecord shards of VAE latents, text token states and captions.

Each record is a msgpack'd dict: ``latents`` float16 [F, h, w, C] (normalised by the VAE's statistics),
``text`` float16 [L, Dt], ``text_mask`` bool [L], ``caption`` str, ``video`` str (source file) and
``clip`` int (its index in that video). ``streamdit encode`` writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flax import serialization

from streamdit_jax.storage import local_copy, workpath

SHARD_SUFFIX = ".array_record"
EMPTY_PROMPT = "empty_prompt.npz"  # the text encoder's states of "" (CFG's unconditional branch)


def pack(record: dict[str, Any]) -> bytes:
    return serialization.msgpack_serialize(record)


def unpack(data: bytes) -> dict[str, Any]:
    return serialization.msgpack_restore(data)


class LatentShards:
    """A random-access source over every complete shard in ``directory`` (for grain pipelines).

    ArrayRecord reads local files: the shards of a bucket folder are read from a local copy
    (``storage.local_copy``), fetched once."""

    def __init__(self, directory: str | Path):
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        self.source = workpath(directory)
        self.directory = local_copy(self.source)
        self.paths = sorted(self.directory.glob(f"*{SHARD_SUFFIX}"))
        if not self.paths:
            raise FileNotFoundError(
                f"no {SHARD_SUFFIX} shards in {self.source}: write them with `streamdit encode`"
            )
        self._source = ArrayRecordDataSource([str(p) for p in self.paths])

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return unpack(self._source[index])


def training_example(record: dict[str, Any], position: int = 0) -> dict[str, np.ndarray]:
    """The arrays a training step consumes, as float32 / bool (``position`` is unused)."""
    del position
    return {
        "latents": np.asarray(record["latents"], np.float32),
        "text": np.asarray(record["text"], np.float32),
        "text_mask": np.asarray(record["text_mask"], bool),
    }
