"""The optimizer: AdamW with linear warm-up and cosine decay, global-norm clipping, decay on kernels only."""

from __future__ import annotations

import jax
import optax

from streamdit_jax.config import OptimizerConfig


def learning_rate(cfg: OptimizerConfig, steps: int) -> optax.Schedule:
    """Linear warm-up to ``cfg.learning_rate``, then cosine decay to ``end_lr_factor`` of it at ``steps``."""
    warmup = min(cfg.warmup_steps, max(steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1),
        end_value=cfg.learning_rate * cfg.end_lr_factor,
    )


def _is_kernel(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: "kernel" in str(path[-1]), params)


def make_optimizer(cfg: OptimizerConfig, steps: int) -> optax.GradientTransformation:
    """Clipping (if ``grad_clip`` > 0), then AdamW; weight decay applies to kernels, not biases or norms."""
    adamw = optax.adamw(
        learning_rate(cfg, steps), b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=_is_kernel
    )
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adamw) if cfg.grad_clip > 0 else adamw
