"""Metrics of a generated shapes stream against the prompts that drove it, from the detector's output.

A stream is described by its prompt segments (first frame, and the colour, shape and motion the prompt
asked for) and the frames where decoded chunks begin. All scores are in [0, 1] unless stated:

- presence: frames in which any object is seen (shapes leave the frame at one edge and come back at
  the other, so even true videos score below 1);
- objects per frame: of the frames with an object, how many objects (colours) the detector finds: 1 for
  the held-out single-object scenes, more for a stream that scatters coloured fragments (which can keep
  the prompt's colour dominant and so pass colour adherence);
- adherence, per segment: ``colour`` (of the frames with an object, those whose dominant object has the
  prompt's colour), ``shape`` (of those frames with the object clear of the border, the detected shape is
  the prompt's), ``motion`` (windows of ``MOTION_WINDOW`` seconds whose estimated motion is the prompt's);
- consistency: ``identity`` (consecutive frames with objects, within a segment, keep their dominant
  colour) and ``size_stability`` (1 − coefficient of variation of the object's size within a segment);
- drift: points (x100) lost from the first third of the stream to the last, for adherence and
  consistency;
- seam ratio: mean frame difference across chunk boundaries over the mean within chunks (1 = no seam);
- switch response: chunks from a prompt switch until the new colour dominates a whole chunk's frames.

A score without evidence (e.g. shape while the object never clears the border) is NaN, and averages
skip NaNs.

``METRICS`` lists them (and the streaming costs ``run.stream_and_score`` measures), one
``registry.Metric`` each: ``evaluate``, the summary, eval.md, the demo's report.png and
scripts/ablation_rows.py all read it. A new metric is a function of a ``Stream`` and an entry there.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from streamdit_jax.data.shapes import BOUNCE_SPEEDUP, COLOURS, MOTIONS, SHAPES, SPEED_RANGE
from streamdit_jax.eval.detect import Detections, detect, to_unit
from streamdit_jax.eval.registry import Metric, count_none, mean_of_all, median, scores_of

MOTION_WINDOW = 2.0  # seconds per motion estimate
STILL_SPEED = SPEED_RANGE[0] / 2  # image fractions per second: slower is "still"
BOUNCE_SPEED = (SPEED_RANGE[1] + BOUNCE_SPEEDUP * SPEED_RANGE[0]) / 2  # faster is "bouncing"
_WRAP = 0.2  # a per-frame jump larger than this (image fractions) is a wrap at the edge, not motion
_ANGLES = {m: math.atan2(*d) for m, d in {
    "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1),
    "up-left": (-1, -1), "up-right": (-1, 1), "down-left": (1, -1), "down-right": (1, 1),
}.items()}  # fmt: skip


class Segment(NamedTuple):
    """What one prompt asked for, from frame ``start`` to the next segment's start."""

    start: int
    colour: int  # index into COLOURS
    shape: int  # index into SHAPES
    motion: int  # index into MOTIONS


