"""Filling a model from a checkpoint's named tensors through an explicit name mapping."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from streamdit_jax.convert.wan import ConversionError

# source tensor name -> (our parameter path, transform of the source array)
Mapping = dict[str, tuple[tuple[Any, ...], Callable[[np.ndarray], np.ndarray]]]


def torch_linear(
    src: str, dst: tuple[Any, ...], in_shape: tuple, out_shape: tuple, bias: bool = True
) -> Mapping:
    """torch Linear (weight [out, in], bias [out]) -> our kernel [*in_shape, *out_shape] and bias."""
    mapping: Mapping = {f"{src}.weight": ((*dst, "kernel"), lambda w: w.T.reshape(*in_shape, *out_shape))}
    if bias:
        mapping[f"{src}.bias"] = ((*dst, "bias"), lambda b: b.reshape(out_shape))
    return mapping


def load_weights(
    abstract: nnx.Module,
    tensors: dict[str, np.ndarray],
    mapping: Mapping,
    ignored: Collection[str] = (),
) -> nnx.Module:
    """The abstract model (from ``nnx.eval_shape``) with its parameters read from ``tensors``.

    Raises ConversionError listing unknown tensors (neither mapped nor ignored), missing ones, wrong
    shapes, and parameters that no tensor fills.
    """
    graphdef, state = nnx.split(abstract)
    expected = traverse_util.flatten_dict(nnx.to_pure_dict(state))
    unknown = sorted(set(tensors) - set(mapping) - set(ignored))
    missing = sorted(set(mapping) - set(tensors))
    wrong, params = [], {}
    for name, (path, fn) in mapping.items():
        if name in tensors:
            array = fn(np.asarray(tensors[name], np.float32))
            if array.shape != expected[path].shape:
                wrong.append(f"{name}: {array.shape} != {expected[path].shape}")
            params[path] = array.astype(expected[path].dtype)
    if unknown or missing or wrong:
        raise ConversionError(
            "the checkpoint does not match the model built from its config.json:\n"
            f"  unknown tensors ({len(unknown)}): {unknown}\n"
            f"  missing tensors ({len(missing)}): {missing}\n"
            f"  wrong shapes ({len(wrong)}): {wrong}"
        )
    if unfilled := sorted(map(str, set(expected) - set(params))):
        raise ConversionError(f"no tensor maps to the parameters {unfilled}")
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(jax.tree.map(jnp.asarray, params)))
    return nnx.merge(graphdef, state)
