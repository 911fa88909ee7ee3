"""Text encoders: prompts into token states that condition the DiT."""

from typing import Protocol, runtime_checkable

import jax

from streamdit_jax.config import TextConfig
from streamdit_jax.text.minilm import MiniLM
from streamdit_jax.text.precomputed import PrecomputedText
from streamdit_jax.text.umt5 import UMT5


@runtime_checkable
class TextEncoder(Protocol):
    """``encoder(prompts) -> (tokens [B, L, Dt] float32, mask [B, L] bool)``; "" is the empty prompt."""

    width: int  # Dt
    max_length: int  # L

    def __call__(self, prompts: list[str]) -> tuple[jax.Array, jax.Array]: ...


def build_encoder(cfg: TextConfig) -> TextEncoder:
    """The text encoder a config names (weights read from disk, nothing downloaded)."""
    if cfg.encoder == "minilm":
        return MiniLM.from_package(cfg.max_length)
    if not cfg.path:
        raise FileNotFoundError(
            "text.encoder='umt5' needs text.path: a transformers UMT5EncoderModel folder or a Wan diffusers "
            "pipeline folder (e.g. --config.text.path=/models/Wan2.1-T2V-1.3B-Diffusers)"
        )
    return UMT5.from_pretrained(cfg.path, cfg.max_length, cfg.dtype)


__all__ = ["UMT5", "MiniLM", "PrecomputedText", "TextEncoder", "build_encoder"]
