"""Converting public weights into streamdit_jax models."""

from streamdit_jax.convert.wan import (
    ConversionError,
    convert_wan_state,
    wan_hf_config,
    wan_model_config,
    wan_transformer,
    wan_transformer_params,
)
from streamdit_jax.convert.wan_vae import wan_vae, wan_vae_config

__all__ = [
    "ConversionError",
    "convert_wan_state",
    "wan_hf_config",
    "wan_model_config",
    "wan_transformer",
    "wan_transformer_params",
    "wan_vae",
    "wan_vae_config",
]
