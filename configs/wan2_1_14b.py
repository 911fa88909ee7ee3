"""wan2_1_14b: the Wan 2.1 T2V 14B transformer's shape at 832x480 (variant 'res=720p' for 1280x720)."""

from streamdit_jax.config import ConfigError, base_config, parse_arg

RESOLUTIONS = {"480p": (480, 832), "720p": (720, 1280)}


def get_config(arg=None):
    arg = parse_arg(arg, cudnn=False, res="480p")
    if arg.res not in RESOLUTIONS:
        raise ConfigError(f"config variant 'res={arg.res}': unknown. Fix: use one of {sorted(RESOLUTIONS)}")
    c = base_config()
    c.model.width = 5120
    c.model.num_heads = 40
    c.model.mlp_width = 13824
    c.model.num_layers = 40
    c.model.text_width = 4096
    c.model.latent_channels = 16
    c.model.window = None
    c.model.dtype = "bfloat16"
    c.model.remat = "full"
    c.model.attention = "cudnn" if arg.cudnn else "xla"
    c.data.resolution = RESOLUTIONS[arg.res]
    c.data.fps = 16
    c.train.batch_size = 32
    c.text.encoder = "umt5"  # set text.path to a umT5 (or Wan pipeline) folder
    c.text.max_length = 512
    c.buffer.frames = 16
    c.buffer.chunk_sizes = (1, 2, 4, 8, 16)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0, 1.0)
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 16
    c.rollout.guidance = 5.0
    c.mesh.shape = (1, -1, 1, 1)
    return c
