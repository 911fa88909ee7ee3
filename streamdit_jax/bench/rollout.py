"""``streamdit bench rollout``: the jitted streaming rollout of a preset, timed as a user streams it.

Random weights (speed does not depend on them) and a stand-in text encoder. Two modes: ``latents``
(the DiT alone: each emitted chunk is waited for on the device) and ``decoded`` (uint8 frames in hand,
decoded on the Streamer's thread by the VAE's decoder or, with ``decoder="tiny"``, the tiny one). Each
mode streams ``warmup + steps`` chunks; the step time is the interval between consecutive chunks after
the warm-up. The first frame is timed twice: in the process's first stream (compilation included) and
in a fresh stream once everything is compiled (start-up included: the denoising of the first buffer,
then the first step).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder import build_autoencoder
from streamdit_jax.autoencoder.decoder_training import tiny_decoder_config
from streamdit_jax.autoencoder.tiny import TinyDecoder
from streamdit_jax.bench.common import (
    RandomText,
    device_info,
    peak_memory_gib,
    peak_throughput,
    perturbed,
    spread_ms,
)
from streamdit_jax.bench.flops import rollout_step_flops
from streamdit_jax.config import Config, ConfigError
from streamdit_jax.flow import Scheme
from streamdit_jax.model import init_params, single_device_mesh
from streamdit_jax.stream import Streamer, StreamModel, StreamSettings
from streamdit_jax.stream.model import check_decoder

MODES = ("latents", "decoded")
PROMPT = "a red circle moves to the right"


def random_stream_model(cfg: Config, seed: int = 0, decoder: str = "full") -> StreamModel:
    """A StreamModel of ``cfg`` on one device with random weights, a random autoencoder, :class:`RandomText`
    and, with ``decoder="tiny"``, a random tiny decoder of ``decoder_train``'s width."""
    check_decoder(decoder, "random weights" if decoder == "tiny" else None)
    mesh = single_device_mesh()
    graphdef, params = init_params(cfg.model, jax.random.key(seed), mesh, cfg.mesh.rules)
    vae = nnx.jit(lambda: build_autoencoder(cfg.autoencoder, nnx.Rngs(seed)))()
    text = RandomText(cfg.model.text_width, cfg.text.max_length)
    tiny = None
    if decoder == "tiny":
        tiny = nnx.jit(lambda: TinyDecoder(tiny_decoder_config(cfg), rngs=nnx.Rngs(seed)))()
    params = perturbed(params, seed=seed)
    return StreamModel(cfg, graphdef, params, vae, text, mesh, tiny, "random weights" if tiny else "")


def _chunks(streamer: Streamer, mode: str):
    """Chunks in hand: latents waited for on the device, or decoded uint8 frames."""
    if mode == "latents":
        for chunk in streamer.latent_chunks():
            yield chunk.block_until_ready()
    else:
        yield from streamer.chunks()


def _first_chunk_s(model: StreamModel, mode: str, settings: StreamSettings) -> float:
    start = time.perf_counter()
    streamer = Streamer(model, PROMPT, settings)
    try:
        next(_chunks(streamer, mode))
        return time.perf_counter() - start
    finally:
        streamer.close()


def _check_counts(modes: tuple[str, ...], steps: int, warmup: int) -> None:
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ConfigError(f"unknown rollout modes {sorted(unknown)}. Fix: choose among {MODES}")
    if steps < 1 or warmup < 0:
        raise ConfigError(f"--steps {steps} --warmup {warmup}: need at least one timed step and warmup >= 0")


def _chunk_times(model: StreamModel, mode: str, settings: StreamSettings, chunks: int) -> tuple[list, int]:
    """(the arrival time of each of ``chunks`` chunks of a fresh stream, its rollout's trace count)."""
    streamer = Streamer(model, PROMPT, settings)
    stamps = []
    try:
        for _ in _chunks(streamer, mode):
            stamps.append(time.perf_counter())
            if len(stamps) == chunks:
                break
        return stamps, streamer.rollout.traces
    finally:
        streamer.close()


def bench_rollout(
    cfg: Config,
    scheme: Scheme | None = None,
    guidance: float | None = None,
    steps: int = 30,
    warmup: int = 5,
    modes: tuple[str, ...] = MODES,
    peak_tflops: float | None = None,
    decoder: str = "full",
) -> dict:
    """Times the stream of ``cfg`` under ``scheme`` (default: the config's) in each of ``modes``, frames
    made by the ``decoder`` ("full" or "tiny")."""
    _check_counts(modes, steps, warmup)
    settings = StreamSettings(scheme=scheme, guidance=guidance).resolved(cfg)
    scheme, scale = settings.scheme, settings.guidance
    peak, peak_source = peak_throughput(peak_tflops)
    flops = rollout_step_flops(cfg, scheme, scale)
    process_start = time.perf_counter()  # the cold first frame counts from here: build, compile, start
    model = random_stream_model(cfg, decoder=decoder)
    frames_per_chunk = model.autoencoder.cfg.temporal_compression * scheme.chunk_frames
    results: dict = {}
    cold_first_frame = None
    for mode in modes:
        stamps, traces = _chunk_times(model, mode, settings, warmup + steps + 1)
        if cold_first_frame is None:
            cold_first_frame = stamps[0] - process_start
        step = spread_ms(np.diff(stamps[warmup:]))
        seconds = step["median"] / 1000.0
        results[mode] = {
            "step_ms": step,
            "video_fps": frames_per_chunk / seconds,
            "first_frame_s": _first_chunk_s(model, mode, settings),
            "mfu": flops / seconds / peak,
            "traces": traces,
        }
    memory, memory_source = peak_memory_gib(jax.local_devices()[:1])
    return {
        "bench": "rollout",
        **device_info(),
        "resolution": list(cfg.data.resolution),
        "latent_grid": [scheme.frames, *cfg.latent_grid[1:]],
        "scheme": list(dataclasses.astuple(scheme)),
        "guidance": scale,
        "dtype": cfg.model.dtype,
        "forward_passes_per_step": scheme.micro_steps * (1 if scale == 1.0 else 2),
        "video_frames_per_step": frames_per_chunk,
        "flops_per_step": flops,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "cold_first_frame_s": cold_first_frame,
        "peak_gib": memory[0],
        "peak_memory_source": memory_source,
        "warmup": warmup,
        "steps": steps,
        "weights": "random",
        "decoder": decoder,
        "modes": results,
    }
