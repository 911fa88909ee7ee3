"""The paper's streaming fine-tuning recipe, shared by the presets that offer it as a variant
(``streamdit_4b:finetune,stage=S``, ``wan2_1_1_3b:streamdit,stage=S``; docs/training.md). Not a preset
itself (its name starts with ``_``); ``streamdit_jax.config`` re-exports ``PAPER_STAGES`` and
``paper_stage``."""

import ml_collections

from streamdit_jax.config import ConfigError

# The paper's three streaming fine-tuning stages (StreamDiT §5.1), each 10K iterations: (the data set the
# stage trains on, its learning rate).
PAPER_STAGES = {
    1: ("high-quality set", 1e-4), 2: ("large pretraining set", 1e-5), 3: ("high-quality set", 1e-5)
}  # fmt: skip


def paper_stage(c: ml_collections.ConfigDict, stage: int) -> None:
    """Sets a preset ConfigDict to stage ``stage`` (1, 2 or 3) of :data:`PAPER_STAGES`: 10K steps at the
    stage's learning rate (a 1,000-step warm-up in stage 1 only) with the chunk mixture {1, 2, 4, 8, 16}
    and a uniform (text-to-video) share of 0.1. The data and the start (``--init``: the converted model,
    then the previous stage's run) come from the command line; docs/training.md walks through it."""
    if stage not in PAPER_STAGES:
        raise ConfigError(f"variant stage={stage}: the paper has stages {sorted(PAPER_STAGES)}. Fix: stage=1")
    c.train.steps = 10_000
    c.optimizer.learning_rate = PAPER_STAGES[stage][1]
    c.optimizer.warmup_steps = 1000 if stage == 1 else 0
    c.buffer.chunk_sizes = (1, 2, 4, 8, 16)
    c.buffer.chunk_weights = (1.0,) * 5
    c.buffer.uniform_share = 0.1  # INFERRED: the 30B appendix's "T2V mix ratio" (0.1 to 0.5)
