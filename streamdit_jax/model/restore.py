"""Restoring a transformer checkpoint straight into its shardings on a mesh."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.checkpoint import (
    SHAPE_FREE_FIELDS,
    expect_kind,
    latest_step,
    restore_config,
    restore_tree,
    shape_free,
)
from streamdit_jax.config import ModelConfig
from streamdit_jax.model.functional import abstract_model, param_shardings, single_device_mesh
from streamdit_jax.sharding import DEFAULT_RULES
from streamdit_jax.storage import workpath


def restore_params(
    directory: str | Path,
    mesh: Mesh | None = None,
    rules: Sequence[tuple] = DEFAULT_RULES,
    step: int | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    ema: bool = True,
) -> tuple[ModelConfig, nnx.GraphDef, nnx.State]:
    """A transformer's (config, graphdef, params), read straight into their shardings on ``mesh``.

    ``model_overrides`` replaces fields of the saved config that do not change parameter shapes;
    ``ema`` takes a training checkpoint's EMA weights (the raw ones when False or absent).
    """
    step = latest_step(directory) if step is None else step
    model_cfg = restore_config(directory, step)
    expect_kind(model_cfg, ModelConfig, directory)
    if model_overrides:
        unknown = sorted(set(model_overrides) - {f.name for f in dataclasses.fields(ModelConfig)})
        if unknown:
            raise ValueError(f"model_overrides {unknown} are not ModelConfig fields")
        changes_shapes = sorted(set(model_overrides) - SHAPE_FREE_FIELDS)
        if changes_shapes:
            raise ValueError(
                f"model_overrides {changes_shapes} would change parameter shapes; only "
                f"{sorted(SHAPE_FREE_FIELDS)} may differ from the saved model config"
            )
        model_cfg = dataclasses.replace(model_cfg, **model_overrides)
    graphdef, abstract = abstract_model(model_cfg)
    shardings = param_shardings(abstract, mesh or single_device_mesh(), rules)
    restore_tree(directory, step, abstract, shardings, ema)
    return model_cfg, graphdef, abstract


def initial_params(
    directory: str | Path, model_cfg: ModelConfig, mesh: Mesh, rules: Sequence[tuple]
) -> nnx.State:
    """The parameters of a transformer checkpoint (a converted Wan model, another run's EMA weights) that
    a new run of ``model_cfg`` starts from (``streamdit train --init``), on ``mesh``.

    The checkpoint must hold ``model_cfg``'s transformer up to the fields that leave parameters as they
    are (``SHAPE_FREE_FIELDS``: window, dtype, param_dtype, attention, remat, which the config sets);
    otherwise a ConfigError lists every field that differs. Checked from the checkpoint's JSON before
    any array is read or anything compiled.
    """
    from streamdit_jax.config import ConfigError

    if not workpath(directory).is_dir():
        raise FileNotFoundError(
            f"--init {directory} does not exist. Fix: pass a transformer checkpoint (`streamdit convert "
            "wan-transformer`, `train` or `distill` output)"
        )
    saved = restore_config(directory)
    if not isinstance(saved, ModelConfig):
        raise ConfigError(
            f"--init {directory} holds a {type(saved).__name__} checkpoint, not a transformer's. Fix: pass a "
            "transformer checkpoint (`streamdit convert wan-transformer`, `train` or `distill` output)"
        )
    differ = [
        f"model.{f.name}: checkpoint {getattr(saved, f.name)!r}, config {getattr(model_cfg, f.name)!r}"
        for f in dataclasses.fields(ModelConfig)
        if f.name not in SHAPE_FREE_FIELDS and getattr(saved, f.name) != getattr(model_cfg, f.name)
    ]
    if differ:
        raise ConfigError(
            f"--init {directory}: its transformer differs from the config's in\n  " + "\n  ".join(differ)
            + f"\nFix: set these in the config (e.g. --config.{differ[0].split(':')[0]}=...), or start from "
            f"another checkpoint. Only {sorted(SHAPE_FREE_FIELDS)} may differ"
        )  # fmt: skip
    return restore_params(directory, mesh, rules, model_overrides=shape_free(model_cfg))[2]
