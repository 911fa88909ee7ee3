"""Does the text encoder separate the shapes world's colour, shape and motion words?

For random one-object scenes, the caption is encoded (MiniLM, the tiny/small presets' encoder), its
token states mean-pooled over the valid tokens, and the cosine distance measured between:

- the caption and the same caption with only the colour, only the shape or only the motion changed
  (same template and wording draws);
- the caption and a paraphrase of the same scene (another template and other synonyms).

A factor the denoiser must follow should move the embedding more than a paraphrase does. Prints a
markdown table (mean and 10th/90th percentiles over the scenes).

    python scripts/prompt_separation.py [--scenes 200] [--split train|heldout]
"""

from __future__ import annotations

import argparse

import numpy as np

from streamdit_jax.config import load
from streamdit_jax.data.shapes import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, ObjectSpec, describe
from streamdit_jax.text import build_encoder


def _pooled(encoder, prompts: list[str]) -> np.ndarray:
    states, mask = encoder(prompts)
    states, mask = np.asarray(states, np.float64), np.asarray(mask, np.float64)[..., None]
    pooled = (states * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--split", choices=("train", "heldout"), default="train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    encoder = build_encoder(load("small", num_devices=1).text)
    rng = np.random.default_rng(args.seed)
    factors = {"colour": len(COLOURS), "shape": len(SHAPES), "motion": len(MOTIONS)}
    captions: dict[str, list[str]] = {"base": [], "paraphrase": [], **{f: [] for f in factors}}
    for _ in range(args.scenes):
        counts = (len(COLOURS), len(SHAPES), len(SIZES), len(MOTIONS))
        spec = ObjectSpec(*(int(rng.integers(n)) for n in counts))
        background, wording = int(rng.integers(len(BACKGROUNDS))), int(rng.integers(2**31))

        def caption(s: ObjectSpec, seed: int = wording, bg: int = background) -> str:
            return describe([s], bg, np.random.default_rng(seed), args.split)

        captions["base"].append(caption(spec))
        captions["paraphrase"].append(caption(spec, seed=wording + 1))
        for i, (factor, count) in enumerate(factors.items()):
            changed = list(spec)
            changed[(0, 1, 3)[i]] = (spec[(0, 1, 3)[i]] + 1 + int(rng.integers(count - 1))) % count
            captions[factor].append(caption(ObjectSpec(*changed)))

    base = _pooled(encoder, captions["base"])
    print(f"{args.scenes} one-object scenes, {args.split} templates; cosine distance, mean-pooled MiniLM")
    print("\n| caption changed in | mean | p10 | p90 |\n|---|---|---|---|")
    for name in ("paraphrase", *factors):
        distance = 1.0 - (base * _pooled(encoder, captions[name])).sum(-1)
        p10, p90 = np.percentile(distance, [10, 90])
        print(f"| {name} | {distance.mean():.4f} | {p10:.4f} | {p90:.4f} |")
    print(f"\ne.g. {captions['base'][0]!r}\n  motion changed: {captions['motion'][0]!r}")


if __name__ == "__main__":
    main()
