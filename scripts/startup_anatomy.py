"""What does a stream's start-up buffer look like, step by step?

The first buffer of a text-to-video stream is a uniform-mode denoise of the whole buffer from pure noise
(N·s' Euler steps, ``stream/rollout.py``). For held-out prompts (the first prompt of each of ``eval``'s
held-out schedules) and several seeds, this replays that denoise for each start-up setting (micro-steps
per chunk position s', CFG scale) and, after every round of s' steps, decodes the model's clean estimate
``x − sigma·v`` of the buffer and runs the shapes detector on it. Per round it reports the objects seen
per frame (one is what the prompt asks for), the share of frames holding exactly one object, and the
share whose dominant colour is the prompt's; ``final`` is the denoised buffer itself. A PNG shows the
first prompt's estimates round by round.

With ``--strength X < 1`` the denoise starts instead from a held-out scene's true latents noised to X
(its caption as the prompt; SDEdit): where the model's own generation fails and a partly noised true
video still comes out right, the failure lies at noise levels above X.

    python scripts/startup_anatomy.py --checkpoint runs/demo/student [--setting 1,1 --setting 16,3 ...]
        [--prompts 4] [--seeds 2] [--png startup.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.eval.detect import detect
from streamdit_jax.eval.run import EvalPrompt, heldout_prompts
from streamdit_jax.flow import Scheme, add_noise
from streamdit_jax.stream import StreamModel
from streamdit_jax.stream.rollout import Conditioning


def estimates(
    model: StreamModel, scheme: Scheme, prompt: str, seed: int, steps: int, scale: float,
    initial: jax.Array | None = None, strength: float = 1.0,
):  # fmt: skip
    """The decoded clean estimates [rounds + 1, T, H, W, 3] in [-1, 1] of a start-up denoise (from
    ``initial`` latents noised to ``strength``, else from pure noise)."""
    rollout = model.rollout(scheme)
    text, mask = model.text_encoder([prompt])
    null, null_mask = model.text_encoder([""])
    cond = Conditioning(jnp.asarray(text), jnp.asarray(mask, bool))
    if scale != 1.0:
        cond = Conditioning(
            cond.text, cond.text_mask, jnp.asarray(null), jnp.asarray(null_mask, bool), jnp.asarray(scale)
        )
    velocity = jax.jit(rollout.velocity_fn(model.params, cond))
    cfg = model.cfg
    shape = (1, scheme.frames, *cfg.latent_grid[1:], cfg.model.latent_channels)
    initial = jnp.zeros(shape) if initial is None else initial
    x = add_noise(initial, jnp.full((1, 1), strength), jax.random.normal(jax.random.key(seed), shape))
    total = scheme.chunks * steps
    clean = []
    for i in range(total):
        sigma = jnp.full((1, scheme.frames), strength * (1.0 - i / total), jnp.float32)
        v = velocity(x, sigma)
        if i % steps == 0:
            clean.append(x - sigma[:, :, None, None, None] * v)
        x = x - strength * v / total
    clean.append(x)
    return np.stack([np.asarray(model.autoencoder.decode(c))[0] for c in clean])


def heldout_scenes(model: StreamModel, scheme: Scheme, count: int):
    """(prompts, first-buffer latents [1, B, h, w, C]) of ``count`` one-object held-out scenes."""
    frames = 1 + model.autoencoder.cfg.temporal_compression * (scheme.frames - 1)
    ds = ShapesDataset(model.cfg.data.resolution, model.cfg.data.fps, frames, seed=0, split="heldout")
    prompts, latents = [], []
    for i in range(100 * count):
        item = ds[i]
        if item["factors"]["present"][1]:
            continue  # two objects
        f = item["factors"]
        asks = ((int(f["colour"][0, 0]), int(f["shape"][0, 0]), int(f["motion"][0, 0])),)
        prompts.append(EvalPrompt(f"scene-{i}", ((0.0, item["caption"]),), asks))
        latents.append(model.autoencoder.encode(jnp.asarray(item["video"][None])))
        if len(prompts) == count:
            return prompts, latents
    raise AssertionError("too few one-object held-out scenes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--setting", action="append", help="s',cfg (default: 1,1 4,1 16,1 16,3)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--png", help="write the first prompt's estimates, round by round, here")
    parser.add_argument("--strength", type=float, default=1.0, help="< 1: start from held-out true latents")
    args = parser.parse_args(argv)

    model = StreamModel.restore(args.checkpoint)
    scheme = Scheme(*model.cfg.scheme)
    settings = [tuple(float(v) for v in s.split(",")) for s in args.setting or ("1,1", "4,1", "16,1", "16,3")]
    prompts = heldout_prompts(args.prompts, 60.0, segments=4)
    scenes = [None] * len(prompts)
    if args.strength < 1.0:
        prompts, scenes = heldout_scenes(model, scheme, args.prompts)
    print(f"{args.checkpoint}: scheme {scheme}, {len(prompts)} held-out prompts x {args.seeds} seeds")
    print("| s' | CFG | round (sigma at its start) | objects per frame | one object | prompt's colour |")
    print("|---|---|---|---|---|---|")
    strips = []
    for steps, scale in settings:
        per_round = []
        for p, prompt in enumerate(prompts):
            colour = prompt.asks[0][0]
            for seed in range(args.seeds):
                video = estimates(model, scheme, prompt.schedule[0][1], seed, int(steps), scale, scenes[p],
                                  args.strength)  # fmt: skip
                if p == 0 and seed == 0:
                    strips.append((steps, scale, video))
                rows = []
                for frames in video:
                    det = detect(frames)
                    count = det.present.sum(axis=1)
                    rows.append((count.mean(), np.mean(count == 1), np.mean(det.dominant() == colour)))
                per_round.append(rows)
        means = np.mean(per_round, axis=0)  # [rounds + 1, 3]
        for r, (objects, one, right) in enumerate(means):
            label = "final" if r == len(means) - 1 else f"{r} ({args.strength * (1 - r / scheme.chunks):.2f})"
            print(f"| {steps:g} | {scale:g} | {label} | {objects:.2f} | {one:.0%} | {right:.0%} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rounds = strips[0][2].shape[0]
        shown = np.linspace(0, strips[0][2].shape[1] - 1, 4).round().astype(int)
        fig, axes = plt.subplots(
            len(strips), rounds, figsize=(1.6 * rounds, 1.8 * len(strips)), squeeze=False
        )
        for row, (steps, scale, video) in enumerate(strips):
            for r in range(rounds):
                tile = np.concatenate([video[r, f] for f in shown], axis=1)
                axes[row, r].imshow((tile + 1.0) / 2.0)
                axes[row, r].axis("off")
                when = "final" if r == rounds - 1 else f"round {r}"
                axes[row, r].set_title(f"s'={steps:g} cfg={scale:g}, {when}", fontsize=6)
        fig.suptitle(prompts[0].schedule[0][1], fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
