"""Shared test helpers."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

# The shortened `streamdit demo` on `tiny` that the shelf's `tiny_demo` runs: every stage in seconds. Its
# teacher trains on a (2, 2, 1, 2) mesh, so that it is also the multi-device-trained checkpoint that the
# stream and eval tests restore on other meshes.
TINY_DEMO = [
    "--config", "tiny",
    "--config.mesh.shape=(2,2,1,2)",
    "--config.vae_train.steps=4",
    "--config.vae_train.batch_size=8",
    "--config.vae_train.frames=9",
    "--config.vae_train.crop=(32,32)",
    "--config.vae_train.eval_batches=1",
    "--config.train.steps=4",
    "--config.train.batch_size=8",
    "--config.train.checkpoint_every=2",
    "--config.distill.steps=2",
    "--config.distill.teacher_micro_steps=2",
    "--config.distill.eval_batches=1",
    "--config.distill.checkpoint_every=2",
    "--config.demo.clips=20",
    "--config.demo.prompts=2",
    "--config.demo.seconds=6",
]  # fmt: skip
LATENT_SCENES = 160  # tiny_latents: shapes training scenes, one clip each


# Two evaluations of one float64 computation that differ only in how XLA orders its sums (a chunk against
# the whole call): a sum of n terms moves by at most n·u·sum|terms| (u = 2^-53 = 1.1e-16, Higham's
# gamma_n). The autoencoders' chains are at most ~16 sums of at most ~10^4 terms (3x3x3 kernels over <= 384
# channels) whose |terms| add to at most ~10^2 (O(1) activations, weights of scale <= 1): at most
# 16 · 10^4 · 1.1e-16 · 10^2 = 2e-9 on any CPU, whatever order it picks. A stale cache or a misaligned
# chunk moves values by more than 1e-3, which each such test also asserts it could see.
FLOAT64_REORDER_ATOL = 1e-8


def in_float64(module: nnx.Module) -> nnx.Module:
    """A copy of ``module`` with every floating-point state in float64 (use under ``jax.enable_x64()``)."""
    graphdef, state = nnx.split(module)
    wide = jax.tree.map(lambda x: x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x, state)
    return nnx.merge(graphdef, wide)


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def randomize(params: nnx.State, seed: int = 0, scale: float = 0.2) -> nnx.State:
    """Every parameter replaced by noise (scales around 1), so no zero-initialised gate hides a bug."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [
        (1.0 if "scale" in str(path) else 0.0) + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for k, leaf, (path, _) in zip(
            keys, leaves, jax.tree_util.tree_flatten_with_path(params)[0], strict=True
        )
    ]
    return jax.tree.unflatten(treedef, new)


def shapes_video(path, frames: int, fps: int = 8) -> bytes:
    """A held-still shapes scene (64x64, seed 1) written as an H.264 mp4; its bytes."""
    from streamdit_jax.data.shapes import ShapesDataset
    from streamdit_jax.stream import VideoSink

    video = ShapesDataset((64, 64), fps, frames, seed=1)[0]["video"]
    with VideoSink(fps, out=path) as sink:
        for frame in np.asarray(video):
            sink.write(np.round((frame + 1) * 127.5).clip(0, 255).astype(np.uint8))
    return path.read_bytes()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a `streamdit` subprocess: the CPU, this venv, this checkout, and the session's
    compilation cache and XLA flags (conftest), so that it loads what the tests compiled before it."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {"JAX_PLATFORMS": "cpu", "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "PYTHONPATH": str(root)}
    shared = [k for k in os.environ if (k.startswith("JAX_") and "CACHE" in k) or k == "XLA_FLAGS"]
    shared += [k for k in os.environ if k.startswith("AWS_") or k == "STREAMDIT_CACHE"]  # a test's bucket
    env |= {k: os.environ[k] for k in shared}
    return env | extra


def write_latent_shards(directory, videos, frames: int = 8) -> None:
    """Latent shards written by hand: ``videos`` is [(name, clips)], each clip one record of zeros with
    ``frames`` latent frames of tiny's grid, in the order `streamdit encode` writes them."""
    from array_record.python.array_record_module import ArrayRecordWriter

    from streamdit_jax.data.latents import EMPTY_PROMPT, pack

    directory.mkdir()
    writer = ArrayRecordWriter(str(directory / "shard-00000.array_record"), "group_size:1")
    for name, clips in videos:
        for clip in range(clips):
            writer.write(pack({
                "latents": np.zeros((frames, 8, 8, 16), np.float16), "text": np.zeros((40, 384), np.float16),
                "text_mask": np.ones(40, bool), "caption": name, "video": name, "clip": clip,
            }))  # fmt: skip
    writer.close()
    np.savez(directory / EMPTY_PROMPT, text=np.zeros((40, 384), np.float16), text_mask=np.ones(40, bool))


def upload_folder(folder, url: str) -> str:
    """Copies a local folder's files into ``url`` (``s3://bucket/prefix``) with boto3; returns ``url``."""
    from pathlib import Path

    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for path in Path(folder).rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}".lstrip("/"))
    return url
