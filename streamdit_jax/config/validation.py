"""What a valid configuration is: the error type, the range checks every section uses, and the checks
that span sections (buffer and rollout, the token grid and its windows, clips on the VAE's grid), which
:class:`~streamdit_jax.config.schema.Config` runs when it is built."""

from __future__ import annotations

import math
import typing

from streamdit_jax.choices import LEVEL_DENSITIES, window_shifts

if typing.TYPE_CHECKING:
    from streamdit_jax.config.schema import (
        AutoencoderConfig,
        BufferConfig,
        ClipTrainConfig,
        Config,
        DataConfig,
        RolloutConfig,
    )


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


def validate_config(cfg: Config) -> None:
    """The checks across sections of a whole :class:`Config` (each section has checked itself)."""
    if cfg.model.latent_channels != cfg.autoencoder.latent_channels:
        _fail(
            "model.latent_channels",
            f"{cfg.model.latent_channels} differs from autoencoder.latent_channels="
            f"{cfg.autoencoder.latent_channels}",
            "the transformer works on the autoencoder's latents: set both to the same number",
        )
    width = cfg.text.width
    if cfg.model.text_width != width:
        _fail(
            "model.text_width",
            f"{cfg.model.text_width}, but text.encoder={cfg.text.encoder!r} gives {width}-wide tokens",
            f"set model.text_width={width}, or choose the text encoder the model was built for",
        )
    _validate_buffer(cfg.buffer, cfg.rollout)
    if cfg.buffer.frames % cfg.distill.chunk_frames:
        _fail(
            "distill.chunk_frames",
            f"chunks of {cfg.distill.chunk_frames} do not fill the buffer of {cfg.buffer.frames} "
            "(distillation uses K = 0)",
            f"choose a divisor of {cfg.buffer.frames}",
        )
    _validate_grid(cfg)
    if cfg.data.clip_latents and cfg.data.clip_latents < cfg.buffer.frames:
        _fail(
            "data.clip_latents",
            f"{cfg.data.clip_latents} latent frames cannot hold a buffer of {cfg.buffer.frames}",
            f"use 0 (the buffer's length) or at least {cfg.buffer.frames}",
        )
    for section in (cfg.vae_train, cfg.decoder_train):
        _validate_clip(section, cfg.autoencoder, cfg.data)
    step = cfg.autoencoder.temporal_compression
    if cfg.vae_train.context % step or (cfg.vae_train.context and cfg.vae_train.frames == 1):
        _fail(
            "vae_train.context",
            f"{cfg.vae_train.context} context frames after {cfg.vae_train.frames}-frame starts: the "
            f"context must be a multiple of {step} (whole latent frames) and the starts longer than 1",
            f"use e.g. {step * max(1, cfg.vae_train.context // step)} with vae_train.frames=9, or 0",
        )


def _validate_clip(section: ClipTrainConfig, autoencoder: AutoencoderConfig, data: DataConfig) -> None:
    """A VAE-side training section's clips: 1 + tk frames, crops on the VAE's grid within the frame."""
    name, frames, crop = section.SECTION, section.frames, section.crop
    s = autoencoder.spatial_compression
    fits = all(c % s == 0 and 0 < c <= r for c, r in zip(crop, data.resolution, strict=True))
    if any(crop) and not fits:
        _fail(
            f"{name}.crop",
            f"{crop} is not a positive multiple of the VAE's {s}x compression within data.resolution "
            f"{data.resolution}",
            f"use multiples of {s} up to the resolution, or (0, 0) for whole frames",
        )
    step = autoencoder.temporal_compression
    if (frames - 1) % step:
        _fail(
            f"{name}.frames",
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
