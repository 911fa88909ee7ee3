"""Analytic FLOP counts of the StreamDiT and the peak throughput that MFU divides them by.

Only matrix products are counted, at 2 FLOPs per multiply-add; norms, RoPE, softmax, modulation and
the time embedding's sinusoids are left out (a few percent at the smallest widths, less at larger
ones). Per sample, with T tokens, D = width, M = mlp_width, L text tokens, W tokens per attention
window, P = patch features, F latent frames and E = freq_dim:

- patch embedding ``2·T·P·D`` and head ``2·T·D·P``;
- time embedding ``2·F·(E·D + D·D)`` and its projection to the six modulations ``2·F·D·6D``;
- text embedding ``2·L·(Dt·D + D·D)``;
- per block: self-attention projections ``8·T·D²``, scores and values in windows ``4·T·W·D``,
  cross-attention query and output ``4·T·D²``, its keys and values ``4·L·D²``, scores and values
  ``4·T·L·D``; the MLP ``4·T·D·M``.

A training step counts 3 forward passes (the backward pass costs two), as MFU is usually defined:
recomputation under ``model.remat`` is not counted as useful work.
"""

from __future__ import annotations

import math

import jax

from streamdit_jax.config import Config, ModelConfig
from streamdit_jax.flow import Scheme
from streamdit_jax.model.attention import resolve_window

# Dense bfloat16 peak FLOP/s per chip, by jax.Device.device_kind (vendor data sheets, no sparsity).
PEAK_BF16_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,  # SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def forward_flops(
    model: ModelConfig, latent_grid: tuple[int, int, int], text_length: int, batch: int = 1
) -> int:
    """FLOPs of one forward pass of ``batch`` buffers of latent grid (F, h, w) with ``text_length`` tokens."""
    pf, ph, pw = model.patch_size
    frames, height, width = latent_grid
    grid = (frames // pf, height // ph, width // pw)
    tokens = math.prod(grid)
    window = math.prod(resolve_window(grid, model.window))
    d, m, p, e, length = model.width, model.mlp_width, model.patch_features, model.freq_dim, text_length
    embed = 2 * tokens * p * d * 2  # patch embedding and head
    time = 2 * grid[0] * (e * d + d * d) + 2 * grid[0] * d * 6 * d
    text = 2 * length * (model.text_width * d + d * d)
    block = (
        8 * tokens * d * d  # self-attention q, k, v, out
        + 4 * tokens * window * d  # scores and values within windows
        + 4 * tokens * d * d  # cross-attention q, out
        + 4 * length * d * d  # cross-attention k, v of the text
        + 4 * tokens * length * d  # cross-attention scores and values
        + 4 * tokens * d * m  # MLP
    )
    return batch * (embed + time + text + model.num_layers * block)


def rollout_step_flops(cfg: Config, scheme: Scheme, guidance: float) -> int:
    """FLOPs of one stream step: s micro-steps over the whole buffer, each doubled under guidance."""
    passes = scheme.micro_steps * (1 if guidance == 1.0 else 2)
    grid = (scheme.frames, *cfg.latent_grid[1:])
    return passes * forward_flops(cfg.model, grid, cfg.text.max_length)


def train_step_flops(cfg: Config) -> int:
    """Model FLOPs of one optimizer step on ``train.batch_size`` buffers: three forward passes' worth."""
    return 3 * forward_flops(cfg.model, cfg.latent_grid, cfg.text.max_length, cfg.train.batch_size)


def peak_flops(device: jax.Device) -> float | None:
    """The chip's dense bf16 peak FLOP/s, or None where it is not tabled (CPUs: ``common.matmul_peak``)."""
    return PEAK_BF16_FLOPS.get(device.device_kind)
