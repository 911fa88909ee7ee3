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

__all__ = [
    "StreamDiT",
    "abstract_model",
    "apply",
    "count_params",
    "init_params",
    "param_shardings",
    "single_device_mesh",
]
