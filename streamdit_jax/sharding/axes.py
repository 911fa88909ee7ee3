"""Names of mesh axes and of the logical axes that model code uses (never mesh names in model code)."""

MESH_AXES = ("data", "fsdp", "context", "model")

# Parameter axes.
EMBED = "embed"  # model width D
MLP = "mlp"  # MLP width M (and the hidden width of the conditioning MLPs)
HEADS = "heads"  # attention heads N
HEAD_DIM = "head_dim"  # K
LAYERS = "layers"  # the stacked-layer axis
MODULATION = "modulation"  # the 6 (block) or 2 (head) adaLN vectors
PATCH = "patch"  # patch features pt*ph*pw*C
TIME_FREQ = "time_freq"  # sinusoidal time features
TEXT_EMBED = "text_embed"  # text encoder width Dt

# Activation axes.
BATCH = "batch"
ACT_FRAMES = "act_frames"
ACT_HEIGHT = "act_height"
ACT_WIDTH = "act_width"
ACT_LENGTH = "act_length"  # a flat token axis (text tokens, or all video tokens)
ACT_EMBED = "act_embed"
ACT_HEADS = "act_heads"
ACT_MLP = "act_mlp"
WINDOWS = "windows"  # attention windows folded out of the token grid

LOGICAL_AXES = frozenset(
    {
        EMBED,
        MLP,
        HEADS,
        HEAD_DIM,
        LAYERS,
        MODULATION,
        PATCH,
        TIME_FREQ,
        TEXT_EMBED,
        BATCH,
        ACT_FRAMES,
        ACT_HEIGHT,
        ACT_WIDTH,
        ACT_LENGTH,
        ACT_EMBED,
        ACT_HEADS,
        ACT_MLP,
        WINDOWS,
    }
)
