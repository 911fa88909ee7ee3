"""diffusers ``WanTransformer3DModel`` folders (config.json + safetensors) into StreamDiT parameters.

Every tensor of the folder must be consumed and every parameter of our model filled: anything else is
an error that lists the tensors. Text-to-video Wan 2.1 models only (no image-conditioning branch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.config import ModelConfig
from streamdit_jax.convert.safetensors_io import read_safetensors_folder
from streamdit_jax.model import StreamDiT, abstract_model, param_shardings, single_device_mesh
from streamdit_jax.sharding import DEFAULT_RULES

# Tensors diffusers itself ignores when loading this model.
_IGNORED_SUFFIXES = ("norm_added_q.weight",)


class ConversionError(ValueError):
    """The source weights do not match the model their config describes."""


def _find_transformer_dir(directory: str | Path) -> Path:
    path = Path(directory)
    if (path / "transformer" / "config.json").is_file():  # a whole pipeline folder
        path = path / "transformer"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{directory} has no config.json: expected a diffusers WanTransformer3DModel folder "
            "(or a pipeline folder with transformer/)"
        )
    return path


def wan_model_config(
    hf: dict[str, Any], window: tuple[int, int, int] | None = None, **fields: Any
) -> ModelConfig:
    """Our ModelConfig for a diffusers WanTransformer3DModel config.json (``fields`` set dtype etc.)."""
    for key in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len"):
        if hf.get(key) is not None:
            raise ConversionError(
                f"config.json sets {key}={hf[key]}: image-conditioned Wan models are not supported, "
                "only text-to-video Wan 2.1 transformers"
            )
    if hf.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
        raise ConversionError(
            f"config.json qk_norm={hf['qk_norm']!r}: only 'rms_norm_across_heads' is supported"
        )
    in_channels = hf.get("in_channels", 16)
    if (hf.get("out_channels") or in_channels) != in_channels:
        raise ConversionError(
            f"in_channels={in_channels} != out_channels={hf['out_channels']}: not supported"
        )
    heads, head_dim = hf.get("num_attention_heads", 40), hf.get("attention_head_dim", 128)
    return ModelConfig(
        width=heads * head_dim,
        num_heads=heads,
        mlp_width=hf.get("ffn_dim", 13824),
        num_layers=hf.get("num_layers", 40),
        text_width=hf.get("text_dim", 4096),
        latent_channels=in_channels,
        patch_size=tuple(hf.get("patch_size", (1, 2, 2))),
        freq_dim=hf.get("freq_dim", 256),
        eps=hf.get("eps", 1e-6),
        cross_attn_norm=hf.get("cross_attn_norm", True),
        window=None if window is None else tuple(window),
        **fields,
    )


def wan_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """The diffusers WanTransformer3DModel config of ``cfg`` (the inverse of :func:`wan_model_config`;
    Wan attends over the whole latent, so ``cfg.window`` has no counterpart)."""
    return {
        "patch_size": tuple(cfg.patch_size),
        "num_attention_heads": cfg.num_heads,
        "attention_head_dim": cfg.head_dim,
        "in_channels": cfg.latent_channels,
        "out_channels": cfg.latent_channels,
        "text_dim": cfg.text_width,
        "freq_dim": cfg.freq_dim,
        "ffn_dim": cfg.mlp_width,
        "num_layers": cfg.num_layers,
        "cross_attn_norm": cfg.cross_attn_norm,
        "qk_norm": "rms_norm_across_heads",
        "eps": cfg.eps,
    }


def _mapping(cfg: ModelConfig) -> tuple[dict[str, tuple[str, Callable]], dict[str, tuple[str, Callable]]]:
    """(top-level, per-block) maps: diffusers name -> (our param path, array transform)."""
    d, n, k, p = cfg.width, cfg.num_heads, cfg.head_dim, cfg.patch_features

    def linear(src: str, dst: str, in_shape: tuple, out_shape: tuple) -> dict[str, tuple[str, Callable]]:
        """torch Linear (weight [out, in]) -> kernel [*in_shape, *out_shape] and bias [*out_shape]."""
        return {
            f"{src}.weight": (f"{dst}/kernel", lambda w: w.T.reshape(*in_shape, *out_shape)),
            f"{src}.bias": (f"{dst}/bias", lambda b: b.reshape(out_shape)),
        }

    top = {
        # Conv3d [D, C, pt, ph, pw] -> kernel [(pt ph pw C), D]
        "patch_embedding.weight": ("patch_embed/kernel", lambda w: w.transpose(2, 3, 4, 1, 0).reshape(p, d)),
        "patch_embedding.bias": ("patch_embed/bias", lambda b: b),
        "scale_shift_table": ("head_modulation", lambda t: t.reshape(2, d)),
        **linear("condition_embedder.time_embedder.linear_1", "time_embed/fc1", (cfg.freq_dim,), (d,)),
        **linear("condition_embedder.time_embedder.linear_2", "time_embed/fc2", (d,), (d,)),
        **linear("condition_embedder.time_proj", "time_proj", (d,), (6, d)),
        **linear("condition_embedder.text_embedder.linear_1", "text_embed/fc1", (cfg.text_width,), (d,)),
        **linear("condition_embedder.text_embedder.linear_2", "text_embed/fc2", (d,), (d,)),
        **linear("proj_out", "head", (d,), (p,)),
    }
    block = {
        "scale_shift_table": ("modulation", lambda t: t.reshape(6, d)),
        **linear("ffn.net.0.proj", "mlp/fc1", (d,), (cfg.mlp_width,)),
        **linear("ffn.net.2", "mlp/fc2", (cfg.mlp_width,), (d,)),
    }
    if cfg.cross_attn_norm:
        block["norm2.weight"] = ("cross_norm/scale", lambda w: w)
        block["norm2.bias"] = ("cross_norm/bias", lambda b: b)
    for src, dst in (("attn1", "self_attn"), ("attn2", "cross_attn")):
        for proj in ("q", "k", "v"):
            block.update(linear(f"{src}.to_{proj}", f"{dst}/{proj}", (d,), (n, k)))
        block.update(linear(f"{src}.to_out.0", f"{dst}/out", (n, k), (d,)))
        block[f"{src}.norm_q.weight"] = (f"{dst}/q_norm/scale", lambda w: w.reshape(n, k))
        block[f"{src}.norm_k.weight"] = (f"{dst}/k_norm/scale", lambda w: w.reshape(n, k))
    return top, block


def _set(tree: dict, path: str, value: np.ndarray) -> None:
    *parents, leaf = path.split("/")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.update(_flatten(value, f"{path}/") if isinstance(value, dict) else {path: value})
    return out


def convert_wan_state(tensors: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, Any]:
    """A diffusers state dict (name -> array) as our pure params dict, in ``cfg.param_dtype``.

    Raises ConversionError listing every unknown tensor, missing tensor and shape mismatch.
    """
    top, block = _mapping(cfg)
    dtype = jnp.dtype(cfg.param_dtype)
    expected = _flatten(nnx.to_pure_dict(abstract_model(cfg)[1]))
    converted: dict[str, np.ndarray] = {}  # our path -> array (stacked blocks filled in place)
    filled: dict[str, set[int]] = {dst: set() for dst, _ in block.values()}
    unknown, wrong = [], []

    def put(path: str, array: np.ndarray, layer: int | None = None) -> None:
        shape = expected[path].shape if layer is None else expected[path].shape[1:]
        if array.shape != shape:
            wrong.append(f"{path}: {array.shape} != {shape}")
        elif layer is None:
            converted[path] = array.astype(dtype)
        else:
            stacked = converted.setdefault(path, np.empty(expected[path].shape, dtype))
            stacked[layer] = array

    for name, array in tensors.items():
        if name.endswith(_IGNORED_SUFFIXES):
            continue
        parts = name.split(".")
        if parts[0] == "blocks" and len(parts) > 2 and parts[1].isdigit():
            layer, local = int(parts[1]), ".".join(parts[2:])
            if local not in block or layer >= cfg.num_layers:
                unknown.append(name)
                continue
            dst, fn = block[local]
            put(f"blocks/{dst}", fn(np.asarray(array, np.float32)), layer)
            filled[dst].add(layer)
        elif name in top:
            dst, fn = top[name]
            put(dst, fn(np.asarray(array, np.float32)))
        else:
            unknown.append(name)
    missing = [src for src, (dst, _) in top.items() if dst not in converted]
    for src, (dst, _) in block.items():
        missing += [f"blocks.{i}.{src}" for i in range(cfg.num_layers) if i not in filled[dst]]
    if unknown or missing or wrong:
        raise ConversionError(
            "the Wan checkpoint does not match the model built from its config.json:\n"
            f"  unknown tensors ({len(unknown)}): {sorted(unknown)}\n"
            f"  missing tensors ({len(missing)}): {sorted(missing)}\n"
            f"  wrong shapes ({len(wrong)}): {wrong}"
        )
    params: dict[str, Any] = {}
    for path, array in converted.items():
        _set(params, path, array)
    return params


def wan_transformer_params(
    diffusers_dir: str | Path, window: tuple[int, int, int] | None = None, **fields: Any
) -> tuple[ModelConfig, dict[str, Any]]:
    """(ModelConfig, pure params dict of NumPy arrays) read from a diffusers folder."""
    path = _find_transformer_dir(diffusers_dir)
    hf = json.loads((path / "config.json").read_text())
    cfg = wan_model_config(hf, window, **fields)
    return cfg, convert_wan_state(read_safetensors_folder(path), cfg)


def wan_transformer(
    diffusers_dir: str | Path,
    window: tuple[int, int, int] | None = None,
    mesh: Mesh | None = None,
    rules=DEFAULT_RULES,
    **fields: Any,
) -> StreamDiT:
    """A StreamDiT holding the weights of a diffusers WanTransformer3DModel folder.

    ``window=None`` keeps Wan's full attention (one window over the whole latent); ``fields`` set other
    ModelConfig fields that do not change shapes (``dtype``, ``param_dtype``, ``attention``, ``remat``).
    Parameters are placed on ``mesh`` (default: one device) with their logical shardings.
    """
    cfg, pure = wan_transformer_params(diffusers_dir, window, **fields)
    graphdef, state = abstract_model(cfg)
    shardings = nnx.to_pure_dict(param_shardings(state, mesh or single_device_mesh(), rules))
    nnx.replace_by_pure_dict(state, jax.tree.map(jax.device_put, pure, shardings))
    return nnx.merge(graphdef, state)
