"""Configuration: frozen dataclasses, loaded once from an ml_collections preset.

- :mod:`~streamdit_jax.config.schema`: the sections (dataclasses, each checking its own fields),
  :class:`Config`, and the training stages (:data:`STAGES`, :meth:`Config.stage`);
- :mod:`~streamdit_jax.config.validation`: :class:`ConfigError` and the checks across sections;
- :mod:`~streamdit_jax.config.loading`: presets (``configs/<name>.py``), variants, overrides and
  :func:`from_dict` (saved configs, renamed fields), all through :func:`load`.

The paper's fine-tuning recipe (``PAPER_STAGES``, ``paper_stage``) lives beside the presets, in
``configs/_stages.py``; it is importable from here too.
"""

from streamdit_jax.config.loading import (
    RENAMED_FIELDS,
    apply_overrides,
    base_config,
    config_dir,
    configs_module,
    from_dict,
    load,
    parse_arg,
    parse_override,
)
from streamdit_jax.config.schema import (
    DATA_SOURCES,
    DTYPES,
    PREVIEWS,
    STAGES,
    TEXT_WIDTHS,
    AutoencoderConfig,
    BufferConfig,
    ClipTrainConfig,
    Config,
    DataConfig,
    DecoderTrainConfig,
    DemoConfig,
    DistillConfig,
    MeshConfig,
    ModelConfig,
    OptimizerConfig,
    RolloutConfig,
    Rules,
    Stage,
    TextConfig,
    TinyDecoderConfig,
    TrainConfig,
    VAETrainConfig,
)
from streamdit_jax.config.validation import (
    ConfigError,
    validate_config,
)

# Defined in configs/_stages.py (beside the presets that use them), loaded when first asked for.
_FROM_CONFIGS = {"PAPER_STAGES": "_stages", "paper_stage": "_stages"}


def __getattr__(name: str):
    if name in _FROM_CONFIGS:
        return getattr(configs_module(_FROM_CONFIGS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATA_SOURCES", "DTYPES", "PAPER_STAGES", "PREVIEWS", "RENAMED_FIELDS", "STAGES", "TEXT_WIDTHS",
    "AutoencoderConfig", "BufferConfig", "ClipTrainConfig", "Config", "ConfigError", "DataConfig",
    "DecoderTrainConfig", "DemoConfig", "DistillConfig", "MeshConfig", "ModelConfig", "OptimizerConfig",
    "RolloutConfig", "Rules", "Stage", "TextConfig", "TinyDecoderConfig", "TrainConfig", "VAETrainConfig",
    "apply_overrides", "base_config", "config_dir", "configs_module", "from_dict", "load", "paper_stage",
    "parse_arg", "parse_override", "validate_config",
]  # fmt: skip
