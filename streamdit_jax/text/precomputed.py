"""Text token states read from ``streamdit encode`` shards instead of running a text encoder."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from streamdit_jax.data.latents import EMPTY_PROMPT, SHARD_SUFFIX, LatentShards


class PrecomputedText:
    """``encoder(prompts) -> (tokens, mask)`` for prompts that are captions of the encoded dataset (or "").

    Lookups go through the shards' manifests, so building the index reads no record.
    """

    def __init__(self, directory: str | Path):
        self.shards = LatentShards(directory)
        self.index: dict[str, int] = {}
        offset = 0
        for path in self.shards.paths:
            manifest = json.loads(path.with_name(path.name.removesuffix(SHARD_SUFFIX) + ".json").read_text())
            for caption, record in manifest["captions"].items():
                self.index.setdefault(caption, offset + record)
            offset += manifest["clips"]
        empty = np.load(self.shards.directory / EMPTY_PROMPT)
        self.empty = (empty["text"].astype(np.float32), empty["text_mask"])
        self.max_length, self.width = self.empty[0].shape

    def _lookup(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        if prompt == "":
            return self.empty
        if prompt not in self.index:
            known = ", ".join(repr(c) for c in list(self.index)[:3])
            raise KeyError(
                f"{prompt!r} is not a caption of the encoded dataset in {self.shards.source} (e.g. "
                f"{known}); encode new prompts with the preset's text encoder"
            )
        record = self.shards[self.index[prompt]]
        return np.asarray(record["text"], np.float32), np.asarray(record["text_mask"], bool)

    def __call__(self, prompts: list[str]) -> tuple[jnp.ndarray, jnp.ndarray]:
        tokens, masks = zip(*(self._lookup(p) for p in prompts), strict=True)
        return jnp.asarray(np.stack(tokens)), jnp.asarray(np.stack(masks))
