"""small: the embedded CPU demo (64x64 video at 8 fps, an 8-latent-frame buffer).

Variants: ``windowed`` ((8, 2, 2) windows instead of full attention); ``ae=KIND`` the autoencoder:
``tiny`` (the default: TAEHV's layout, 8x space, 16 channels), ``vae`` (Wan's layout, the same latent
layout: the demo's autoencoder before issue 28), ``vae4x`` (the VAE at 4x space: a 16x16 latent grid, 8x8
tokens a frame), ``patch`` (pixels: 4 frames x 8x8 pixels a latent cell, nothing trained), ``patch_mlp``
(cells of 4 frames x 4x4 pixels through small MLPs into 8 values). docs/evaluation.md measures the demo on
each: ``tiny`` follows the prompts as well as the VAE or better in 19 minutes instead of 33 (today's
2-core CPU), but shows 2 frames a second; ``patch`` and ``patch_mlp`` make the transformer draw a mosaic.
"""

from streamdit_jax.config import base_config, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, windowed=False, ae="tiny")
    c = base_config()
    # Sized for the demo's CPU budget: at equal wall-clock time this width-128, 4-layer model reaches a
    # lower held-out loss than width 192 x 6 layers (2.5x faster a step; docs/evaluation.md#the-demo).
    c.model.width = 128
    c.model.num_heads = 2
    c.model.mlp_width = 512
    c.model.num_layers = 4
    c.model.text_width = 384  # MiniLM-L6
    c.model.latent_channels = 16
    c.model.freq_dim = 128
    # Token grid (8, 4, 4): one window over all 128 tokens costs no more a step on the CPU than the
    # (8, 2, 2) quarters of the `windowed` variant, and lowers the loss at every noise level (the ablation
    # in docs/evaluation.md).
    c.model.window = (8, 2, 2) if arg.windowed else None
    c.autoencoder.base_dim = 16
    c.autoencoder.dim_mult = (1, 2, 2, 4)
    c.autoencoder.num_res_blocks = 1
    c.autoencoder.latent_channels = 16
    # The VAE recipe the demo's 30-minute CPU budget allows (docs/autoencoder.md): 9-frame starts and, after
    # 8 context frames run without gradients, 8 steady-state frames, on 32x32 crops around an object, with
    # object pixels weighted up.
    c.vae_train.steps = 200
    c.vae_train.batch_size = 8
    c.vae_train.frames = 9
    c.vae_train.context = 8
    c.vae_train.crop = (32, 32)
    c.vae_train.object_weight = 10.0
    c.vae_train.kl_weight = 1e-6
    c.vae_train.checkpoint_every = 100
    c.vae_train.eval_every = 200
    c.vae_train.log_every = 20
    c.vae_train.eval_batches = 4
    c.vae_optimizer.learning_rate = 1e-3
    c.vae_optimizer.end_lr_factor = 0.5
    c.vae_optimizer.warmup_steps = 40
    c.vae_optimizer.ema_decay = 0.999
    # The tiny decoder (`streamdit train-decoder --config small:ae=vae --vae DIR`): 1,200 steps on 17-frame
    # 32x32 crops around an object, about 7 minutes on 2 CPU cores (docs/autoencoder.md, the tiny decoder).
    c.decoder_train.steps = 1200
    c.decoder_train.batch_size = 8
    c.decoder_train.frames = 17
    c.decoder_train.crop = (32, 32)
    c.decoder_train.checkpoint_every = 300
    c.decoder_train.eval_every = 300
    c.decoder_train.log_every = 25
    c.decoder_optimizer.learning_rate = 2e-3
    c.decoder_optimizer.warmup_steps = 20
    c.data.resolution = (64, 64)
    c.data.fps = 8
    c.train.batch_size = 8
    c.text.max_length = 40  # shapes captions take up to 37 MiniLM tokens
    c.buffer.frames = 8
    c.buffer.chunk_sizes = (1, 2, 4, 8)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0)
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 4
    c.rollout.guidance = 3.0
    # Noise levels drawn towards high noise within each chunk's range (Wan's shift), where the model must
    # decide what the video shows (the ablation in docs/evaluation.md).
    c.buffer.level_density = "shifted"
    c.buffer.level_shift = 3.0
    c.optimizer.learning_rate = 2e-3
    # The room the 20-minute budget leaves beside the autoencoder and the student, at 0.16-0.17 s a step on a
    # slow day for this 2-core CPU (docs/evaluation.md: the learning curve says what more steps buy).
    c.train.steps = 3200
    c.train.checkpoint_every = 800
    c.train.eval_every = 1600
    c.train.log_every = 50
    # The StreamDiT trains on windows of 448 encoded 61-frame shapes scenes (16 latent frames each).
    c.data.clip_latents = 16
    c.demo.clips = 448
    # Distillation into the one-step student: the teacher's 16 guided micro-steps per segment cost ~2 s a
    # step on 2 CPU cores, so the demo affords a short run from the teacher's weights.
    c.distill.steps = 150
    c.distill.checkpoint_every = 50
    c.distill.eval_every = 150
    c.distill.log_every = 10
    c.distill_optimizer.learning_rate = 3e-4
    c.distill_optimizer.warmup_steps = 10
    c.mesh.shape = (-1, 1, 1, 1)
    _autoencoder(c, arg.ae)
    return c


