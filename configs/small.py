"""small: the embedded CPU demo (64x64 video at 8 fps, an 8-latent-frame buffer)."""

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
    c.model.window = None if arg.full else (8, 2, 2)  # token grid (8, 4, 4): full time, quarter space
    c.autoencoder.base_dim = 16
    c.autoencoder.dim_mult = (1, 2, 2, 4)
    c.autoencoder.num_res_blocks = 1
    c.autoencoder.latent_channels = 16
    c.vae_train.steps = 1500
    c.vae_train.batch_size = 4
    c.vae_train.frames = 5
    c.vae_train.kl_weight = 1e-6
    c.vae_train.checkpoint_every = 250
    c.vae_train.eval_every = 250
    c.vae_train.log_every = 25
    c.vae_train.eval_batches = 8
    c.vae_optimizer.learning_rate = 1e-3
    c.vae_optimizer.warmup_steps = 100
    c.vae_optimizer.ema_decay = 0.999
    c.data.resolution = (64, 64)
    c.data.fps = 8
    c.train.batch_size = 8
    c.text.max_length = 40  # shapes captions take up to 37 MiniLM tokens
    c.buffer.frames = 8
    c.buffer.chunk_sizes = (1, 2, 4, 8)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0)
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 4
    c.rollout.cfg_scale = 3.0
    c.optimizer.learning_rate = 3e-4
    c.mesh.shape = (-1, 1, 1, 1)
    return c
