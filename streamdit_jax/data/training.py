"""Training examples for the StreamDiT: latent buffers with their prompt's token states.

Three sources (``data.source``), each with a held-out split:

- ``shapes``: procedural clips (``ShapesDataset``), encoded on the fly by the preset's VAE and text
  encoder; the held-out split uses captions and colour/motion pairs the training split never does.
- ``videos``: a folder of videos with a jsonl of captions (``data.path``, ``data.captions``), decoded,
  conformed and encoded on the fly; every entry of the last ``data.heldout`` videos is held out.
- ``latents``: ArrayRecord shards written by ``streamdit encode`` (``data.path``); the records of the
  last ``data.heldout`` source videos are held out.

The latents and videos sources split by source video: no video has clips in both splits.

Prompt dropout (``data.prompt_dropout``) replaces an example's caption by the empty prompt, drawn
per example with grain's seeded ``random_map`` so that it is reproducible and resumable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grain
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from streamdit_jax.autoencoder import Autoencoder
from streamdit_jax.config import Config, ConfigError
from streamdit_jax.data import DataError, pipeline
from streamdit_jax.data.encode import clip_frames, clip_latents, encode_clips, read_captions
from streamdit_jax.data.frames import conform, read_video
from streamdit_jax.data.latents import EMPTY_PROMPT, LatentShards, training_example
from streamdit_jax.data.shapes import ShapesDataset
from streamdit_jax.storage import workpath
from streamdit_jax.text import TextEncoder

log = logging.getLogger(__name__)


def window_offset(seed: int, position: int, frames: int, window: int) -> int:
    """Where the ``window`` latent frames an example trains on start in its clip of ``frames``: drawn
    uniformly from (seed, position), so that it is reproducible and resumable; 0 when the clip is the
    window."""
    if frames == window:
        return 0
    return int(np.random.default_rng([seed, position, 1]).integers(frames - window + 1))


class BatchEncoder:
    """A batch of videos [B, T, H, W, 3], captions [B] and window offsets [B] -> latents (the ``window``
    latent frames from each offset), text states and masks (numpy)."""

    def __init__(self, vae: Autoencoder, text_encoder: TextEncoder, window: int):
        self.vae, self.text_encoder, self.window = vae, text_encoder, window

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        latents = np.asarray(encode_clips(self.vae, jnp.asarray(batch["video"])))
        latents = np.stack([z[o : o + self.window] for z, o in zip(latents, batch["offset"], strict=True)])
        text, mask = self.text_encoder([str(c) for c in batch["caption"]])
        return {
            "latents": np.asarray(latents, np.float32),
            "text": np.asarray(text, np.float32),
            "text_mask": np.asarray(mask, bool),
        }


class VideoClips:
    """Random access to the first clip of each (video, caption) entry of one split, conformed to the
    preset.

    A video that cannot be read or is too short is logged once and replaced by the next readable entry
    of the same split (never one of the other split), so a bad file never stops training.
    """

    def __init__(self, entries: list[tuple[Path, str]], cfg: Config):
        self.entries, self.cfg, self.length = entries, cfg, clip_frames(cfg)
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for offset in range(len(self.entries)):
            i = (index + offset) % len(self.entries)
            if i in self.bad:
                continue
            path, caption = self.entries[i]
            try:
                frames, fps = read_video(path)
                video = conform(frames, fps, self.cfg)
                if len(video) < self.length:
                    raise ValueError(f"too short: {len(video)} frames at {self.cfg.data.fps} fps")
            except Exception as e:  # skip the file, keep training
                log.warning("skipped %s: %s", path, e)
                self.bad.add(i)
                continue
            return {"video": video[: self.length], "caption": caption}
        raise DataError(
            f"none of the {len(self.entries)} entries of this split of the caption file can be read. Fix: "
            "check the videos under data.path, or lower data.heldout"
        )


def heldout_start(video_of: Callable[[int], str], count: int, heldout: int, name: str) -> int:
    """Where the held-out records of a source start: the records of its last ``heldout`` source videos.

    Records of one video are contiguous (as ``streamdit encode`` writes them), so walking back from the
    end reads only the held-out records and the one before them; a video is never in both splits."""
    videos: set[str] = set()
    for index in range(count - 1, -1, -1):
        video = video_of(index)
        if video not in videos and len(videos) == heldout:
            return index + 1
        videos.add(video)
    raise ConfigError(
        f"config field 'data.heldout': {name} holds {len(videos)} source videos, not more than the "
        f"{heldout} held out. Fix: lower data.heldout or add data"
    )


def split_entries(
    entries: list[tuple[Path, str]], heldout: int, name: str
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(train, held-out) caption entries: the ``heldout`` videos that appear last in the caption file are
    held out with every entry that names them, wherever it stands, so a video is never in both splits."""
    distinct = list(dict.fromkeys(path for path, _ in reversed(entries)))  # by last appearance
    if len(distinct) <= heldout:
        raise ConfigError(
            f"config field 'data.heldout': {name} lists {len(distinct)} videos, not more than the "
            f"{heldout} held out. Fix: lower data.heldout or add videos"
        )
    held = set(distinct[:heldout])
    return [e for e in entries if e[0] not in held], [e for e in entries if e[0] in held]


