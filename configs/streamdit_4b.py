"""streamdit_4b: the paper's 4B StreamDiT at 512x512 (16-latent-frame buffer, 32x32 tokens per frame).

Variants: 'distilled' (s = 1, no CFG: one forward pass per emitted chunk), 'cudnn' (cuDNN attention),
'res=N' (square resolution in pixels), 'finetune,stage=S' (the paper's streaming fine-tuning stage S of 3:
configs/_stages.py, docs/training.md).
"""

from streamdit_jax.config import base_config, paper_stage, parse_arg


def get_config(arg=None):
    arg = parse_arg(arg, distilled=False, cudnn=False, res=512, finetune=False, stage=1)
    c = base_config()
    c.model.width = 3072
    c.model.num_heads = 24
    c.model.mlp_width = 8192
    c.model.num_layers = 32
    c.model.text_width = 4096  # umT5-XXL
    c.model.latent_channels = 16
    c.model.window = (16, 16, 16)  # full time, quarter space at 512p
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"
    c.model.remat = "full"
    c.model.attention = "cudnn" if arg.cudnn else "xla"
    c.data.resolution = (arg.res, arg.res)
    c.data.fps = 16
    c.train.batch_size = 128
    c.text.encoder = "umt5"  # set text.path to a umT5 (or Wan pipeline) folder
    c.text.max_length = 512
    c.buffer.frames = 16
    c.buffer.chunk_sizes = (1, 2, 4, 8, 16)
    c.buffer.chunk_weights = (1.0, 1.0, 1.0, 1.0, 1.0)
    c.buffer.uniform_share = 0.1
    # The paper's teacher scheme (K=0, c=2, N=8, s=16 with CFG); 'distilled' is the student's s=1.
    c.rollout.chunk_frames = 2
    c.rollout.micro_steps = 1 if arg.distilled else 16
    c.rollout.guidance = 1.0 if arg.distilled else 5.0
    c.optimizer.learning_rate = 1e-4
    c.optimizer.warmup_steps = 1000
    c.mesh.shape = (1, -1, 1, 1)
    if arg.finetune:
        paper_stage(c, arg.stage)
    return c
