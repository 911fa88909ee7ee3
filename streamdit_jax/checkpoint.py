"""Orbax checkpoints of a model's state plus its config (JSON), restorable onto any mesh.

Layout: an Orbax CheckpointManager directory whose steps hold the items ``params`` (the model's state
as a plain nested dict: parameters, and for the VAE its latent statistics) and ``config`` (JSON: the
model kind and its config dataclass). Training adds items (optimizer state, EMA, data iterator) to the
same steps; a params-only restore reads just these two.

This module knows no model: ``streamdit_jax.model.restore_params`` and
``streamdit_jax.autoencoder.restore_vae`` build theirs and read into them with :func:`restore_tree`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from streamdit_jax.config import (
    AutoencoderConfig,
    Config,
    ConfigError,
    ModelConfig,
    TinyDecoderConfig,
    from_dict,
)
from streamdit_jax.storage import orbax_options, workpath

PARAMS = "params"
EMA = "ema"  # training checkpoints also hold the EMA of the model's state
CONFIG = "config"
RUN_CONFIG = "run_config"  # training checkpoints: the whole Config of the run (JSON)
KINDS: dict[str, type] = {
    "transformer": ModelConfig, "autoencoder": AutoencoderConfig, "tiny_decoder": TinyDecoderConfig
}  # fmt: skip
SECTIONS = {"transformer": "model.", "autoencoder": "autoencoder.", "tiny_decoder": "tiny_decoder."}
# Transformer fields a restore may change: they do not change parameter shapes.
SHAPE_FREE_FIELDS = frozenset({"window", "dtype", "param_dtype", "attention", "remat"})


def shape_free(model_cfg: ModelConfig) -> dict[str, Any]:
    """``model_cfg``'s SHAPE_FREE_FIELDS: what a restore takes from the config rather than the checkpoint
    (``restore_params``' ``model_overrides``)."""
    return {name: getattr(model_cfg, name) for name in SHAPE_FREE_FIELDS}


def manager(
    directory: str | PathLike, item_names: Sequence[str] = (PARAMS, CONFIG), **options
) -> ocp.CheckpointManager:
    """An Orbax CheckpointManager over ``directory`` (a local folder or a gs:// / s3:// URL)."""
    path = workpath(directory)
    options = {**orbax_options(path), **options}
    return ocp.CheckpointManager(
        path,
        item_names=tuple(item_names),
        options=ocp.CheckpointManagerOptions(**options) if options else None,
    )


def config_record(cfg: ModelConfig | AutoencoderConfig | TinyDecoderConfig) -> dict[str, Any]:
    """The JSON saved beside a model: its kind and its config."""
    kind = next(k for k, t in KINDS.items() if isinstance(cfg, t))
    return {"kind": kind, "config": dataclasses.asdict(cfg)}


def save_params(
    directory: str | PathLike, cfg: ModelConfig | AutoencoderConfig, state: nnx.State | Mapping, step: int = 0
) -> epath.Path:
    """Saves a model's ``state`` (an nnx.State or its pure dict) and ``cfg`` as step ``step``.

    Never overwrites: a step that exists (or one older than the newest) is an error.
    """
    pure = nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state
    with manager(directory) as mngr:
        newest = mngr.latest_step()
        if newest is not None and step <= newest:
            raise FileExistsError(
                f"{workpath(directory)} already holds checkpoint step {newest}; refusing to overwrite "
                "it. Choose another directory or remove that checkpoint yourself"
            )
        saved = mngr.save(
            step,
            args=ocp.args.Composite(
                **{PARAMS: ocp.args.StandardSave(pure), CONFIG: ocp.args.JsonSave(config_record(cfg))}
            ),
        )
        mngr.wait_until_finished()
    if not saved:
        raise RuntimeError(f"Orbax declined to save step {step} under {directory}")
    return workpath(directory) / str(step)


def latest_step(directory: str | PathLike) -> int:
    """The newest complete step under ``directory``; a clear error if there is none."""
    path = workpath(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    with manager(path) as mngr:
        step = mngr.latest_step()
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint under {path} (expected Orbax step folders)")
    return step


def saved_steps(directory: str | PathLike) -> list[int]:
    """The complete steps under ``directory``, read from its listing alone (no CheckpointManager, hence
    no barrier across processes): step folders under their final name, in a bucket with their
    commit_success.txt. [] when the directory does not exist."""
    path = workpath(directory)
    if not path.is_dir():
        return []
    steps = [p for p in path.iterdir() if p.name.isdigit() and p.is_dir()]
    if str(path).startswith("s3://"):
        steps = [p for p in steps if (p / "commit_success.txt").exists()]
    return sorted(int(p.name) for p in steps)


def restore_config(directory: str | PathLike, step: int | None = None):
    """The config saved with a checkpoint: a transformer's ModelConfig, an AutoencoderConfig or a
    TinyDecoderConfig."""
    step = latest_step(directory) if step is None else step
    with manager(directory) as mngr:
        record = mngr.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))[CONFIG]
    kind = record.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{directory}: unknown model kind {kind!r} in the checkpoint's config")
    return from_dict(KINDS[kind], record["config"], SECTIONS[kind])


def restore_run_config(directory: str | PathLike, step: int | None = None) -> Config | None:
    """The whole Config a training (or distillation) run saved with its checkpoint; None for checkpoints
    without one (``convert``, ``save_params``)."""
    step = latest_step(directory) if step is None else step
    if not (workpath(directory) / str(step) / RUN_CONFIG).is_dir():
        return None
    with manager(directory, (RUN_CONFIG,)) as mngr:
        record = mngr.restore(step, args=ocp.args.Composite(**{RUN_CONFIG: ocp.args.JsonRestore()}))
    record = record[RUN_CONFIG]
    return from_dict(Config, record) if record else None


def expect_kind(cfg: Any, kind: type, directory: str | PathLike) -> None:
    if not isinstance(cfg, kind):
        raise ConfigError(f"{directory} holds a {type(cfg).__name__} checkpoint, not a {kind.__name__} one")


def _weights_item(directory: str | PathLike, step: int, ema: bool) -> str:
    """The EMA weights when asked for and present (training checkpoints), else the raw ones."""
    return EMA if ema and (workpath(directory) / str(step) / EMA).is_dir() else PARAMS


def restore_tree(
    directory: str | PathLike, step: int, abstract: nnx.State, shardings: nnx.State | None, ema: bool
) -> None:
    """Reads the model's state into ``abstract`` (in place), placing each array on its sharding."""
    item = _weights_item(directory, step, ema)
    target = nnx.to_pure_dict(abstract)
    if shardings is not None:
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            target,
            nnx.to_pure_dict(shardings),
        )
    with manager(directory, (item, CONFIG)) as mngr:
        restored = mngr.restore(step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(target)}))
    nnx.replace_by_pure_dict(abstract, restored[item])
