"""Segment-wise multistep distillation (docs/training.md): one unguided forward pass per emitted chunk."""

from streamdit_jax.distill.run import distill_trainer
from streamdit_jax.distill.task import DistillTask, schemes, student_config

__all__ = ["DistillTask", "distill_trainer", "schemes", "student_config"]
