"""GPU check of the streaming rollout: parity with the CPU on `tiny`, and a first `streamdit_4b` timing.

usage: python scripts/gpu_stream_check.py expected   # on the CPU: writes .whl/expected_tiny.npz
       python scripts/gpu_stream_check.py gpu OUT    # on the GPU (carry .whl): parity, then the timing
       python scripts/gpu_stream_check.py time OUT PRESET   # the timing alone, of another preset/variant
Random weights and random text states (no text model on the GPU machine); the timings go to
docs/benchmarks.md. Preliminary: issue 8's `streamdit bench rollout` replaces the timing part.
"""

import json
import re
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import randomize

from streamdit_jax.autoencoder import build_autoencoder
from streamdit_jax.config import load
from streamdit_jax.flow import Scheme
from streamdit_jax.model import init_params, single_device_mesh
from streamdit_jax.stream import Streamer, StreamModel, StreamSettings


class RandomText:
    """Token states drawn from the prompt's hash (no text model on the GPU machine)."""

    def __init__(self, width, max_length):
        self.width, self.max_length = width, max_length

    def __call__(self, prompts):
        seed = sum(map(ord, prompts[0]))
        tokens = jax.random.normal(jax.random.key(seed), (1, self.max_length, self.width)) * 0.5
        mask = jnp.arange(self.max_length)[None] < 7
        return tokens, mask


def tiny_model():
    cfg = load("tiny", num_devices=1)
    graphdef, params = init_params(cfg.model, jax.random.key(0))
    vae = nnx.jit(lambda: build_autoencoder(cfg.autoencoder, nnx.Rngs(0)))()
    text = RandomText(cfg.model.text_width, cfg.text.max_length)
    return StreamModel(cfg, graphdef, randomize(params, scale=0.05), vae, text, single_device_mesh())


def tiny_chunks():
    model = tiny_model()
    out = {}
    for name, scheme, scale in [("k0", Scheme(0, 4, 2, 1), 1.0), ("k2cfg", Scheme(2, 3, 2, 2), 3.0)]:
        streamer = Streamer(model, "a red circle", StreamSettings(scheme=scheme, guidance=scale, seed=1))
        stream = streamer.latent_chunks()
        chunks = [np.asarray(next(stream)) for _ in range(4)]
        streamer.set_prompt("a blue square")
        chunks += [np.asarray(next(stream)) for _ in range(3)]
        out[name] = np.concatenate(chunks, axis=1)
        decoded = Streamer(model, "a red circle", StreamSettings(scheme=scheme)).chunks()
        out[name + "_frames"] = np.concatenate([next(decoded) for _ in range(4)])
    return out


def timing(out_dir, preset="streamdit_4b:distilled"):
    """A preset (default streamdit_4b at 512x512, bf16) streamed with scheme (0, 8, 2, 1): one forward
    pass per chunk, as the distilled model runs."""
    cfg = load(preset, num_devices=1)
    graphdef, params = init_params(cfg.model, jax.random.key(0))
    params = jax.tree.map(lambda p: p + 0.02 * jnp.ones_like(p), params)  # no zero head
    vae = nnx.jit(lambda: build_autoencoder(cfg.autoencoder, nnx.Rngs(0)))()
    model = StreamModel(cfg, graphdef, params, vae, RandomText(4096, 512), single_device_mesh())
    results = {}
    for mode in ["latents", "decoded"]:
        streamer = Streamer(model, "a red circle", StreamSettings(scheme=Scheme(0, 8, 2, 1), guidance=1.0))
        start = time.perf_counter()
        stamps = []
        if mode == "latents":
            for i, chunk in enumerate(streamer.latent_chunks()):
                chunk.block_until_ready()
                stamps.append(time.perf_counter())
                if i == 40:
                    break
        else:
            for i, _ in enumerate(streamer.chunks()):
                stamps.append(time.perf_counter())
                if i == 40:
                    break
        frames_per_chunk = 4 * 2  # c = 2 latent frames, 4 video frames each
        steps = np.diff(stamps[10:])
        median = statistics.median(steps)
        results[mode] = {
            "first_chunk_s": stamps[0] - start,
            "step_ms_median": 1000 * median,
            "step_ms_p10_p90": [1000 * float(np.percentile(steps, q)) for q in (10, 90)],
            "video_fps": frames_per_chunk / median,
            "traces": streamer.rollout.traces,
        }
        print(mode, results[mode], flush=True)
    stats = jax.devices()[0].memory_stats() or {}
    results["peak_gib"] = stats.get("peak_bytes_in_use", 0) / 2**30
    results["device"] = jax.devices()[0].device_kind
    results["jax"] = jax.__version__
    results["preset"] = preset
    (out_dir / f"timing_{re.sub(r'[^A-Za-z0-9_]', '_', preset)}.json").write_text(
        json.dumps(results, indent=2)
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    if sys.argv[1] == "expected":
        np.savez(".whl/expected_tiny.npz", **tiny_chunks())
    elif sys.argv[1] == "time":
        timing(Path(sys.argv[2]), sys.argv[3])
    else:
        jax.config.update("jax_default_matmul_precision", "highest")
        out_dir = Path(sys.argv[2])
        got, want = tiny_chunks(), np.load(".whl/expected_tiny.npz")
        report = {}
        for name in want.files:
            a, b = got[name].astype(np.float64), want[name].astype(np.float64)
            report[name] = (
                float(np.abs(a - b).max())
                if "frames" in name
                else float(np.linalg.norm(a - b) / np.linalg.norm(b))
            )
        print("GPU vs CPU (latents: relative error; frames: max uint8 difference):", report, flush=True)
        (out_dir / "parity.json").write_text(json.dumps(report, indent=2))
        jax.config.update("jax_default_matmul_precision", None)
        timing(out_dir)
