"""A model summary from shapes alone (jax.eval_shape): parameter counts per module, nothing allocated."""

from __future__ import annotations

import math
from collections import defaultdict

import jax
from flax import nnx

from streamdit_jax.config import Config, ModelConfig
from streamdit_jax.model import abstract_model


def module_table(model_cfg: ModelConfig) -> list[tuple[str, int]]:
    """(module path, parameter count) rows; stacked blocks are split one level further."""
    _, abstract = abstract_model(model_cfg)
    counts: dict[str, int] = defaultdict(int)
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(abstract)):
        keys = [str(getattr(k, "key", k)) for k in path]
        depth = 2 if keys[0] == "blocks" else 1
        counts["/".join(keys[:depth])] += math.prod(leaf.shape)
    return sorted(counts.items(), key=lambda kv: (not kv[0].startswith("blocks"), kv[0]))


def format_summary(model_cfg: ModelConfig, cfg: Config | None = None, title: str = "StreamDiT") -> str:
    """The per-module table followed by the line ``parameters: <int>``."""
    rows = module_table(model_cfg)
    total = sum(n for _, n in rows)
    m = model_cfg
    lines = [
        f"{title}: width {m.width}, heads {m.num_heads} x {m.head_dim}, mlp {m.mlp_width}, "
        f"layers {m.num_layers}, text width {m.text_width}, latent channels {m.latent_channels}",
        f"  window {m.window or 'full'}, compute {m.dtype}, params {m.param_dtype}, remat {m.remat}, "
        f"attention {m.attention}",
    ]
    if cfg is not None:
        k, n, c, s = cfg.scheme
        grid = cfg.token_grid
        lines.append(
            f"  video {cfg.data.resolution[0]}x{cfg.data.resolution[1]} -> token grid {grid} = "
            f"{math.prod(grid)} tokens; scheme K={k} N={n} c={c} s={s}; mesh {cfg.mesh.shape}"
        )
    width = max(len(name) for name, _ in rows) + 2
    lines.append(f"{'module':<{width}}{'parameters':>16}{'share':>9}")
    for name, count in rows:
        stacked = f"  ({m.num_layers} layers)" if name.startswith("blocks/") else ""
        lines.append(f"{name:<{width}}{count:>16,}{100 * count / total:>8.1f}%{stacked}")
    lines.append(f"parameters: {total}")
    return "\n".join(lines)
