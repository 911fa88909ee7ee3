"""A model summary from shapes alone (jax.eval_shape): parameter counts per module, nothing allocated."""

from __future__ import annotations

import math
from collections import defaultdict

import jax
from flax import nnx

from streamdit_jax.autoencoder import TinyDecoder, build_autoencoder
from streamdit_jax.config import AutoencoderConfig, Config, ModelConfig, TinyDecoderConfig
from streamdit_jax.model import abstract_model


def module_table(params: nnx.State, split: str | None = None) -> list[tuple[str, int]]:
    """(module path, parameter count) rows; the top-level module ``split`` is split one level further."""
    counts: dict[str, int] = defaultdict(int)
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(params)):
        keys = [str(getattr(k, "key", k)) for k in path]
        depth = 2 if keys[0] == split else 1
        counts["/".join(keys[:depth])] += math.prod(leaf.shape)
    return sorted(counts.items(), key=lambda kv: (not kv[0].startswith(split or "\0"), kv[0]))


def _table(rows: list[tuple[str, int]], stacked: str = "") -> list[str]:
    total = sum(n for _, n in rows)
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'module':<{width}}{'parameters':>16}{'share':>9}"]
    for name, count in rows:
        note = stacked if stacked and name.startswith("blocks/") else ""
        lines.append(f"{name:<{width}}{count:>16,}{100 * count / total:>8.1f}%{note}")
    lines.append(f"parameters: {total}")
    return lines


def format_autoencoder_summary(cfg: AutoencoderConfig, title: str = "autoencoder") -> str:
    """The autoencoder's per-module table followed by the line ``parameters: <int>``."""
    autoencoder = nnx.eval_shape(lambda: build_autoencoder(cfg, nnx.Rngs(0)))
    layout = (
        f"{cfg.latent_channels} latent channels, {cfg.temporal_compression}x time, "
        f"{cfg.spatial_compression}x space"
    )
    if cfg.kind == "patch":
        return f"{title}: patch autoencoder ({layout}), no weights\nparameters: 0"
    head = (
        f"{title}: {cfg.kind} autoencoder, base width {cfg.base_dim} x {cfg.dim_mult}, {cfg.num_res_blocks} "
        f"blocks a stage, {layout}"
    )
    return "\n".join([head, *_table(module_table(nnx.state(autoencoder, nnx.Param)))])


def format_tiny_decoder_summary(cfg: TinyDecoderConfig, title: str = "TinyDecoder") -> str:
    """The tiny decoder's per-module table followed by the line ``parameters: <int>``."""
    decoder = nnx.eval_shape(lambda: TinyDecoder(cfg, rngs=nnx.Rngs(0)))
    head = (
        f"{title}: width {cfg.channels} halving over {cfg.stages} stages, {cfg.blocks} memory block(s) a "
        f"stage, for the VAE of fingerprint {cfg.vae_fingerprint or '(none)'}"
    )
    return "\n".join([head, *_table(module_table(nnx.state(decoder, nnx.Param)))])


def format_summary(model_cfg: ModelConfig, cfg: Config | None = None, title: str = "StreamDiT") -> str:
    """The per-module table followed by the line ``parameters: <int>``."""
    rows = module_table(abstract_model(model_cfg)[1], split="blocks")
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
    lines += _table(rows, stacked=f"  ({m.num_layers} layers)")
    return "\n".join(lines)
