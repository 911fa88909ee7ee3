"""The StreamDiT transformer and how to build and run it functionally."""

from streamdit_jax.model.dit import StreamDiT
from streamdit_jax.model.functional import (
    abstract_model,
    apply,
    count_params,
    init_params,
    param_shardings,
    single_device_mesh,
)
from streamdit_jax.model.restore import initial_params, restore_params

__all__ = [
    "StreamDiT",
    "abstract_model",
    "apply",
    "count_params",
    "init_params",
    "initial_params",
    "param_shardings",
    "restore_params",
    "single_device_mesh",
]
