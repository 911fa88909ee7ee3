"""Orbax checkpoints: parameters plus the model config as JSON, restorable onto any mesh.

Layout: an Orbax CheckpointManager directory whose steps hold the items ``params`` (a plain nested
dict of arrays) and ``model_config`` (JSON). Later stages add items (optimizer state, EMA, data
iterator) to the same steps; a params-only restore reads just these two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.config import ModelConfig, model_config_from_dict
from streamdit_jax.model import abstract_model, param_shardings, single_device_mesh
from streamdit_jax.sharding import DEFAULT_RULES

PARAMS = "params"
MODEL_CONFIG = "model_config"
# Model fields a restore may change: they do not change parameter shapes.
SHAPE_FREE_FIELDS = frozenset({"window", "dtype", "param_dtype", "attention", "remat"})


def _manager(directory: str | Path, item_names: Sequence[str]) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(Path(directory).resolve(), item_names=tuple(item_names))


def save_params(
    directory: str | Path, model_cfg: ModelConfig, params: nnx.State | Mapping, step: int = 0
) -> Path:
    """Saves ``params`` (an nnx.State or its pure dict) and ``model_cfg`` as step ``step``.

    Never overwrites: a step that exists (or one older than the newest) is an error.
    """
    pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    with _manager(directory, (PARAMS, MODEL_CONFIG)) as manager:
        newest = manager.latest_step()
        if newest is not None and step <= newest:
            raise FileExistsError(
                f"{Path(directory).resolve()} already holds checkpoint step {newest}; refusing to overwrite "
                "it. Choose another directory or remove that checkpoint yourself"
            )
        saved = manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    PARAMS: ocp.args.StandardSave(pure),
                    MODEL_CONFIG: ocp.args.JsonSave(dataclasses.asdict(model_cfg)),
                }
            ),
        )
        manager.wait_until_finished()
    if not saved:
        raise RuntimeError(f"Orbax declined to save step {step} under {directory}")
    return Path(directory).resolve() / str(step)


def latest_step(directory: str | Path) -> int:
    """The newest complete step under ``directory``; a clear error if there is none."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    with _manager(path, (PARAMS, MODEL_CONFIG)) as manager:
        step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint under {path} (expected Orbax step folders)")
    return step


def restore_model_config(directory: str | Path, step: int | None = None) -> ModelConfig:
    step = latest_step(directory) if step is None else step
    with _manager(directory, (PARAMS, MODEL_CONFIG)) as manager:
        restored = manager.restore(step, args=ocp.args.Composite(**{MODEL_CONFIG: ocp.args.JsonRestore()}))
    return model_config_from_dict(restored[MODEL_CONFIG])


def restore_params(
    directory: str | Path,
    mesh: Mesh | None = None,
    rules: Sequence[tuple] = DEFAULT_RULES,
    step: int | None = None,
    model_overrides: Mapping[str, Any] | None = None,
) -> tuple[ModelConfig, nnx.GraphDef, nnx.State]:
    """(model config, graphdef, params) read straight into their shardings on ``mesh`` (default: one device).

    ``model_overrides`` replaces fields of the saved model config that do not change parameter shapes
    (e.g. ``window``, ``dtype``, ``attention``, ``remat``).
    """
    step = latest_step(directory) if step is None else step
    model_cfg = restore_model_config(directory, step)
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
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        nnx.to_pure_dict(abstract),
        nnx.to_pure_dict(shardings),
    )
    with _manager(directory, (PARAMS, MODEL_CONFIG)) as manager:
        restored = manager.restore(
            step, args=ocp.args.Composite(**{PARAMS: ocp.args.StandardRestore(target)})
        )
    nnx.replace_by_pure_dict(abstract, restored[PARAMS])
    return model_cfg, graphdef, abstract
