"""Where is a StreamDiT's velocity loss, and where does its training budget go?

Encodes ``--scenes`` shapes scenes of the training split (the kind the model trained on) and of the
held-out split (the colour/motion pairs and wordings ``eval`` streams) with the checkpoint's VAE, takes
the first buffer of each (``buffer.frames`` latent frames), and measures the velocity MSE with one fixed
noise draw:

- by noise level: every frame at one sigma (0.1 ... 1.0; 1.0 is the start of the start-up);
- by chunk position: the buffer at the steady state of the checkpoint's scheme (chunk i at (i+1)/N),
  the loss of each chunk (0 = the oldest, about to be emitted; N-1 = the newest, pure noise).

Beside the levels it prints the share of training frames the config's partition mixture and level
density put in each tenth of [0, 1] (from 100,000 draws): where the training budget goes.

    python scripts/loss_split.py --checkpoint runs/demo/teacher [--scenes 64]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.data.encode import clip_frames
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.flow import Mixture, Scheme, add_noise, sample_sigmas
from streamdit_jax.flow.loss import frame_errors
from streamdit_jax.stream import StreamModel
from streamdit_jax.stream.rollout import Conditioning

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def buffers(model: StreamModel, split: str, scenes: int, batch: int = 8):
    """(latents [S, B, h, w, C], text [S, L, Dt], mask [S, L]) of the first buffer of each scene."""
    cfg = model.cfg
    ds = ShapesDataset(cfg.data.resolution, cfg.data.fps, clip_frames(cfg), seed=cfg.seed + 1000, split=split)
    encode = jax.jit(model.autoencoder.encode)
    latents, texts, masks = [], [], []
    for start in range(0, scenes, batch):
        items = [ds[i] for i in range(start, min(scenes, start + batch))]
        video = jnp.asarray(np.stack([item["video"] for item in items]))
        latents.append(np.asarray(encode(video))[:, : cfg.buffer.frames])
        text, mask = model.text_encoder([item["caption"] for item in items])
        texts.append(np.asarray(text, np.float32))
        masks.append(np.asarray(mask, bool))
    return np.concatenate(latents), np.concatenate(texts), np.concatenate(masks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--scenes", type=int, default=64)
    args = parser.parse_args(argv)

    model = StreamModel.restore(args.checkpoint)
    cfg = model.cfg
    scheme = Scheme(*cfg.scheme)
    rollout = model.rollout(scheme)

    @jax.jit
    def errors(latents, text, mask, sigma, noise):
        velocity = rollout.velocity_fn(model.params, Conditioning(text, mask))
        return frame_errors(velocity(add_noise(latents, sigma, noise), sigma), latents, noise)

    results = {}
    for split in ("train", "heldout"):
        latents, text, mask = buffers(model, split, args.scenes)
        noise = np.asarray(jax.random.normal(jax.random.key(0), latents.shape))
        b, f = latents.shape[:2]
        by_level = [
            float(errors(latents, text, mask, jnp.full((b, f), level), noise).mean()) for level in LEVELS
        ]
        steady = jnp.broadcast_to(jnp.asarray(scheme.steady_sigmas()), (b, f))
        per_frame = np.asarray(errors(latents, text, mask, steady, noise)).mean(0)
        k, c = scheme.reference, scheme.chunk_frames
        by_chunk = [float(per_frame[k + i * c : k + (i + 1) * c].mean()) for i in range(scheme.chunks)]
        results[split] = by_level, by_chunk

    drawn = sample_sigmas(jax.random.key(1), 100_000 // cfg.buffer.frames, cfg.buffer.frames,
                          Mixture.from_config(cfg.buffer))  # fmt: skip
    sigma = np.asarray(drawn.sigma)[np.asarray(drawn.loss_mask)]
    share = np.histogram(sigma, bins=10, range=(0.0, 1.0))[0] / sigma.size
    print(f"{args.checkpoint}: {args.scenes} scenes a split, buffers of {cfg.buffer.frames} latent frames")
    print(
        "\n| sigma | training frames in [sigma - 0.1, sigma) | loss, train-split scenes | held-out scenes |"
    )
    print("|---|---|---|---|")
    for i, level in enumerate(LEVELS):
        train, heldout = results["train"][0][i], results["heldout"][0][i]
        print(f"| {level:.1f} | {share[i]:.1%} | {train:.3f} | {heldout:.3f} |")
    print(f"\nsteady state of scheme {scheme} (chunk 0 oldest):\n")
    print("| chunk | sigma | loss, train-split scenes | held-out scenes |")
    print("|---|---|---|---|")
    top = scheme.steady_sigmas()
    for i in range(scheme.chunks):
        level = top[scheme.reference + i * scheme.chunk_frames]
        print(f"| {i} | {level:.2f} | {results['train'][1][i]:.3f} | {results['heldout'][1][i]:.3f} |")


if __name__ == "__main__":
    main()