def _autoencoder(c, kind: str) -> None:
    """The autoencoder variant ``kind`` (the model's latent channels follow it)."""
    from streamdit_jax.config import ConfigError

    if kind == "patch":
        c.autoencoder.kind = "patch"
        c.autoencoder.patch = (4, 8)
        c.autoencoder.latent_channels = 4 * 8 * 8 * 3
    elif kind == "tiny":  # 2D convolutions and memory blocks: 800 steps in about 4.5 minutes on 2 CPU cores
        c.autoencoder.kind = "tiny"
        c.autoencoder.base_dim = 32
        c.autoencoder.dim_mult = (1, 1, 1, 1)
        c.autoencoder.temporal_downsample = (True, True, False)
        c.vae_train.steps = 800
        c.vae_train.checkpoint_every = 400
        c.vae_train.eval_every = 800
    elif kind == "patch_mlp":  # each cell of 4 frames x 4x4 pixels into 8 values and back
        c.autoencoder.kind = "patch_mlp"
        c.autoencoder.patch = (4, 4)
        c.autoencoder.latent_channels = 8
        # Row r1 of docs/evaluation.md (with the MLP encoder, no neighbours and no noise, row p2, the
        # transformer draws a mosaic of coloured cells): an affine encoder, so that latents average as
        # pixels do; a decoder that reads the 3x3 neighbouring cells, trained on latents with noise of half
        # their spread. The transformer still draws a wash of the prompt's colour, not one object.
        c.autoencoder.linear_encoder = True
        c.autoencoder.decoder_reach = 1
        c.vae_train.latent_noise = 0.5
        c.autoencoder.base_dim = 256  # the decoder's hidden units
        c.autoencoder.num_res_blocks = 2  # its hidden layers
        c.model.patch_size = (1, 4, 4)  # tokens of 4x4 cells: 16x16 pixels, 128 values, as with the VAE
        c.vae_train.steps = 2000
        c.vae_train.batch_size = 32
        c.vae_train.frames = 9
        c.vae_train.context = 0  # cells carry nothing from one latent frame to the next
        c.vae_train.crop = (32, 32)
        c.vae_train.edge_weight = 20.0
        c.vae_train.log_every = 100
        c.vae_train.checkpoint_every = 800
        c.vae_train.eval_every = 1200
        c.vae_optimizer.learning_rate = 3e-3
        c.vae_optimizer.end_lr_factor = 0.1
        c.vae_optimizer.warmup_steps = 50
        c.vae_optimizer.weight_decay = 0.0
    elif kind == "vae4x":
        c.autoencoder.dim_mult = (1, 2, 4)
        c.autoencoder.temporal_downsample = (True, True)
    elif kind != "vae":
        raise ConfigError(
            f"small:ae={kind}: unknown autoencoder. Fix: ae=vae, vae4x, tiny, patch or patch_mlp"
        )
    c.model.latent_channels = c.autoencoder.latent_channels
