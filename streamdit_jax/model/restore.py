"""Restoring a transformer checkpoint straight into its shardings on a mesh."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.checkpoint import SHAPE_FREE_FIELDS, expect_kind, latest_step, restore_config, restore_tree
from streamdit_jax.config import ModelConfig
from streamdit_jax.model.functional import abstract_model, param_shardings, single_device_mesh
from streamdit_jax.sharding import DEFAULT_RULES


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
