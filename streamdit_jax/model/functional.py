"""The model used functionally: split once into (graphdef, params), then pure functions of params."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from flax import nnx
from jax.sharding import Mesh

from streamdit_jax.config import ConfigError, MeshConfig, ModelConfig
from streamdit_jax.model.dit import StreamDiT
from streamdit_jax.sharding import DEFAULT_RULES, complete_rules, make_mesh, use_mesh


def single_device_mesh() -> Mesh:
    """A (1, 1, 1, 1) mesh on the first device."""
    return make_mesh(MeshConfig(shape=(1, 1, 1, 1)), jax.devices()[:1])


def abstract_model(cfg: ModelConfig) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, params) with ShapeDtypeStruct leaves: shapes and dtypes without allocating anything."""
    return nnx.split(nnx.eval_shape(lambda: StreamDiT(cfg, rngs=nnx.Rngs(0))))


def check_shardable(params: nnx.State, mesh: Mesh, rules: Sequence[tuple]) -> None:
    """Raises ConfigError if ``rules`` put one mesh axis on two axes of a parameter, or split an axis
    over more devices than divide it."""
    table = dict(complete_rules(rules))
    for path, variable in nnx.to_flat_state(params):
        name = "/".join(map(str, path))
        logical_axes = variable.get_metadata().get("out_sharding") or (None,) * len(variable.shape)
        used: set[str] = set()
        for logical, size in zip(logical_axes, variable.shape, strict=True):
            targets = table.get(logical)
            targets = () if targets is None else targets if isinstance(targets, tuple) else (targets,)
            if used & set(targets):
                raise ConfigError(
                    f"config field 'mesh.rules': parameter {name} {logical_axes} would use mesh axes "
                    f"{sorted(used & set(targets))} twice. Fix: map its logical axes to distinct mesh axes"
                )
            used |= set(targets)
            devices = math.prod(mesh.shape[t] for t in targets)
            if size % devices:
                raise ConfigError(
                    f"config field 'mesh.shape': parameter {name} has {size} along logical axis "
                    f"{logical!r}, which mesh.rules splits over {targets} = {devices} devices. Fix: choose "
                    f"mesh sizes whose product over {targets} divides {size}, or map {logical!r} to None "
                    "in mesh.rules"
                )


def param_shardings(params: nnx.State, mesh: Mesh, rules: Sequence[tuple] = DEFAULT_RULES) -> nnx.State:
    """NamedShardings of a params tree on ``mesh`` from its logical axis names and ``rules``."""
    check_shardable(params, mesh, rules)
    with use_mesh(mesh, rules):
        return nnx.get_named_sharding(params, mesh)


def init_params(
    cfg: ModelConfig, key: jax.Array, mesh: Mesh | None = None, rules: Sequence[tuple] = DEFAULT_RULES
) -> tuple[nnx.GraphDef, nnx.State]:
    """Parameters born sharded on ``mesh`` (default: one device): no replicated copy is ever made."""
    mesh = mesh or single_device_mesh()
    graphdef, abstract = abstract_model(cfg)
    shardings = param_shardings(abstract, mesh, rules)
    with use_mesh(mesh, rules):
        init = jax.jit(lambda k: nnx.state(StreamDiT(cfg, rngs=nnx.Rngs(k))), out_shardings=shardings)
        return graphdef, init(key)


def apply(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    latents: jax.Array,
    sigma: jax.Array,
    text: jax.Array,
    text_mask: jax.Array,
) -> jax.Array:
    """The velocity for ``latents`` at per-frame noise ``sigma``; a pure function of ``params``."""
    return nnx.merge(graphdef, params)(latents, sigma, text, text_mask)


def count_params(params: nnx.State) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
