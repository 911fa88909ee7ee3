"""Restoring a video VAE checkpoint (parameters and latent statistics)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder.vae import VideoVAE
from streamdit_jax.checkpoint import expect_kind, latest_step, restore_config, restore_tree
from streamdit_jax.config import AutoencoderConfig
from streamdit_jax.storage import workpath


def restore_vae(directory: str | Path, step: int | None = None, ema: bool = True) -> VideoVAE:
    """A VideoVAE from a checkpoint: a training checkpoint's EMA weights unless ``ema`` is False."""
    step = latest_step(directory) if step is None else step
    cfg = restore_config(directory, step)
    expect_kind(cfg, AutoencoderConfig, directory)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: VideoVAE(cfg, rngs=nnx.Rngs(0))))
    # Read onto this process's first device (the saving process's devices may not be ours), then made
    # uncommitted, so that the VAE also runs inside jits under a (multi-process) training mesh.
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restore_tree(directory, step, abstract, jax.tree.map(lambda _: local, abstract), ema)
    state = jax.tree.map(lambda x: jax.device_put(np.asarray(x)), abstract)
    return nnx.merge(graphdef, state)


def restore_matching_vae(directory: str | Path, expected: AutoencoderConfig) -> VideoVAE:
    """:func:`restore_vae` of a checkpoint that must hold the autoencoder ``expected`` (its dtype may
    differ): otherwise a ConfigError that names both."""
    import dataclasses

    from streamdit_jax.config import ConfigError

    if not workpath(directory).exists():
        raise FileNotFoundError(f"config field 'data.vae': {directory} does not exist. Fix: pass --vae DIR")
    vae = restore_vae(directory)
    if dataclasses.replace(vae.cfg, dtype=expected.dtype) != expected:
        raise ConfigError(
            f"config field 'data.vae': the VAE in {directory} is {vae.cfg}, the preset asks for "
            f"{expected}. Fix: pass the VAE trained for this preset (streamdit train-vae)"
        )
    return vae