class ExampleSource:
    """The train and held-out examples of ``cfg.data`` as grain MapDatasets of per-example dicts, and
    the batch transform that turns their batches into model inputs."""

    def __init__(self, cfg: Config, vae: Autoencoder | None, text_encoder: TextEncoder | None):
        self.cfg = cfg
        data = cfg.data
        if data.source == "latents":
            shards = _checked_shards(cfg)
            start = heldout_start(
                lambda i: shards[i]["video"], len(shards), data.heldout, str(shards.directory)
            )
            records = grain.MapDataset.source(shards)
            self.train, self.heldout = records[:start], records[start:]
            self.raw = self._latent_window
            empty = np.load(shards.directory / EMPTY_PROMPT)
            self.empty = {"text": empty["text"].astype(np.float32), "text_mask": empty["text_mask"]}
            self.encode = None
            return
        if vae is None or text_encoder is None:
            raise ValueError(f"data.source={data.source!r} encodes on the fly: pass a VAE and a text encoder")
        self.encode = BatchEncoder(vae, text_encoder, cfg.buffer.frames)
        if data.source == "shapes":
            shape = dict(resolution=data.resolution, fps=data.fps, frames=clip_frames(cfg))
            self.train = ShapesDataset(**shape, seed=cfg.seed, split="train")
            self.heldout = ShapesDataset(**shape, seed=cfg.seed + 1, split="heldout")
            self.raw = self._video_and_caption
        else:  # videos
            entries = read_captions(
                _existing(data.captions, "data.captions"), _existing(data.path, "data.path")
            )
            train, heldout = split_entries(entries, data.heldout, data.captions)
            self.train, self.heldout = VideoClips(train, cfg), VideoClips(heldout, cfg)
            self.raw = self._video_and_caption

    def empty_prompt(self) -> tuple[np.ndarray, np.ndarray]:
        """The empty prompt's token states [L, Dt] and mask [L] (CFG's unconditional branch): the
        shards' ``empty_prompt.npz``, or the text encoder's states of ""."""
        if self.encode is None:
            return self.empty["text"], np.asarray(self.empty["text_mask"], bool)
        tokens, mask = self.encode.text_encoder([""])
        return np.asarray(tokens[0], np.float32), np.asarray(mask[0], bool)

    def _latent_window(self, record: dict, position: int) -> dict:
        example = training_example(record)
        offset = window_offset(self.cfg.seed, position, len(example["latents"]), self.cfg.buffer.frames)
        return {**example, "latents": example["latents"][offset : offset + self.cfg.buffer.frames]}

    def _video_and_caption(self, example: dict, position: int) -> dict:
        offset = window_offset(self.cfg.seed, position, clip_latents(self.cfg), self.cfg.buffer.frames)
        return {"video": example["video"], "caption": example["caption"], "offset": np.int32(offset)}

    def _train_example(self, example: dict, position: int) -> dict:
        """The example, its prompt dropped (replaced by the empty one) with a draw keyed by its position."""
        example = self.raw(example, position)
        if np.random.default_rng([self.cfg.seed, position]).random() < self.cfg.data.prompt_dropout:
            dropped = self.empty if self.encode is None else {"caption": ""}
            example = {**example, **dropped}
        return example

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        dataset = pipeline.train_batches(
            self.train, self._train_example, batch_size, seed, process, processes
        )
        return dataset if self.encode is None else dataset.map(self.encode)

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        count = min(count, max(len(self.heldout) // (batch_size * processes), 1))
        batches = pipeline.fixed_batches(self.heldout, self.raw, batch_size, count, process, processes)
        return batches if self.encode is None else [self.encode(b) for b in batches]


def _existing(path: str, field: str) -> epath.Path:
    if not path:
        raise ConfigError(
            f"config field '{field}': empty, but data.source needs it. Fix: --config.{field}=PATH"
        )
    if not workpath(path).exists():
        raise FileNotFoundError(f"config field '{field}': {path} does not exist. Fix: point it at your data")
    return workpath(path)


def _checked_shards(cfg: Config) -> LatentShards:
    """The shards of ``data.path``, after checking that their records fit the model's buffer."""
    shards = LatentShards(_existing(cfg.data.path, "data.path"))
    if not (shards.directory / EMPTY_PROMPT).exists():
        raise FileNotFoundError(
            f"{shards.source} has no {EMPTY_PROMPT} (the empty prompt's states, for prompt dropout). "
            "Fix: re-run `streamdit encode` into this folder; it writes the file and skips finished shards"
        )
    record = shards[0]
    frames = max(len(record.get("latents", ())), cfg.buffer.frames)  # any clip holding the buffer
    expected = {
        "latents": (frames, *cfg.latent_grid[1:], cfg.model.latent_channels),
        "text": (cfg.text.max_length, cfg.model.text_width),
        "text_mask": (cfg.text.max_length,),
    }
    for key, shape in expected.items():
        got = tuple(np.shape(record.get(key)))
        if got != shape:
            raise DataError(
                f"{shards.paths[0]}: records hold {key} of shape {got}, but the config expects {shape} "
                f"(at least buffer.frames, latent grid and channels, text.max_length, model.text_width). "
                "Fix: "
                "encode the data with this preset (`streamdit encode --config ...`) or train with the "
                "preset that encoded it"
            )
    return shards


def on_the_fly_encoders(cfg: Config) -> tuple[Autoencoder | None, TextEncoder | None]:
    """The autoencoder and text encoder that encode shapes and video folders during training; (None,
    None) for precomputed latents."""
    if cfg.data.source == "latents":
        return None, None
    from streamdit_jax.text import build_encoder

    return preset_vae(cfg), build_encoder(cfg.text)


def preset_vae(cfg: Config) -> Autoencoder:
    """The autoencoder of ``data.vae``, checked against the preset; when empty, an untrained one (with
    measured latent statistics, so that latents have unit scale) and a warning."""
    from streamdit_jax.autoencoder import build_autoencoder, restore_data_vae

    if cfg.data.vae:
        return restore_data_vae(cfg)
    from streamdit_jax.autoencoder.training import AutoencoderTask

    log.warning(
        "data.vae is empty: latents come from an untrained autoencoder (fine for tests, meaningless for a "
        "real model, except the patch kind's, which has no weights). Train one with `streamdit train-vae` "
        "and pass --config.data.vae=DIR"
    )
    vae = build_autoencoder(cfg.autoencoder, nnx.Rngs(cfg.seed))
    AutoencoderTask(cfg).on_save(vae)
    return vae
