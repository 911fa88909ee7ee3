"""Default logical-to-mesh rules: batch over (data, fsdp); weights FSDP-sharded over `fsdp`;
heads and MLP over `model` (tensor parallel); attention windows and the token-grid height over `context`."""

DEFAULT_RULES = (
    # parameters
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("head_dim", None),
    ("layers", None),
    ("modulation", None),
    ("patch", None),
    ("time_freq", None),
    ("text_embed", None),
    # activations
    ("batch", ("data", "fsdp")),
    ("act_frames", None),
    ("act_height", "context"),
    ("act_width", None),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "model"),
    ("act_mlp", "model"),
    ("windows", "context"),
)
