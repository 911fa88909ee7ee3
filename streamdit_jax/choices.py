"""What the config validates and the model implements, in one module that both import.

``config`` checks names and window geometry against these; ``model`` builds on them. Keeping them here
(and not in ``model/``) means the config never imports the model, so there is no import cycle.
"""

from __future__ import annotations

# Attention backends selectable with ``model.attention``. ``model.attention.register_backend`` adds the
# implementation of each (and the name of any backend registered later).
ATTENTION_BACKENDS: set[str] = {"xla", "cudnn"}

# Autoencoder kinds selectable with ``autoencoder.kind``. ``autoencoder.registry.register_autoencoder``
# adds the implementation of each (and the name of any kind registered later).
AUTOENCODER_KINDS: set[str] = {"vae", "tiny", "patch", "patch_mlp"}

# What the transformer's output is (``model.prediction``): the velocity ``noise - x`` or the clean
# latents x (x-prediction); ``flow.prediction`` turns either into a velocity.
PREDICTIONS = ("velocity", "x0")

# Noise-level densities selectable with ``buffer.level_density`` (``flow.noise`` draws each within every
# chunk's range of sigma); the index of a name is its code in ``flow.Mixture``.
LEVEL_DENSITIES = ("uniform", "logit_normal", "shifted")

# What makes a stream's frames (``--decoder``): the VAE's decoder, or the tiny one distilled from it.
DECODERS = ("full", "tiny")

# Rematerialisation policies selectable with ``model.remat`` (``model.dit`` maps each to JAX's policy).
REMAT_POLICIES = ("none", "full", "dots")


def window_shifts(grid: tuple[int, int, int], window: tuple[int, int, int]) -> tuple[int, int, int]:
    """Per-axis shift of a shifted block: half a window, or 0 where the window spans the axis."""
    return tuple(w // 2 if w < g else 0 for g, w in zip(grid, window, strict=True))
