"""``streamdit encode``: a folder of captioned videos -> ArrayRecord shards of latents + text states.

Videos are resampled to the preset's frame rate, resized and centre-cropped to its resolution, and cut
into clips of F = ``data.clip_latents`` latent frames (1 + 4(F - 1) frames; by default F is the latent
buffer's length). Shard k holds the clips of videos
[k*S, (k+1)*S) of the caption file; process p of P writes shards p, p + P, ... A shard is written under a
temporary name and renamed when complete, with a manifest beside it, so a rerun skips finished shards.
Unreadable and too-short videos are skipped, each with a log line, and counted.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.autoencoder import Autoencoder
from streamdit_jax.config import Config
from streamdit_jax.data.frames import conform, read_video
from streamdit_jax.data.latents import EMPTY_PROMPT, SHARD_SUFFIX, pack
from streamdit_jax.storage import is_url, local_input, upload, workpath, write_with

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi")
# captions -> (text states [B, L, D], mask [B, L])
TextEncoder = Callable[[list[str]], tuple[jax.Array, jax.Array]]


@dataclass
class EncodeReport:
    shards_written: int = 0
    shards_skipped: int = 0  # already complete (resume)
    videos: int = 0
    clips: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"video": ..., "reason": ...}

    def add(self, counts: dict[str, Any]) -> None:
        """Counts one written shard (its manifest's ``counts``)."""
        self.shards_written += 1
        self.videos += counts["videos"]
        self.clips += counts["clips"]
        self.skipped += counts["skipped"]


def read_captions(path: str | Path, videos_dir: str | Path) -> list[tuple[Path, str]]:
    """(video path, caption) pairs from a jsonl of {"video": path, "caption": text}; checked up front."""
    path, videos_dir = local_input(path, "caption file"), local_input(videos_dir, "video folder")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            video, caption = item["video"], item["caption"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f'{path}:{number}: expected a JSON object with "video" and "caption", got {line[:80]!r} ({e})'
            ) from e
        entries.append((videos_dir / video, str(caption)))
    if not entries:
        raise ValueError(f"{path} lists no videos")
    return entries


def clip_latents(cfg: Config) -> int:
    """Latent frames per clip: ``data.clip_latents``, or the buffer's length when that is 0."""
    return cfg.data.clip_latents or cfg.buffer.frames


def clip_frames(cfg: Config) -> int:
    """Video frames per clip: the causal first frame, then 4 per further latent frame."""
    return 1 + cfg.autoencoder.temporal_compression * (clip_latents(cfg) - 1)


@nnx.jit
def encode_clips(vae: Autoencoder, clips: jax.Array) -> jax.Array:
    """Normalised latents of clips [B, T, H, W, 3] (jitted; one compilation per shape)."""
    return vae.encode(clips)


class ClipEncoder:
    """Encodes clips in fixed batches of ``batch`` (one compilation): ``add`` queues clips with their
    records and returns the records whose latents are ready; ``flush`` pads and encodes the rest."""

    def __init__(self, vae: Autoencoder, batch: int):
        self.vae, self.batch = vae, batch
        self.pending: list[tuple[dict[str, Any], np.ndarray]] = []

    def add(self, record: dict[str, Any], clip: np.ndarray) -> list[dict[str, Any]]:
        self.pending.append((record, clip))
        return self._encode(self.batch) if len(self.pending) >= self.batch else []

    def flush(self) -> list[dict[str, Any]]:
        return self._encode(len(self.pending)) if self.pending else []

    def _encode(self, count: int) -> list[dict[str, Any]]:
        part, self.pending = self.pending[:count], self.pending[count:]
        clips = np.stack([clip for _, clip in part])
        padded = np.concatenate([clips, np.zeros((self.batch - count, *clips.shape[1:]), clips.dtype)])
        latents = np.asarray(encode_clips(self.vae, jnp.asarray(padded)))[:count].astype(np.float16)
        return [{**record, "latents": z} for (record, _), z in zip(part, latents, strict=True)]


@dataclass
class Item:
    """One source video's clips [n, T, H, W, 3] in [-1, 1] and caption, or why it is skipped."""

    name: str
    caption: str
    clips: np.ndarray | None
    reason: str = ""


def encode_videos(
    cfg: Config,
    entries: list[tuple[Path, str]],
    out: str | Path,
    vae: Autoencoder,
    text_encoder: TextEncoder,
    videos_per_shard: int = 64,
    batch: int = 4,
    process: int = 0,
    processes: int = 1,
    progress: bool = True,
) -> EncodeReport:
    """Writes this process's shards of ``entries`` (video, caption) to ``out``."""
    length = clip_frames(cfg)

    def load(index: int) -> Item:
        path, caption = entries[index]
        clips, reason = _clips(path, cfg, length)
        return Item(str(path), caption, clips, reason)

    return write_shards(
        out, len(entries), load, vae, text_encoder, videos_per_shard, batch, process, processes, progress
    )


def encode_shapes(
    cfg: Config,
    count: int,
    out: str | Path,
    vae: Autoencoder,
    text_encoder: TextEncoder,
    videos_per_shard: int = 256,
    batch: int = 8,
    progress: bool = True,
) -> EncodeReport:
    """Writes ``count`` clips of the shapes training split (``cfg.seed``), one per scene, to ``out``."""
    from streamdit_jax.data.shapes import ShapesDataset

    scenes = ShapesDataset(cfg.data.resolution, cfg.data.fps, clip_frames(cfg), seed=cfg.seed, split="train")

    def load(index: int) -> Item:
        item = scenes[index]
        return Item(f"shapes/train/{index}", item["caption"], item["video"][None])

    return write_shards(out, count, load, vae, text_encoder, videos_per_shard, batch, 0, 1, progress)


def write_shards(
    out: str | Path,
    count: int,
    load: Callable[[int], Item],
    vae: Autoencoder,
    text_encoder: TextEncoder,
    videos_per_shard: int,
    batch: int,
    process: int = 0,
    processes: int = 1,
    progress: bool = True,
) -> EncodeReport:
    """Encodes items ``0 .. count - 1`` (``load(i)``) into shards of ``videos_per_shard`` items in
    ``out``; process p of P writes shards p, p + P, ...; complete shards are skipped."""
    from tqdm import tqdm

    out = workpath(out)
    out.mkdir(parents=True, exist_ok=True)
    if process == 0:
        _write_empty_prompt(out, text_encoder)
    report = EncodeReport()
    encoder = ClipEncoder(vae, batch)
    shards = range(process, math.ceil(count / videos_per_shard), processes)
    bar = tqdm(total=len(shards) * videos_per_shard, desc="encode", disable=not progress, dynamic_ncols=True)
    for shard in shards:
        name = f"shard-{shard:05d}"
        if (out / f"{name}.json").exists():
            report.shards_skipped += 1
            bar.update(videos_per_shard)
            continue
        items = range(shard * videos_per_shard, min((shard + 1) * videos_per_shard, count))
        counts = _write_shard(out, name, (load(i) for i in _advancing(bar, items)), encoder, text_encoder)
        report.add(counts)
    bar.close()
    return report


def _advancing(bar: Any, indices: range) -> Iterator[int]:
    """``indices``, advancing ``bar`` by one at each."""
    for index in indices:
        bar.update(1)
        yield index


def _write_empty_prompt(out: Path, text_encoder: TextEncoder) -> None:
    """The unconditional prompt's text states (classifier-free guidance), once per folder."""
    empty = out / EMPTY_PROMPT
    if not empty.exists():
        tokens, mask = text_encoder([""])
        states = {"text": np.asarray(tokens[0], np.float16), "text_mask": np.asarray(mask[0], bool)}
        write_with(empty, lambda f: np.savez(f, **states))


def _write_shard(
    out: Path, name: str, items: Iterable[Item], encoder: ClipEncoder, text_encoder: TextEncoder
) -> dict[str, Any]:
    """Encodes ``items`` into the shard ``name`` (written under a temporary name, then published) and its
    manifest, written last; returns the manifest's counts."""
    from array_record.python.array_record_module import ArrayRecordWriter

    # ArrayRecord writes local files: next to the shard, or in a temporary folder for a bucket.
    local = Path(tempfile.mkdtemp(prefix="streamdit-shard-")) if is_url(out) else out
    temporary = local / f"{name}{SHARD_SUFFIX}.tmp"
    writer = ArrayRecordWriter(str(temporary), "group_size:1")
    # captions: the record (within this shard) of each caption's first clip, for PrecomputedText.
    counts: dict[str, Any] = {"videos": 0, "clips": 0, "skipped": [], "captions": {}}
    for item in items:
        if item.reason:
            log.warning("skipped %s: %s", item.name, item.reason)
            counts["skipped"].append({"video": item.name, "reason": item.reason})
            continue
        tokens, mask = text_encoder([item.caption])
        text, text_mask = np.asarray(tokens[0], np.float16), np.asarray(mask[0], bool)
        counts["captions"].setdefault(item.caption, counts["clips"])
        for i, clip in enumerate(item.clips):
            record = {"text": text, "text_mask": text_mask, "caption": item.caption, "video": item.name}
            for done in encoder.add({**record, "clip": i}, clip):
                writer.write(pack(done))
        counts["videos"] += 1
        counts["clips"] += len(item.clips)
    for done in encoder.flush():
        writer.write(pack(done))
    writer.close()
    _publish(temporary, out / f"{name}{SHARD_SUFFIX}", local if is_url(out) else None)
    (out / f"{name}.json").write_text(json.dumps(counts, indent=1) + "\n")
    return counts


def _publish(temporary: Path, final: Path, scratch: Path | None) -> None:
    """Moves a finished shard to its name: an upload to a bucket (then ``scratch`` is removed) or a
    rename."""
    if scratch is None:
        temporary.rename(final)
        return
    try:
        upload(temporary, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _clips(path: Path, cfg: Config, length: int) -> tuple[np.ndarray | None, str]:
    """(clips [n, length, H, W, 3], "") or (None, why the video is skipped)."""
    if not path.is_file():
        return None, "file not found"
    try:
        frames, fps = read_video(path)
    except Exception as e:  # any decoding failure means: skip this one video, keep going
        return None, f"unreadable ({type(e).__name__}: {str(e)[:120]})"
    video = conform(frames, fps, cfg)
    count = len(video) // length
    if count == 0:
        return None, f"too short: {len(video)} frames at {cfg.data.fps} fps, a clip needs {length}"
    return video[: count * length].reshape(count, length, *video.shape[1:]), ""
