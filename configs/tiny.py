"""tiny: the test preset (seconds on a CPU). Variants: 'full' (one window over the whole latent)."""

from streamdit_jax.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, full=False)
    c = base_config()
    c.model.width = 128
    c.model.num_heads = 4
    c.model.mlp_width = 256
    c.model.num_layers = 2
    c.model.text_width = 384  # MiniLM-L6, the embedded text encoder
    c.model.latent_channels = 16
    c.model.freq_dim = 64
    c.model.window = None if arg.full else (4, 2, 2)  # token grid (8, 4, 4): every axis shifts
    c.autoencoder.base_dim = 8
    c.autoencoder.dim_mult = (1, 1, 2, 2)
    c.autoencoder.num_res_blocks = 1
    c.autoencoder.latent_channels = 16
    c.data.resolution = (64, 64)
    c.data.fps = 8
    c.train.batch_size = 8
    c.optimizer.learning_rate = 2e-3  # small models learn fast; tests train for a few hundred steps
    c.optimizer.warmup_steps = 10
    c.text.max_length = 40  # shapes captions take up to 37 MiniLM tokens
    c.buffer.frames = 8
    c.buffer.chunk_sizes = (1, 2, 4, 8)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0)
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 2
    c.mesh.shape = (-1, 1, 1, 1)
    return c
