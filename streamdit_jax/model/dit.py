"""StreamDiT: an adaLN video DiT with a per-latent-frame time embedding and shifted 3D window attention.

The block layout is Wan 2.1's, so diffusers ``WanTransformer3DModel`` weights convert into it
(``streamdit_jax.convert.wan_transformer``). Layers are stacked on a leading axis and run with
``lax.scan``; when windows shift, the scan steps over (unshifted, shifted) pairs so that the shift
stays static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from streamdit_jax.choices import window_shifts
from streamdit_jax.config import ModelConfig
from streamdit_jax.model.attention import resolve_window
from streamdit_jax.model.block import GRID_AXES, Block
from streamdit_jax.model.embeddings import patchify, rope_tables, timestep_embedding, unpatchify
from streamdit_jax.model.layers import Linear, dtype_of, layer_norm
from streamdit_jax.sharding import axes, constrain

_NO_REMAT = object()
REMAT_POLICIES = {  # JAX's policy for each of choices.REMAT_POLICIES
    "none": _NO_REMAT,  # keep every activation
    "full": jax.checkpoint_policies.nothing_saveable,  # recompute each layer in the backward pass
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep weight matmul outputs
}

TIME_SCALE = 1000.0  # the time embedding takes 1000·sigma, as Wan does


class ConditionMLP(nnx.Module):
    """Linear -> activation -> Linear into the model width (the time and text embedders)."""

    def __init__(self, features: int, width: int, in_axis: str, activation, *, dtype, param_dtype, rngs):
        self.fc1 = Linear(
            features, width, (in_axis, axes.EMBED), rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )
        self.fc2 = Linear(width, width, (None, axes.EMBED), rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.activation(self.fc1(x)))


def _gelu_tanh(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=True)


class StreamDiT(nnx.Module):
    """``model(latents [B,F,h,w,C], sigma [B,F], text [B,L,Dt], text_mask [B,L] bool) -> velocity``.

    sigma is the per-latent-frame noise level in [0, 1] (1 = pure noise); the velocity is ``noise - x``.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        # Parameters keep their logical axis names as metadata; they are placed on devices by
        # jit(out_shardings=...) in functional.init_params, never eagerly (so trees always match).
        with nnx.use_eager_sharding(False):
            self._build(cfg, rngs)

    def _build(self, cfg: ModelConfig, rngs: nnx.Rngs) -> None:
        self.cfg = cfg
        d = cfg.width
        dtype, param_dtype = dtype_of(cfg.dtype), dtype_of(cfg.param_dtype)
        f32 = jnp.float32
        self.patch_embed = Linear(
            cfg.patch_features, d, (axes.PATCH, axes.EMBED), rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )
        # Time conditioning stays in float32 (as Wan keeps it).
        self.time_embed = ConditionMLP(
            cfg.freq_dim, d, axes.TIME_FREQ, jax.nn.silu, dtype=f32, param_dtype=param_dtype, rngs=rngs
        )
        self.time_proj = Linear(
            d,
            (6, d),
            (None, axes.MODULATION, axes.EMBED),
            rngs=rngs,
            dtype=f32,
            param_dtype=param_dtype,
            kernel_init=nnx.initializers.zeros_init(),
        )
        self.text_embed = ConditionMLP(
            cfg.text_width, d, axes.TEXT_EMBED, _gelu_tanh, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        # The prompt's mean token state into the time embedding (float32, as time), when asked for.
        self.pooled_text_embed = nnx.data(
            ConditionMLP(cfg.text_width, d, axes.TEXT_EMBED, jax.nn.silu, dtype=f32, param_dtype=param_dtype,
                         rngs=rngs) if cfg.pooled_text else None
        )  # fmt: skip

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: axes.LAYERS})
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(cfg, rngs=rngs)

        self.blocks = make_blocks(rngs)
        init = nnx.with_partitioning(nnx.initializers.zeros_init(), (axes.MODULATION, axes.EMBED))
        self.head_modulation = nnx.Param(init(rngs.params(), (2, d), param_dtype))
        self.head = Linear(
            d,
            cfg.patch_features,
            (axes.EMBED, axes.PATCH),
            rngs=rngs,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=nnx.initializers.zeros_init(),
        )

    def __call__(
        self, latents: jax.Array, sigma: jax.Array, text: jax.Array, text_mask: jax.Array
    ) -> jax.Array:
        cfg = self.cfg
        self._check_inputs(latents, sigma, text, text_mask)
        x = patchify(latents, cfg.patch_size)
        grid = x.shape[1:4]
        x = constrain(self.patch_embed(x).astype(jnp.float32), GRID_AXES)

        t = timestep_embedding(TIME_SCALE * sigma, cfg.freq_dim)  # [B, F, freq]
        temb = self.time_embed(t)  # [B, F, D]
        if self.pooled_text_embed is not None:
            weights = text_mask.astype(jnp.float32)[:, :, None]
            pooled = jnp.sum(text.astype(jnp.float32) * weights, 1) / jnp.maximum(jnp.sum(weights, 1), 1.0)
            temb = temb + self.pooled_text_embed(pooled)[:, None, :]  # [B, 1, D]: every frame
        mod = self.time_proj(jax.nn.silu(temb))  # [B, F, 6, D]
        context = constrain(self.text_embed(text), (axes.BATCH, axes.ACT_LENGTH, axes.ACT_EMBED))

        rope = rope_tables(grid, cfg.head_dim, cfg.rope_theta)  # once, outside the layer scan
        x = self._run_blocks(x, mod, context, text_mask.astype(bool), rope, grid)

        e = (self.head_modulation[...].astype(jnp.float32) + temb[:, :, None, :])[:, :, :, None, None, :]
        h = layer_norm(x, cfg.eps) * (1 + e[:, :, 1]) + e[:, :, 0]
        out = self.head(h.astype(dtype_of(cfg.dtype))).astype(jnp.float32)
        return unpatchify(out, cfg.patch_size)

    def _run_blocks(self, x, mod, context, context_mask, rope, grid) -> jax.Array:
        cfg = self.cfg
        shifts = window_shifts(grid, resolve_window(grid, cfg.window))
        period = 2 if any(shifts) else 1
        if cfg.num_layers % period:
            raise ValueError(
                f"model.num_layers={cfg.num_layers} is odd, but windows {cfg.window} shift on the token grid "
                f"{grid}; shifted windows alternate and need an even number of layers"
            )
        graphdef, stacked = nnx.split(self.blocks)
        grouped = jax.tree.map(lambda a: a.reshape(cfg.num_layers // period, period, *a.shape[1:]), stacked)

        def group(x: jax.Array, params) -> tuple[jax.Array, None]:
            for j in range(period):
                block = nnx.merge(graphdef, jax.tree.map(lambda a, j=j: a[j], params))
                x = constrain(block(x, mod, context, context_mask, rope, shifted=j == 1), GRID_AXES)
            return x, None

        policy = REMAT_POLICIES[cfg.remat]
        if policy is not _NO_REMAT:
            group = jax.checkpoint(group, policy=policy, prevent_cse=False)
        x, _ = jax.lax.scan(group, x, grouped)
        return x

    def _check_inputs(self, latents, sigma, text, text_mask) -> None:
        cfg = self.cfg
        if latents.ndim != 5 or latents.shape[-1] != cfg.latent_channels:
            raise ValueError(
                f"latents must be [B, F, h, w, C={cfg.latent_channels}] (channels last), got {latents.shape}"
            )
        b, f, h, w, _ = latents.shape
        if any(n % p for n, p in zip((f, h, w), cfg.patch_size, strict=True)):
            raise ValueError(f"latent grid {(f, h, w)} is not divisible by model.patch_size={cfg.patch_size}")
        if sigma.shape != (b, f):
            raise ValueError(f"sigma must be per latent frame [B={b}, F={f}], got {sigma.shape}")
        if text.ndim != 3 or text.shape[0] != b or text.shape[-1] != cfg.text_width:
            raise ValueError(f"text must be [B={b}, L, Dt={cfg.text_width}], got {text.shape}")
        if text_mask.shape != text.shape[:2]:
            raise ValueError(f"text_mask must be [B, L]={text.shape[:2]}, got {text_mask.shape}")
