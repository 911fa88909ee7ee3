"""How an autoencoder's decoder treats latents a transformer might make: held-out clips encoded, perturbed
by Gaussian noise of a given spread (in the normalised latents' units), decoded and scored by the
shapes detector (objects a frame: 1 in the true clips); and the midpoint of two clips' latents.

    python scripts/latent_robustness.py runs/demo/autoencoder [more checkpoints ...] [--clips 4]

A decoder that turns small latent errors into many coloured fragments gives a transformer's output the
same look (docs/evaluation.md#issue-28-the-latent-space-first).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.autoencoder import restore_autoencoder
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.eval.detect import detect

NOISE = (0.0, 0.1, 0.3, 0.5)


def objects_per_frame(video: jax.Array) -> float:
    """Mean objects the detector finds in the frames (every 4th) that hold any."""
    counts = detect(np.asarray(video).reshape(-1, *video.shape[-3:])[::4]).present.sum(axis=1)
    return float(counts[counts > 0].mean()) if counts.any() else float("nan")


def psnr(a: jax.Array, b: jax.Array) -> float:
    return float(10 * np.log10(4.0 / np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--clips", type=int, default=4, help="held-out 33-frame clips (and as many more)")
    args = parser.parse_args()
    ds = ShapesDataset(split="heldout", frames=33, resolution=(64, 64), fps=8, seed=0)
    first = jnp.asarray(np.stack([ds[i]["video"] for i in range(args.clips)]))
    second = jnp.asarray(np.stack([ds[i]["video"] for i in range(args.clips, 2 * args.clips)]))
    print(f"true clips: {objects_per_frame(first):.2f} objects a frame")
    noise_cells = " | ".join(f"noise {n}" for n in NOISE)
    print(f"| autoencoder | {noise_cells} | midpoint of two clips |")
    print("|---" * (len(NOISE) + 2) + "|")
    for checkpoint in args.checkpoints:
        ae = restore_autoencoder(checkpoint)
        latents = ae.encode(first)
        cells = []
        for n in NOISE:
            noisy = latents + n * jax.random.normal(jax.random.key(1), latents.shape)
            video = ae.decode(noisy)
            cells.append(f"{objects_per_frame(video):.2f} ({psnr(video, first):.1f} dB)")
        midpoint = ae.decode((latents + ae.encode(second)) / 2)
        cells.append(f"{objects_per_frame(midpoint):.2f}")
        print(f"| {checkpoint} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
