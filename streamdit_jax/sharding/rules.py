"""Default logical-to-mesh rules: batch over (data, fsdp); weights FSDP-sharded over `fsdp`;
heads and MLP over `model` (tensor parallel); attention windows and the token-grid height over `context`."""

from streamdit_jax.sharding.axes import LOGICAL_AXES

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


def complete_rules(rules) -> tuple:
    """``rules`` plus (axis, None) for every logical axis they do not name: unnamed axes are replicated."""
    named = {logical for logical, _ in rules}
    return tuple(rules) + tuple((axis, None) for axis in sorted(LOGICAL_AXES - named))
