"""Converting public weights into streamdit_jax models."""

from streamdit_jax.convert.wan import (
    ConversionError,
    convert_wan_state,
    wan_model_config,
    wan_transformer,
    wan_transformer_params,
)

__all__ = [
    "ConversionError",
    "convert_wan_state",
    "wan_model_config",
    "wan_transformer",
    "wan_transformer_params",
]
