"""The autoencoder kinds by name (``autoencoder.kind``): build one from its config, restore one from a
checkpoint by the kind saved in it.

A kind registers its class with :func:`register_autoencoder`; nothing else in the library names a
kind's class. A checkpoint written before ``autoencoder.kind`` existed has no kind in its config and
restores as ``vae`` (the field's default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from streamdit_jax.checkpoint import expect_kind, latest_step, restore_config, restore_tree
from streamdit_jax.choices import AUTOENCODER_KINDS
from streamdit_jax.config import AutoencoderConfig, Config, ConfigError
from streamdit_jax.storage import workpath

AUTOENCODERS: dict[str, type] = {}


def register_autoencoder(kind: str) -> Callable[[type], type]:
    """Registers an autoencoder class under ``kind`` (selectable with ``autoencoder.kind``)."""

    def decorate(cls: type) -> type:
        AUTOENCODERS[kind] = cls
        AUTOENCODER_KINDS.add(kind)
        return cls

    return decorate


def autoencoder_class(kind: str) -> type:
    if kind not in AUTOENCODERS:
        raise ConfigError(
            f"config field 'autoencoder.kind': {kind!r} is not registered. Fix: use one of "
            f"{sorted(AUTOENCODERS)}"
        )
    return AUTOENCODERS[kind]


def build_autoencoder(cfg: AutoencoderConfig, rngs: nnx.Rngs):
    """A fresh autoencoder of ``cfg.kind`` (its latent statistics at 0 mean, unit std)."""
    return autoencoder_class(cfg.kind)(cfg, rngs=rngs)


def restore_autoencoder(directory: str | Path, step: int | None = None, ema: bool = True):
    """The autoencoder of a checkpoint, of the kind saved in it: a training checkpoint's EMA weights
    unless ``ema`` is False, with its latent statistics."""
    step = latest_step(directory) if step is None else step
    cfg = restore_config(directory, step)
    expect_kind(cfg, AutoencoderConfig, directory)
    return _restore(directory, step, cfg, ema)


def _restore(directory: str | Path, step: int, cfg: AutoencoderConfig, ema: bool):
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build_autoencoder(cfg, nnx.Rngs(0))))
    # Read onto this process's first device (the saving process's devices may not be ours), then made
    # uncommitted, so that the autoencoder also runs inside jits under a (multi-process) training mesh.
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restore_tree(directory, step, abstract, jax.tree.map(lambda _: local, abstract), ema)
    state = jax.tree.map(lambda x: jax.device_put(np.asarray(x)), abstract)
    return nnx.merge(graphdef, state)


def restore_matching_autoencoder(directory: str | Path, expected: AutoencoderConfig):
    """:func:`restore_autoencoder` of a checkpoint that must hold the autoencoder ``expected`` (its dtype
    may differ); otherwise a ConfigError that names both, raised from the saved config alone (JSON),
    before anything is built or compiled."""
    if not workpath(directory).exists():
        raise FileNotFoundError(
            f"config field 'data.vae': {directory} does not exist. Fix: pass --vae DIR (the autoencoder's "
            "checkpoint: `streamdit train-vae`)"
        )
    step = latest_step(directory)
    saved = restore_config(directory, step)
    expect_kind(saved, AutoencoderConfig, directory)
    if saved.kind != expected.kind:
        raise ConfigError(
            f"config field 'autoencoder.kind': {directory} holds a {saved.kind!r} autoencoder, the config "
            f"asks for {expected.kind!r}. Fix: pass a {expected.kind!r} checkpoint (streamdit train-vae "
            f"--config.autoencoder.kind={expected.kind}), or --config.autoencoder.kind={saved.kind} with "
            "a model trained on its latents"
        )
    if dataclasses.replace(saved, dtype=expected.dtype) != expected:
        raise ConfigError(
            f"config field 'autoencoder': the autoencoder in {directory} is {saved}, the preset asks for "
            f"{expected}. Fix: pass the autoencoder trained for this preset (streamdit train-vae)"
        )
    return _restore(directory, step, saved, ema=True)


def restore_data_vae(cfg: Config):
    """The autoencoder checkpoint of ``data.vae`` (:func:`restore_matching_autoencoder`: it must hold the
    preset's ``autoencoder``); None when ``data.vae`` is empty."""
    return restore_matching_autoencoder(cfg.data.vae, cfg.autoencoder) if cfg.data.vae else None
