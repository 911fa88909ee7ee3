"""The same forward on (data, fsdp, context, model) meshes matches one device; params are born sharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import randomize, relative_error
from jax.sharding import NamedSharding, PartitionSpec

from streamdit_jax import config as config_lib
from streamdit_jax.config import ConfigError
from streamdit_jax.model import apply, init_params, param_shardings
from streamdit_jax.sharding import axes, logical_sharding, make_mesh, use_mesh

TINY = config_lib.load("tiny", num_devices=8)  # window (4, 2, 2) on an (8, 4, 4) grid: 8 windows
MESHES = [(2, 2, 1, 2), pytest.param((8, 1, 1, 1), marks=pytest.mark.slow),
          pytest.param((1, 2, 2, 2), marks=pytest.mark.slow)]  # fmt: skip
# Sharded reductions change the summation order; float32 results agree to about 1e-6.
TOLERANCE = 1e-5


def _mesh(shape):
    return make_mesh(config_lib.MeshConfig(shape=shape))


def _inputs(batch=8):
    keys = jax.random.split(jax.random.key(1), 3)
    m = TINY.model
    latents = jax.random.normal(keys[0], (batch, *TINY.latent_grid, m.latent_channels))
    sigma = jnp.sort(jax.random.uniform(keys[1], (batch, TINY.buffer.frames)), axis=1)
    text = jax.random.normal(keys[2], (batch, 16, m.text_width))
    mask = jnp.arange(16)[None, :] < jnp.arange(batch)[:, None] % 16 + 1
    return latents, sigma, text, mask


@pytest.fixture(scope="module")
def reference():
    graphdef, params = init_params(TINY.model, jax.random.key(0))
    params = randomize(params)
    inputs = _inputs()
    out = jax.jit(lambda p, *a: apply(graphdef, p, *a))(params, *inputs)
    return graphdef, params, inputs, out


@pytest.mark.parametrize("shape", MESHES)
def test_sharded_forward_matches_one_device(reference, shape):
    graphdef, params, inputs, want = reference
    mesh = _mesh(shape)
    rules = TINY.mesh.rules
    params = jax.device_put(params, param_shardings(params, mesh, rules))
    batch_axes = [(axes.BATCH,) + (None,) * (x.ndim - 1) for x in inputs]
    inputs = [
        jax.device_put(x, logical_sharding(mesh, rules, n)) for x, n in zip(inputs, batch_axes, strict=True)
    ]
    with use_mesh(mesh, rules):
        got = jax.jit(lambda p, *a: apply(graphdef, p, *a))(params, *inputs)
    assert relative_error(got, want) <= TOLERANCE


def test_params_are_born_sharded_with_the_same_values():
    _, single = init_params(TINY.model, jax.random.key(0))
    mesh = _mesh((1, 2, 2, 2))
    _, sharded = init_params(TINY.model, jax.random.key(0), mesh, TINY.mesh.rules)
    kernel = sharded["blocks"]["mlp"]["fc1"]["kernel"][...]
    assert kernel.sharding == NamedSharding(mesh, PartitionSpec(None, "fsdp", "model"))
    assert len(kernel.addressable_shards) == 8 and kernel.addressable_shards[0].data.shape == (2, 64, 128)
    for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_partition_spec_snapshot():
    """The logical-to-mesh mapping of every parameter kind (catches silent rule or name changes)."""
    mesh = _mesh((1, 2, 2, 2))
    _, params = init_params(TINY.model, jax.random.key(0), mesh, TINY.mesh.rules)
    specs = {
        "/".join(str(getattr(k, "key", k)) for k in path): leaf.sharding.spec
        for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(params))
    }
    expected = {
        "patch_embed/kernel": PartitionSpec(None, "fsdp"),
        "time_embed/fc1/kernel": PartitionSpec(None, "fsdp"),
        "time_proj/kernel": PartitionSpec(None, None, "fsdp"),
        "text_embed/fc1/kernel": PartitionSpec(None, "fsdp"),
        "blocks/self_attn/q/kernel": PartitionSpec(None, "fsdp", "model", None),
        "blocks/self_attn/q/bias": PartitionSpec(None, "model", None),
        "blocks/self_attn/out/kernel": PartitionSpec(None, "model", None, "fsdp"),
        "blocks/self_attn/q_norm/scale": PartitionSpec(None, "model", None),
        "blocks/cross_attn/k/kernel": PartitionSpec(None, "fsdp", "model", None),
        "blocks/mlp/fc1/kernel": PartitionSpec(None, "fsdp", "model"),
        "blocks/mlp/fc2/kernel": PartitionSpec(None, "model", "fsdp"),
        "blocks/modulation": PartitionSpec(None, None, "fsdp"),
        "blocks/cross_norm/scale": PartitionSpec(None, "fsdp"),
        "head/kernel": PartitionSpec("fsdp", None),
        "head_modulation": PartitionSpec(None, "fsdp"),
    }
    for name, spec in expected.items():
        assert specs[name] == spec, (name, specs[name])


def test_a_mesh_that_cannot_split_a_parameter_is_a_config_error():
    three = config_lib.load("small", ["model.width=192", "model.num_heads=3"], num_devices=8)
    with pytest.raises(ConfigError, match=r"'mesh.shape'.*has 3 along logical axis 'heads'.* = 2 devices"):
        init_params(three.model, jax.random.key(0), _mesh((1, 2, 2, 2)), three.mesh.rules)


def test_rules_that_reuse_a_mesh_axis_are_a_config_error():
    rules = (*TINY.mesh.rules[:1], ("mlp", "fsdp"))  # embed and mlp both on fsdp
    with pytest.raises(ConfigError, match=r"'mesh.rules'.*twice"):
        param_shardings(init_params(TINY.model, jax.random.key(0))[1], _mesh((1, 2, 2, 2)), rules)


def test_partial_rules_replicate_the_axes_they_do_not_name():
    mesh = _mesh((1, 8, 1, 1))
    _, params = init_params(TINY.model, jax.random.key(0), mesh, (("embed", "fsdp"),))
    kernel = params["blocks"]["mlp"]["fc1"]["kernel"][...]
    assert kernel.sharding.spec == PartitionSpec(None, "fsdp", None)
