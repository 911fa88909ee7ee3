"""``streamdit eval``: stream prompt schedules from a checkpoint and score them with the shapes metrics.

The built-in prompt set is the held-out split of the shapes world (wordings and colour/motion pairs that
training captions never use): single-object scenes with three prompt segments, each changing one of
colour, shape or motion. A user's schedule (``--prompts``, as for ``stream``) is scored from the colour,
shape and motion words its prompts name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from etils import epath

from streamdit_jax.autoencoder import Autoencoder
from streamdit_jax.config import ConfigError
from streamdit_jax.data.shapes import COLOURS, MOTION_PHRASES, MOTIONS, SHAPE_WORDS, SHAPES, ShapesDataset
from streamdit_jax.eval.metrics import METRICS, Segment, StreamRun, evaluate
from streamdit_jax.eval.registry import scores_of
from streamdit_jax.flow import Scheme
from streamdit_jax.storage import workpath, write_with
from streamdit_jax.stream import Streamer, StreamModel, StreamSettings

# The start-up's (micro-steps, guidance scale); None: the checkpoint's rollout settings.
StartUp = tuple[int | None, float | None]


@dataclasses.dataclass(frozen=True)
class EvalPrompt:
    """A prompt schedule and what each of its prompts asks for (colour, shape, motion indices)."""

    name: str
    schedule: tuple[tuple[float, str], ...]  # (seconds, prompt)
    asks: tuple[tuple[int, int, int], ...]  # per schedule entry
    scene: tuple[int, int] | None = None  # (seed, index) of the held-out shapes scene it comes from


def true_video(
    prompt: EvalPrompt, frames: int, fps: int, resolution: tuple[int, int]
) -> tuple[np.ndarray, list[Segment]] | None:
    """The true video [T, H, W, 3] in [-1, 1] of a held-out prompt's scene (``frames`` long, its segments
    spread as the schedule's) and its segments; None for a schedule of one's own."""
    if prompt.scene is None:
        return None
    seed, index = prompt.scene
    segments = len(prompt.schedule)
    scenes = ShapesDataset(resolution, fps, frames, seed=seed, split="heldout", segments=segments)
    item = scenes[index]
    if tuple(item["captions"]) != tuple(text for _, text in prompt.schedule):
        raise AssertionError(f"held-out scene {prompt.scene} no longer matches its prompt schedule")
    starts = [int(start) for start in item["segment_starts"]]
    return item["video"], [Segment(start, *ask) for start, ask in zip(starts, prompt.asks, strict=True)]


def to_uint8(video: np.ndarray) -> np.ndarray:
    """Frames in [-1, 1] as uint8, as a stream's frames are."""
    return ((np.asarray(video) + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def through_autoencoder(autoencoder: Autoencoder, video: np.ndarray, chunk_latents: int = 8) -> np.ndarray:
    """``video`` [T, H, W, 3] in [-1, 1] encoded and decoded by ``autoencoder`` chunk by chunk (its
    streaming encoder and decoder, ``chunk_latents`` latent frames a chunk; the last frame repeated to
    fill the last chunk, then cut): the frames a perfect transformer on its latents would stream."""
    t = autoencoder.cfg.temporal_compression
    first = 1 + t * (chunk_latents - 1)
    later = t * chunk_latents
    total = first + later * max(0, math.ceil((len(video) - first) / later))
    padded = np.concatenate([video, np.repeat(video[-1:], total - len(video), axis=0)])[None]
    encoder, decoder = autoencoder.streaming_encoder(), autoencoder.streaming_decoder()
    out, start = [], 0
    while start < total:
        size = first if start == 0 else later
        latents = encoder.step(jnp.asarray(padded[:, start : start + size]))
        out.append(np.asarray(decoder.step(latents))[0])
        start += size
    return np.concatenate(out)[: len(video)]


def truth(
    prompt: EvalPrompt, frames: int, fps: int, resolution: tuple[int, int], chunk_starts: Sequence[int],
    autoencoder: Autoencoder | None = None,
) -> dict | None:  # fmt: skip
    """The metrics of the true video of a held-out prompt's scene (``frames`` long), scored like a
    stream: what a perfect model reaches, each metric's ceiling; with ``autoencoder``, those of the same
    video encoded and decoded by it: what a perfect model on its latents reaches. None for a schedule of
    one's own."""
    true = true_video(prompt, frames, fps, resolution)
    if true is None:
        return None
    video, segments = true
    if autoencoder is not None:
        video = through_autoencoder(autoencoder, video)
    return evaluate(to_uint8(video), fps, segments, chunk_starts)


def heldout_prompts(count: int, seconds: float, segments: int = 3, seed: int = 0) -> list[EvalPrompt]:
    """``count`` schedules of ``segments`` prompts over ``seconds``, from single-object held-out scenes."""
    ds = ShapesDataset((64, 64), 8, segments, seed=seed, split="heldout", segments=segments)
    prompts = []
    for i in range(100 * count):
        item = ds[i]
        f = item["factors"]
        if f["present"][1]:
            continue
        at = [seconds * k / segments for k in range(segments)]
        asks = tuple(
            (int(f["colour"][k, 0]), int(f["shape"][k, 0]), int(f["motion"][k, 0])) for k in range(segments)
        )
        schedule = tuple(zip(at, item["captions"], strict=True))
        prompts.append(EvalPrompt(f"heldout-{i}", schedule, asks, scene=(seed, i)))
        if len(prompts) == count:
            return prompts
    raise AssertionError("the held-out split ran out of single-object scenes")


def _words(options: dict[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(phrase, name) pairs, longest phrase first (so "up-left" wins over "up")."""
    pairs = [(phrase, name) for name, phrases in options.items() for phrase in (name, *phrases)]
    return sorted(set(pairs), key=lambda p: -len(p[0]))


_COLOUR_WORDS = [(c, c) for c in COLOURS]
_SHAPE_WORDS = _words(SHAPE_WORDS)
_MOTION_WORDS = _words(MOTION_PHRASES)


def parse_prompt(text: str) -> tuple[int, int, int]:
    """(colour, shape, motion) indices named by a prompt; a ConfigError if one is missing."""
    lower = text.lower()
    found = []
    for kind, table, names in (
        ("colour", _COLOUR_WORDS, COLOURS),
        ("shape", _SHAPE_WORDS, SHAPES),
        ("motion", _MOTION_WORDS, MOTIONS),
    ):
        hit = next((name for phrase, name in table if re.search(rf"\b{re.escape(phrase)}\b", lower)), None)
        if hit is None:
            raise ConfigError(
                f"prompt {text!r} names no {kind} of the shapes world, so it cannot be scored. Fix: name one "
                f"of {', '.join(names)}"
            )
        found.append(names.index(hit))
    return tuple(found)


def prompts_from_schedule(name: str, schedule: Sequence[tuple[float, str]]) -> EvalPrompt:
    return EvalPrompt(name, tuple(schedule), tuple(parse_prompt(text) for _, text in schedule))


def stream_and_score(
    model: StreamModel, prompt: EvalPrompt, seconds: float, scheme: Scheme | None, guidance: float | None,
    seed: int, startup: StartUp = (None, None),
) -> tuple[dict, dict[str, np.ndarray]]:  # fmt: skip
    """Streams one schedule for ``seconds``; its metrics and frames [T, H, W, 3] uint8: the stream's
    (``model``) and, for a held-out scene, its true video's (``truth``) and the same through the model's
    autoencoder (``autoencoder``), each scored too (``truth`` and ``autoencoder`` in the metrics)."""
    began = time.perf_counter()
    settings = StreamSettings(scheme=scheme, guidance=guidance, seed=seed, schedule=prompt.schedule,
                              startup_micro_steps=startup[0], startup_guidance=startup[1])  # fmt: skip
    streamer = Streamer(model, prompt.schedule[0][1], settings)
    wanted = round(seconds * streamer.fps)
    frames, starts, chunks, times = [], [], streamer.chunks(), []
    count = 0
    for chunk in chunks:
        times.append(time.perf_counter())
        starts.append(count)
        frames.append(chunk[: wanted - count])
        count += len(frames[-1])
        if count >= wanted:
            break
    chunks.close()
    video = np.concatenate(frames)
    asks = dict(zip((text for _, text in prompt.schedule), prompt.asks, strict=False))
    used = [(streamer.frames_before(step), text) for step, text in streamer.prompt_log]
    used = [(start, text) for start, text in used if start < len(video)]  # switches after the end: unseen
    segments = [Segment(start, *asks[text]) for start, text in used]
    scores = evaluate(video, streamer.fps, segments, starts)
    scores["prompts"] = [{"from_frame": start, "prompt": text} for start, text in used]
    scores["frames"] = len(video)
    scores |= scores_of(METRICS, "streaming", StreamRun(streamer, began, times))
    videos = {"model": video}
    scores["truth"] = scores["autoencoder"] = None
    true = true_video(prompt, len(video), streamer.fps, model.cfg.data.resolution)
    if true is not None:  # the ceilings: the true video, and the same through the model's autoencoder
        true_frames, true_segments = true
        videos["autoencoder"] = to_uint8(through_autoencoder(model.autoencoder, true_frames))
        videos["truth"] = to_uint8(true_frames)
        for key in ("truth", "autoencoder"):
            scores[key] = evaluate(videos[key], streamer.fps, true_segments, starts)
    return scores, videos


def run_eval(
    model: StreamModel,
    prompts: Sequence[EvalPrompt],
    seconds: float,
    out_dir: str | Path,
    scheme: Scheme | None = None,
    guidance: float | None = None,
    seed: int = 0,
    video_dir: str | Path | None = None,
    progress: bool = False,
    startup: StartUp = (None, None),
) -> dict:
    """Streams and scores every prompt; writes eval.json (which records the decoder that made the
    frames), eval.md and PNG plots into ``out_dir``, and each stream as ``<name>.mp4`` into
    ``video_dir`` when given. Held-out prompts are also scored on their scenes' true videos
    (``truth_summary``): the metrics' ceilings; and on the same true videos encoded and decoded by the
    model's autoencoder (``autoencoder_summary``): the ceilings its latent space sets. Both are written
    beside the stream (``<name>.truth.mp4``, ``<name>.autoencoder.mp4``) and shown under it in
    strips.png. ``startup`` is the start-up's (micro-steps, guidance scale), each None for the checkpoint's
    ``rollout`` settings."""
    from tqdm import tqdm

    from streamdit_jax.stream.video import VideoSink

    out = workpath(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, strips = {}, {}
    for prompt in tqdm(prompts, desc="eval streams", disable=not progress, dynamic_ncols=True):
        results[prompt.name], videos = stream_and_score(
            model, prompt, seconds, scheme, guidance, seed, startup
        )
        shown = np.linspace(0, len(videos["model"]) - 1, 8).round().astype(int)
        strips[prompt.name] = [video[shown] for video in videos.values()]
        for kind, video in videos.items() if video_dir is not None else ():
            suffix = "" if kind == "model" else f".{kind}"
            with VideoSink(model.cfg.data.fps, workpath(video_dir) / f"{prompt.name}{suffix}.mp4") as sink:
                for frame in video:
                    sink.write(frame)
    summary = summarise(results)
    truth_summary, autoencoder_summary = _summary_of(results, "truth"), _summary_of(results, "autoencoder")
    report = {
        "summary": summary,
        "truth_summary": truth_summary,
        "autoencoder_summary": autoencoder_summary,
        "autoencoder": model.cfg.autoencoder.kind,
        "seconds": seconds,
        **model.decoder_record(),  # what made the frames
        "streams": results,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    (out / "eval.md").write_text(markdown(summary, results, truth_summary, autoencoder_summary))
    plot(results, strips, out)
    return report


def _summary_of(results: dict[str, dict], key: str) -> dict[str, float] | None:
    """The summary of every stream's ``key`` scores (the true videos', ...); None where none has them."""
    found = {name: r[key] for name, r in results.items() if r[key] is not None}
    return summarise(found) if found else None


def summarise(results: dict[str, dict]) -> dict[str, float]:
    """Every summarised metric of ``METRICS`` over the streams' scores (a mean, unless its entry says
    otherwise), in its order."""
    streams = list(results.values())
    return {m.key: m.summarise(streams) for m in METRICS if m.summary is not None}


def markdown(
    summary: dict[str, float],
    results: dict[str, dict],
    truth_summary: dict[str, float] | None = None,
    autoencoder_summary: dict[str, float] | None = None,
) -> str:
    """The summary beside, when known, the scores of the same schedules' true videos encoded and decoded
    by the autoencoder and of the true videos themselves; and a row per stream."""
    columns = [("model", summary), ("through the autoencoder", autoencoder_summary),
               ("true videos", truth_summary)]  # fmt: skip
    columns = [(name, values) for name, values in columns if values is not None]
    lines = _table("metric", [name for name, _ in columns])
    for m in [m for m in METRICS if m.summary is not None]:
        lines.append(_row(m.key, [m.fmt("summary").format(values[m.key]) for _, values in columns]))
    per_stream = [m for m in METRICS if m.stream_column]
    lines += ["", *_table("stream", [m.stream_column for m in per_stream])]
    for name, r in results.items():
        lines.append(_row(name, [m.fmt("stream").format(m.read(r)) for m in per_stream]))
    return "\n".join(lines) + "\n"


def _table(first: str, columns: Sequence[str]) -> list[str]:
    """A markdown table's header and rule."""
    return [_row(first, columns), "|---" * (1 + len(columns)) + "|"]


def _row(first: str, cells: Sequence[str]) -> str:
    return f"| {first} | " + " | ".join(cells) + " |"


def plot(results: dict[str, dict], strips: dict[str, list[np.ndarray]], out: epath.Path) -> None:
    """adherence.png (colour adherence per segment), seams.png (ratio per boundary), strips.png (8 frames
    of each stream, over the same frames of its true video through the autoencoder and of the true
    video, where known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    plot_colour_adherence(ax, results)
    fig.tight_layout()
    write_with(out / "adherence.png", lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, r in results.items():
        ax.plot(r["seam_ratio_per_boundary"], ".", label=name)
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.set(xlabel="chunk boundary", ylabel="seam ratio (1 = no seam)")
    fig.tight_layout()
    write_with(out / "seams.png", lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    from PIL import Image

    rows = [np.concatenate(list(frames), axis=1) for strip in strips.values() for frames in strip]
    strip = Image.fromarray(np.concatenate(rows, axis=0))
    write_with(out / "strips.png", lambda f: strip.save(f, format="PNG"))


def plot_colour_adherence(ax, results: dict[str, dict]) -> None:
    """Colour adherence per prompt segment of every stream, over its frames (adherence.png, report.png)."""
    for name, r in results.items():
        edges = [p["from_frame"] for p in r["prompts"]] + [r["frames"]]
        ax.stairs([s["colour"] for s in r["adherence_per_segment"]], edges, label=name)
    ax.set(xlabel="frame", ylabel="colour adherence per prompt", ylim=(-0.05, 1.05))
    ax.legend(fontsize=6)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
