"""diffusers ``AutoencoderKLWan`` folders (Wan 2.1 VAE) into our VideoVAE, statistics included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder import Autoencoder, build_autoencoder
from streamdit_jax.config import AutoencoderConfig
from streamdit_jax.convert.safetensors_io import read_safetensors_folder
from streamdit_jax.convert.wan import ConversionError

# Fields of AutoencoderKLWan that must keep their Wan 2.1 values (Wan 2.2 changes them).
_WAN21_LAYOUT = {
    "is_residual": False,
    "patch_size": None,
    "attn_scales": [],
    "in_channels": 3,
    "out_channels": 3,
}
# Latent statistics held by the model (Wan's pipeline normalises latents with them) and their defaults.
_STATISTICS = {"latents_mean": 0.0, "latents_std": 1.0}


def _find_vae_dir(directory: str | Path) -> Path:
    path = Path(directory)
    if (path / "vae" / "config.json").is_file():  # a whole pipeline folder
        path = path / "vae"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{directory} has no config.json: expected a diffusers AutoencoderKLWan folder (or a pipeline "
            "folder with vae/)"
        )
    return path


def wan_vae_config(hf: dict[str, Any], dtype: str = "float32") -> AutoencoderConfig:
    """Our AutoencoderConfig for a diffusers AutoencoderKLWan config.json (Wan 2.1 layout only)."""
    for key, supported in _WAN21_LAYOUT.items():
        if hf.get(key, supported) != supported:
            raise ConversionError(
                f"config.json sets {key}={hf[key]!r}: only the Wan 2.1 VAE layout is supported"
            )
    if hf.get("decoder_base_dim") not in (None, hf.get("base_dim", 96)):
        raise ConversionError("config.json sets a decoder_base_dim different from base_dim: not supported")
    return AutoencoderConfig(
        base_dim=hf.get("base_dim", 96),
        dim_mult=tuple(hf.get("dim_mult", (1, 2, 4, 4))),
        num_res_blocks=hf.get("num_res_blocks", 2),
        temporal_downsample=tuple(hf.get("temperal_downsample", (False, True, True))),
        latent_channels=hf.get("z_dim", 16),
        dtype=dtype,
    )


def _our_path(name: str) -> tuple:
    """'decoder.up_blocks.0.upsamplers.0.resample.1.weight' -> ('decoder', 'up_blocks', 0, 'upsampler',
    'resample', 'kernel')."""
    parts: list = []
    tokens = name.split(".")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("resample", "upsamplers") and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            parts.append("upsampler" if token == "upsamplers" else "resample")
            i += 2
            continue
        parts.append(int(token) if token.isdigit() else token)
        i += 1
    if parts[-1] == "weight":
        parts[-1] = "kernel"
    return tuple(parts)


def _our_array(path: tuple, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, np.float32)
    if path[-1] == "gamma":
        return array.reshape(-1)
    if array.ndim == 5:  # Conv3d [O, I, kt, kh, kw] -> [kt, kh, kw, I, O]
        return array.transpose(2, 3, 4, 1, 0)
    if array.ndim == 4:  # Conv2d [O, I, kh, kw] -> [1, kh, kw, I, O]
        return array.transpose(2, 3, 1, 0)[None]
    return array


def _flatten(tree: dict, prefix: tuple = ()) -> dict[tuple, Any]:
    out = {}
    for key, value in tree.items():
        out.update(_flatten(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key): value})
    return out


def wan_vae(diffusers_dir: str | Path, dtype: str = "float32") -> Autoencoder:
    """The ``vae`` autoencoder holding a diffusers AutoencoderKLWan folder's weights and latent
    statistics."""
    path = _find_vae_dir(diffusers_dir)
    hf = json.loads((path / "config.json").read_text())
    cfg = wan_vae_config(hf, dtype)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: build_autoencoder(cfg, nnx.Rngs(0))))
    tree = nnx.to_pure_dict(state)
    expected = {p: v for p, v in _flatten(tree).items() if p[0] not in _STATISTICS}
    converted, unknown, wrong = {}, [], []
    for name, array in read_safetensors_folder(path).items():
        ours = _our_path(name)
        if ours not in expected:
            unknown.append(name)
            continue
        value = _our_array(ours, array)
        if value.shape != expected[ours].shape:
            wrong.append(f"{name}: {value.shape} != {expected[ours].shape}")
        converted[ours] = value
    missing = ["/".join(map(str, p)) for p in expected if p not in converted]
    if unknown or missing or wrong:
        raise ConversionError(
            "the Wan VAE checkpoint does not match the model built from its config.json:\n"
            f"  unknown tensors ({len(unknown)}): {sorted(unknown)}\n"
            f"  missing parameters ({len(missing)}): {sorted(missing)}\n"
            f"  wrong shapes ({len(wrong)}): {wrong}"
        )
    for key, default in _STATISTICS.items():
        stats = np.asarray(hf.get(key, np.full(cfg.latent_channels, default)), np.float32)
        if stats.shape != (cfg.latent_channels,):
            raise ConversionError(
                f"config.json {key} has {stats.shape} entries, expected ({cfg.latent_channels},)"
            )
        converted[(key,)] = stats
    for ours, value in converted.items():
        node = tree
        for key in ours[:-1]:
            node = node[key]
        node[ours[-1]] = jnp.asarray(value)
    nnx.replace_by_pure_dict(state, tree)
    return nnx.merge(graphdef, state)
