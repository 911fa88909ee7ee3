"""Prompts into fixed-length token ids with a ``tokenizers`` tokenizer.json (no transformers).

Every prompt becomes exactly ``max_length`` ids: the tokenizer's special tokens (e.g. [CLS] ... [SEP], or
... </s>) around the prompt, cut to fit if needed, then padding. The padding and truncation that a
tokenizer.json may configure are switched off, so only the rules here apply.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class PromptTokenizer:
    """``tokenizer(prompts) -> (ids int32 [B, L], mask bool [B, L])`` as NumPy, with L = ``max_length``.

    A prompt longer than L keeps its first tokens and its special tokens (one warning per call names how
    many were cut). The empty prompt "" (the unconditional prompt of classifier-free guidance) is only
    its special tokens.
    """

    def __init__(self, path: str | Path, max_length: int, pad_id: int):
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_length = max_length
        self.pad_id = pad_id
        self.room = max_length - self.tokenizer.num_special_tokens_to_add(is_pair=False)
        if self.room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for text next to the special tokens")

    def __call__(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(prompts, str):
            raise TypeError("expected a list of prompts, got one string")
        ids = np.full((len(prompts), self.max_length), self.pad_id, np.int32)
        mask = np.zeros((len(prompts), self.max_length), bool)
        truncated = []
        for i, (prompt, encoding) in enumerate(
            zip(prompts, self.tokenizer.encode_batch(prompts, add_special_tokens=False), strict=True)
        ):
            if len(encoding.ids) > self.room:
                truncated.append(prompt)
                encoding.truncate(self.room)
            tokens = self.tokenizer.post_process(encoding).ids
            ids[i, : len(tokens)] = tokens
            mask[i, : len(tokens)] = True
        if truncated:
            warnings.warn(
                f"{len(truncated)} of {len(prompts)} prompts are longer than {self.max_length} tokens and "
                f"were truncated; the first: {truncated[0]!r}",
                stacklevel=3,
            )
        return ids, mask
