"""wan2_1_1_3b: the Wan 2.1 T2V 1.3B transformer's shape at 832x480, with Wan's full attention.

Variants: 'cudnn' (cuDNN attention), 'window' (quarter-space windows (16, 15, 26) instead of full attention),
'streamdit,stage=S' (fine-tuning converted Wan 2.1 1.3B weights into a StreamDiT: the paper's stage S of 3,
configs/_stages.py, docs/training.md).
"""

from streamdit_jax.config import base_config, paper_stage, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, cudnn=False, window=False, streamdit=False, stage=1)
    c = base_config()
    c.model.width = 1536
    c.model.num_heads = 12
    c.model.mlp_width = 8960
    c.model.num_layers = 30
    c.model.text_width = 4096
    c.model.latent_channels = 16
    c.model.window = (16, 15, 26) if arg.window else None  # token grid (16, 30, 52)
    c.model.dtype = "bfloat16"
    c.model.remat = "full"
    c.model.attention = "cudnn" if arg.cudnn else "xla"
    c.data.resolution = (480, 832)
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
    if arg.streamdit:
        paper_stage(c, arg.stage)
    return c
