"""Small building blocks: a linear map with logically named axes, norms, dtypes."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Axes = tuple[str | None, ...]


def dtype_of(name: str) -> jnp.dtype:
    return jnp.dtype(name)


def xavier_uniform(in_rank: int, out_rank: int) -> nnx.Initializer:
    """Glorot-uniform over a kernel whose first ``in_rank`` axes are inputs and last ``out_rank`` outputs."""
    return nnx.initializers.variance_scaling(
        1.0,
        "fan_avg",
        "uniform",
        in_axis=tuple(range(in_rank)),
        out_axis=tuple(range(in_rank, in_rank + out_rank)),
    )


class Linear(nnx.Module):
    """``y = x · W + b`` contracting the trailing ``in_shape`` axes of x into ``out_shape`` axes.

    ``axes`` names every kernel axis (inputs then outputs) for sharding; the bias takes the output names.
    """

    def __init__(
        self,
        in_shape: int | Sequence[int],
        out_shape: int | Sequence[int],
        axes: Axes,
        *,
        rngs: nnx.Rngs,
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        kernel_init: nnx.Initializer | None = None,
        use_bias: bool = True,
    ):
        self.in_shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
        self.out_shape = (out_shape,) if isinstance(out_shape, int) else tuple(out_shape)
        if len(axes) != len(self.in_shape) + len(self.out_shape):
            raise ValueError(f"axes {axes} do not name the kernel {self.in_shape + self.out_shape}")
        init = kernel_init or xavier_uniform(len(self.in_shape), len(self.out_shape))
        self.kernel = nnx.Param(
            nnx.with_partitioning(init, axes)(rngs.params(), self.in_shape + self.out_shape, param_dtype)
        )
        bias = None
        if use_bias:
            init_bias = nnx.with_partitioning(nnx.initializers.zeros_init(), axes[len(self.in_shape) :])
            bias = nnx.Param(init_bias(rngs.params(), self.out_shape, param_dtype))
        self.bias = bias
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        n = len(self.in_shape)
        if x.shape[x.ndim - n :] != self.in_shape:
            raise ValueError(f"Linear expects trailing axes {self.in_shape}, got input shape {x.shape}")
        y = jnp.tensordot(x.astype(self.dtype), self.kernel[...].astype(self.dtype), axes=n)
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
    """LayerNorm without affine parameters, computed in float32."""
    x = x.astype(jnp.float32)
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


class LayerNorm(nnx.Module):
    """LayerNorm with a learned scale and bias over the last axis (float32)."""

    def __init__(self, features: int, axis_name: str, *, eps: float, rngs: nnx.Rngs, param_dtype: jnp.dtype):
        self.scale = nnx.Param(
            nnx.with_partitioning(nnx.initializers.ones_init(), (axis_name,))(
                rngs.params(), (features,), param_dtype
            )
        )
        self.bias = nnx.Param(
            nnx.with_partitioning(nnx.initializers.zeros_init(), (axis_name,))(
                rngs.params(), (features,), param_dtype
            )
        )
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.eps) * self.scale[...].astype(jnp.float32) + self.bias[...].astype(
            jnp.float32
        )


class RMSNorm(nnx.Module):
    """RMSNorm with a learned scale over the trailing ``shape`` axes (all heads together, as in Wan)."""

    def __init__(
        self, shape: Sequence[int], axes: Axes, *, eps: float, rngs: nnx.Rngs, param_dtype: jnp.dtype
    ):
        self.shape = tuple(shape)
        self.scale = nnx.Param(
            nnx.with_partitioning(nnx.initializers.ones_init(), axes)(rngs.params(), self.shape, param_dtype)
        )
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        reduce = tuple(range(x.ndim - len(self.shape), x.ndim))
        x32 = x.astype(jnp.float32)
        ms = jnp.square(x32).mean(reduce, keepdims=True)
        return (x32 * jax.lax.rsqrt(ms + self.eps) * self.scale[...].astype(jnp.float32)).astype(x.dtype)
