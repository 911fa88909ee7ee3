"""small: the embedded CPU demo (128x128 video, 8-frame latent buffer)."""

from streamdit_jax.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, full=False)
    c = base_config()
    c.model.width = 192
    c.model.num_heads = 3
    c.model.mlp_width = 768
    c.model.num_layers = 6
    c.model.text_width = 384  # MiniLM-L6
    c.model.latent_channels = 16
    c.model.freq_dim = 128
    c.model.window = None if arg.full else (8, 4, 4)  # token grid (8, 8, 8): full time, quarter space
    c.data.resolution = (128, 128)
    c.data.fps = 8
    c.data.batch_size = 8
    c.data.text_max_length = 32
    c.buffer.frames = 8
    c.buffer.chunk_sizes = (1, 2, 4, 8)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0)
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 4
    c.rollout.cfg_scale = 3.0
    c.optimizer.learning_rate = 3e-4
    c.mesh.shape = (-1, 1, 1, 1)
    return c
