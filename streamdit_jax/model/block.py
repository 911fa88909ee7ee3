"""The StreamDiT block (Wan 2.1 layout) with per-frame adaLN modulation and windowed self-attention."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.config import ModelConfig
from streamdit_jax.model.attention import attend, window_attention
from streamdit_jax.model.embeddings import apply_rope
from streamdit_jax.model.layers import LayerNorm, Linear, RMSNorm, dtype_of, layer_norm
from streamdit_jax.sharding import axes, constrain

# Logical axes of the token grid [B, F, H, W, D] at block boundaries.
GRID_AXES = (axes.BATCH, axes.ACT_FRAMES, axes.ACT_HEIGHT, axes.ACT_WIDTH, axes.ACT_EMBED)


class Attention(nnx.Module):
    """q/k/v/out projections with q/k RMSNorm across all heads."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, n, k = cfg.width, cfg.num_heads, cfg.head_dim
        dtype, param_dtype = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        proj_axes = (axes.EMBED, axes.HEADS, axes.HEAD_DIM)
        for name in ("q", "k", "v"):
            setattr(self, name, Linear(d, (n, k), proj_axes, rngs=rngs, dtype=dtype, param_dtype=param_dtype))
        self.out = Linear(
            (n, k),
            d,
            (axes.HEADS, axes.HEAD_DIM, axes.EMBED),
            rngs=rngs,
            dtype=dtype,
            param_dtype=param_dtype,
        )
        norm_axes = (axes.HEADS, axes.HEAD_DIM)
        self.q_norm = RMSNorm((n, k), norm_axes, eps=cfg.eps, rngs=rngs, param_dtype=param_dtype)
        self.k_norm = RMSNorm((n, k), norm_axes, eps=cfg.eps, rngs=rngs, param_dtype=param_dtype)


class MLP(nnx.Module):
    """Linear -> GELU (tanh) -> Linear over the token grid [B, F, H, W, D]."""

    def __init__(self, width: int, hidden: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.fc1 = Linear(
            width, hidden, (axes.EMBED, axes.MLP), rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )
        self.fc2 = Linear(
            hidden, width, (axes.MLP, axes.EMBED), rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = constrain(jax.nn.gelu(self.fc1(x), approximate=True), (*GRID_AXES[:-1], axes.ACT_MLP))
        return self.fc2(h)


class Block(nnx.Module):
    """LayerNorm -> shift/scale -> windowed self-attention -> gate; LayerNorm -> cross-attention;
    LayerNorm -> shift/scale -> MLP -> gate. Shift/scale/gate are per latent frame."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        self.cfg = cfg
        self.self_attn = Attention(cfg, rngs=rngs)
        self.cross_attn = Attention(cfg, rngs=rngs)
        self.cross_norm = (
            LayerNorm(cfg.width, axes.EMBED, eps=cfg.eps, rngs=rngs, param_dtype=param_dtype)
            if cfg.cross_attn_norm
            else None
        )
        self.mlp = MLP(cfg.width, cfg.mlp_width, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        init = nnx.with_partitioning(nnx.initializers.zeros_init(), (axes.MODULATION, axes.EMBED))
        self.modulation = nnx.Param(init(rngs.params(), (6, cfg.width), param_dtype))

    def __call__(
        self,
        x: jax.Array,
        mod: jax.Array,
        context: jax.Array,
        context_mask: jax.Array,
        rope: tuple[jax.Array, jax.Array],
        shifted: bool,
    ) -> jax.Array:
        """x [B, F, H, W, D] float32, mod [B, F, 6, D], context [B, L, D], context_mask [B, L] bool."""
        cfg, dtype = self.cfg, dtype_of(self.cfg.dtype)
        e = (self.modulation[...].astype(jnp.float32) + mod)[:, :, :, None, None, :]  # [B, F, 6, 1, 1, D]
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (e[:, :, i] for i in range(6))

        h = (layer_norm(x, cfg.eps) * (1 + scale_a) + shift_a).astype(dtype)
        x = x + self._self_attention(h, rope, shifted).astype(jnp.float32) * gate_a

        h = (self.cross_norm(x) if self.cross_norm is not None else x).astype(dtype)
        x = x + self._cross_attention(h, context, context_mask).astype(jnp.float32)

        h = (layer_norm(x, cfg.eps) * (1 + scale_m) + shift_m).astype(dtype)
        return x + self.mlp(h).astype(jnp.float32) * gate_m

    def _self_attention(self, h: jax.Array, rope: tuple[jax.Array, jax.Array], shifted: bool) -> jax.Array:
        a = self.self_attn
        q = apply_rope(a.q_norm(a.q(h)), *rope)
        k = apply_rope(a.k_norm(a.k(h)), *rope)
        out = window_attention(q, k, a.v(h), self.cfg.window, shifted, self.cfg.attention)
        return a.out(out)

    def _cross_attention(self, h: jax.Array, context: jax.Array, context_mask: jax.Array) -> jax.Array:
        a = self.cross_attn
        b, f, hh, ww, _ = h.shape
        q = a.q_norm(a.q(h)).reshape(b, f * hh * ww, self.cfg.num_heads, self.cfg.head_dim)
        k, v = a.k_norm(a.k(context)), a.v(context)
        out = attend(q, k, v, context_mask[:, None, None, :], self.cfg.attention)
        # A prompt with no valid token contributes nothing (rather than an average of its padding).
        out = out * context_mask.any(-1)[:, None, None, None].astype(out.dtype)
        return a.out(out.reshape(b, f, hh, ww, *out.shape[-2:]))