def classify_motion(positions: np.ndarray, fps: float) -> int:
    """The MOTIONS index of a track [n, 2] (y, x image fractions; NaN where not seen); -1 if too short.

    Jumps at the frame's edges (wrapping) are removed by unwrapping. The speed along the path, over
    steps of a quarter window (so that pixel rounding averages out), separates still, moving and
    bouncing; the least-squares velocity gives the direction.
    """
    seen = np.isfinite(positions).all(axis=1)
    if seen.sum() < max(4, len(positions) // 2):
        return -1
    times = np.nonzero(seen)[0].astype(np.float64)
    steps = np.diff(positions[seen], axis=0)
    steps[np.abs(steps).max(axis=1) >= _WRAP] = 0.0  # a wrap: no motion counted across it
    track = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    lag = max(1, len(positions) // 4)
    later = np.searchsorted(times, times + lag)
    pairs = later < len(times)
    moved = np.linalg.norm(track[later[pairs]] - track[pairs], axis=1) / (times[later[pairs]] - times[pairs])
    speed = float(moved.mean()) * fps if pairs.any() else 0.0
    if speed < STILL_SPEED:
        return MOTIONS.index("still")
    if speed > BOUNCE_SPEED:
        return MOTIONS.index("bouncing")
    dy, dx = np.polyfit(times, track, 1)[0]
    angle = math.atan2(dy, dx)
    nearest = min(_ANGLES, key=lambda m: abs(math.remainder(angle - _ANGLES[m], 2 * math.pi)))
    return MOTIONS.index(nearest)


def track_motion_hits(det: Detections, factors: dict, fps: float) -> np.ndarray:
    """Per object of a clip (``factors``, as ``ShapesDataset`` gives them) and window of
    ``MOTION_WINDOW`` seconds in which its colour and motion stay the same: whether the motion estimated
    from the detector's track of that colour is the true one (windows too short to classify are left
    out). The motion score of a clip's reconstruction, without prompts."""
    window = max(2, round(MOTION_WINDOW * fps))
    frames = len(det.present)
    hits = []
    for slot in np.flatnonzero(factors["present"]):
        for start in range(0, frames - window // 2, window):
            end = min(start + window, frames)
            colour, motion = factors["colour"][start:end, slot], factors["motion"][start:end, slot]
            if (colour != colour[0]).any() or (motion != motion[0]).any():
                continue
            seen = det.present[start:end, colour[0]]
            track = np.where(seen[:, None], det.position[start:end, colour[0]], np.nan)
            estimate = classify_motion(track, fps)
            if estimate >= 0:
                hits.append(estimate == motion[0])
    return np.asarray(hits, bool)


def _bounds(segments: Sequence[Segment], frames: int) -> list[tuple[int, int]]:
    starts = [s.start for s in segments] + [frames]
    return list(itertools.pairwise(starts))


def _fraction(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else math.nan


def adherence(det: Detections, segments: Sequence[Segment], fps: float) -> list[dict[str, float]]:
    """Per segment: colour, shape and motion adherence (NaN without evidence)."""
    dominant = det.dominant()
    window = max(2, round(MOTION_WINDOW * fps))
    out = []
    for seg, (a, b) in zip(segments, _bounds(segments, len(dominant)), strict=True):
        seen = dominant[a:b] >= 0
        ours = dominant[a:b] == seg.colour
        clear = ours & ~det.touches_edge[a:b, seg.colour]
        track = np.where(ours[:, None], det.position[a:b, seg.colour], np.nan)
        votes = np.array(
            [classify_motion(track[i : i + window], fps) for i in range(0, b - a - window // 2, window)]
        )
        out.append({
            "colour": _fraction(ours[seen]),
            "shape": _fraction(det.shape[a:b, seg.colour][clear] == seg.shape),
            "motion": _fraction(votes[votes >= 0] == seg.motion),
        })  # fmt: skip
    return out


def consistency(det: Detections, segments: Sequence[Segment]) -> dict[str, float]:
    """Identity (dominant colour kept between consecutive frames with objects) and size stability,
    within segments (NaN without evidence)."""
    dominant = det.dominant()
    kept, stability = [], []
    for seg, (a, b) in zip(segments, _bounds(segments, len(dominant)), strict=True):
        before, after = dominant[a : b - 1], dominant[a + 1 : b]
        both = (before >= 0) & (after >= 0)
        kept.append(before[both] == after[both])
        sizes = det.size[a:b, seg.colour][(dominant[a:b] == seg.colour) & ~det.touches_edge[a:b, seg.colour]]
        if len(sizes) > 1:
            stability.append(max(0.0, 1.0 - float(sizes.std() / sizes.mean())))
    return {
        "identity": _fraction(np.concatenate(kept)),
        "size_stability": float(np.mean(stability)) if stability else math.nan,
    }


def seam_ratios(frames: np.ndarray, chunk_starts: Sequence[int]) -> tuple[float, list[float]]:
    """Mean absolute frame difference across chunk boundaries over the mean within chunks; and the same
    ratio at each boundary."""
    video = to_unit(frames)
    diffs = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))  # diffs[t - 1]: frame t - 1 -> t
    boundary = np.zeros(len(diffs), bool)
    starts = [t for t in chunk_starts if 0 < t < len(video)]
    boundary[[t - 1 for t in starts]] = True
    within = diffs[~boundary].mean() if (~boundary).any() else np.nan
    per_boundary = [float(diffs[t - 1] / within) for t in starts]
    return float(diffs[boundary].mean() / within) if starts else 1.0, per_boundary


def switch_responses(det: Detections, segments: Sequence[Segment], chunk_starts: Sequence[int]) -> list:
    """For each segment after the first whose colour differs from the one before: chunks from the switch
    until the new colour dominates most frames of a chunk (None if it never does)."""
    dominant = det.dominant()
    edges = [*chunk_starts, len(dominant)]
    chunks = list(itertools.pairwise(edges))
    out = []
    for before, seg in itertools.pairwise(segments):
        if seg.colour == before.colour:
            continue
        first = next(i for i, (_, end) in enumerate(chunks) if end > seg.start)
        response = None
        for i in range(first, len(chunks)):
            a, b = max(chunks[i][0], seg.start), chunks[i][1]
            if (dominant[a:b] == seg.colour).mean() > 0.5:
                response = i - first
                break
        out.append(response)
    return out


@dataclasses.dataclass(eq=False)
class Stream:
    """What a ``frames`` metric's score is computed from: one stream (or a part of it: ``part``), the
    detector's output on its frames, its prompt segments and the frames where its chunks begin; the
    results several metrics share are computed once, when first asked for."""

    det: Detections
    fps: float
    segments: Sequence[Segment]
    chunk_starts: Sequence[int] = ()
    frames: np.ndarray | None = None  # for the seams; a part has none

    @functools.cached_property
    def dominant(self) -> np.ndarray:
        return self.det.dominant()

    @functools.cached_property
    def per_segment(self) -> list[dict[str, float]]:
        return adherence(self.det, self.segments, self.fps)

    @functools.cached_property
    def consistency(self) -> dict[str, float]:
        return consistency(self.det, self.segments)

    @functools.cached_property
    def seams(self) -> tuple[float, list[float]]:
        return seam_ratios(self.frames, self.chunk_starts)

    @functools.cached_property
    def thirds(self) -> tuple[Stream, Stream]:
        """Its first and last thirds (drift)."""
        frames = len(self.dominant)
        third = frames // 3
        return self.part(0, third), self.part(frames - third, frames)

    def part(self, a: int, b: int) -> Stream:
        """Frames [a, b) and the segments overlapping them (without frames or chunks)."""
        det = self.det._replace(**{k: v[a:b] for k, v in self.det._asdict().items()})
        return Stream(det, self.fps, _clip(self.segments, a, b))


class StreamRun(NamedTuple):
    """What a ``streaming`` metric's score is computed from: how ``run.stream_and_score`` ran a stream."""

    streamer: Any  # the stream.Streamer
    began: float  # perf_counter() before the Streamer was built
    chunk_times: list[float]  # perf_counter() as each decoded chunk arrived


def presence(s: Stream) -> float:
    return float((s.dominant >= 0).mean())


def objects_per_frame(s: Stream) -> float:
    counts = s.det.present.sum(axis=1)
    return float(counts[counts > 0].mean()) if counts.any() else math.nan


def adherence_of(factor: str) -> Callable[[Stream], float]:
    """Colour, shape or motion adherence: the mean over segments (NaN without evidence)."""
    return lambda s: _nanmean(seg[factor] for seg in s.per_segment)


def drift_of(score: Callable[[Stream], float]) -> Callable[[Stream], float]:
    """Points of ``score`` lost from the first third of the stream to the last."""
    return lambda s: _drop(*(score(third) for third in s.thirds))


def switch_response_chunks(s: Stream) -> list[int | None]:
    return switch_responses(s.det, s.segments, s.chunk_starts) if s.chunk_starts else []


def never_followed(summary: dict) -> str:
    """The ablation rows' note after the switch response: how many switches were never followed."""
    never = summary.get("switches_never_followed")
    return f" ({never:g} never)" if never else ""


def seconds_per_chunk(run: StreamRun) -> float:
    """Steady state: the median interval between decoded chunks after the first."""
    return float(np.median(np.diff(run.chunk_times))) if len(run.chunk_times) > 1 else math.nan


# The metrics, in the summary's order: what each reader of the scores goes by (registry.Metric).
METRICS = (
    Metric("colour_adherence", adherence_of("colour"), path=("adherence", "colour"), kind="fraction",
           label="colour adherence", target=">= 90%", column="colour", stream_column="colour"),
    Metric("shape_adherence", adherence_of("shape"), path=("adherence", "shape"), kind="fraction",
           label="shape adherence", target=">= 60%", column="shape", stream_column="shape"),
    Metric("motion_adherence", adherence_of("motion"), path=("adherence", "motion"), kind="fraction",
           label="motion adherence", target=">= 60%", column="motion", stream_column="motion"),
    Metric("identity", lambda s: s.consistency["identity"], path=("consistency", "identity"),
           kind="fraction", label="identity", target=">= 95%", column="identity", stream_column="identity"),
    Metric("size_stability", lambda s: s.consistency["size_stability"],
           path=("consistency", "size_stability"), kind="fraction", column="size stability"),
    Metric("presence", presence, kind="fraction", column="presence"),
    Metric("objects_per_frame", objects_per_frame, label="objects a frame (one asked)",
           column="objects a frame"),
    Metric("drift_presence_points", drift_of(presence), path=("drift_points", "presence"), summary=None),
    Metric("drift_adherence_points", drift_of(lambda s: _mean_adherence(s.per_segment)),
           path=("drift_points", "adherence"), kind="points", digits=1, label="drift (adherence points)",
           target="|drift| <= 5", column="drift (points)", stream_column="drift (adh.)"),
    Metric("drift_consistency_points", drift_of(lambda s: _mean(s.consistency)),
           path=("drift_points", "consistency"), kind="points", digits=1),
    Metric("seam_ratio", lambda s: s.seams[0], label="seam ratio", target="<= 1.3", column="seam ratio",
           stream_column="seam ratio"),
    Metric("switch_response_chunks", switch_response_chunks, summary=mean_of_all, digits=1,
           label="switch response (chunks)", target="<= 2", column="switch response (chunks)",
           remark=never_followed),
    Metric("switches_never_followed", None, path=("switch_response_chunks",), summary=count_none),
    Metric("forward_passes_per_chunk", lambda run: run.streamer.forward_passes_per_chunk, source="streaming"),
    Metric("seconds_per_chunk", seconds_per_chunk, source="streaming"),
    # From the Streamer's construction to the first decoded chunk (with the compilation when this model
    # has not streamed yet); the median stream's, as the first stream also compiles.
    Metric("startup_seconds", lambda run: run.chunk_times[0] - run.began, source="streaming", summary=median,
           label="start-up (s, once per stream)", column="start-up (s)"),
    Metric("startup_forward_passes", lambda run: run.streamer.startup_forward_passes, source="streaming"),
)  # fmt: skip


def evaluate(
    frames: np.ndarray, fps: float, segments: Sequence[Segment], chunk_starts: Sequence[int] = ()
) -> dict:
    """Every ``frames`` metric of one stream (``METRICS``), and its adherence per segment, seam ratio per
    chunk boundary and segments; ``frames`` [T, H, W, 3] uint8 (or float in [-1, 1])."""
    stream = Stream(detect(frames), fps, segments, chunk_starts, frames)
    return {
        **scores_of(METRICS, "frames", stream),
        "adherence_per_segment": stream.per_segment,
        "seam_ratio_per_boundary": stream.seams[1],
        "segments": [
            {
                "start": s.start,
                "colour": COLOURS[s.colour],
                "shape": SHAPES[s.shape],
                "motion": MOTIONS[s.motion],
            }
            for s in segments
        ],
    }


def _clip(segments: Sequence[Segment], a: int, b: int) -> list[Segment]:
    """The segments overlapping frames [a, b), re-based to start at frame a."""
    kept = [
        s
        for i, s in enumerate(segments)
        if s.start < b and (i + 1 == len(segments) or segments[i + 1].start > a)
    ]
    return [s._replace(start=max(s.start - a, 0)) for s in kept]


def _drop(first: float, last: float) -> float:
    """Points lost from ``first`` to ``last``; a last third without evidence has lost everything."""
    return 100.0 * (first - (0.0 if math.isnan(last) else last))


def _nanmean(values) -> float:
    values = np.asarray(list(values), np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _mean_adherence(per_segment: list[dict[str, float]]) -> float:
    return _nanmean(_nanmean(s.values()) for s in per_segment)


def _mean(scores: dict[str, float]) -> float:
    return _nanmean(scores.values())
