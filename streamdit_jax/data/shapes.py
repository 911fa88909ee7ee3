"""``shapes``: procedural text-video data of coloured shapes moving on plain or patterned backgrounds.

The embedded default training data, the test data and the evaluation oracle: each item carries the
ground truth, per frame and per object, that a detector's output can be compared with.
``ShapesDataset(resolution, fps, frames, seed, split, segments)[i]`` is a dict:

- ``video``: float32 ``[T, H, W, 3]`` in [-1, 1], channels last.
- ``captions``: ``segments`` strings, one per segment; ``caption`` is ``captions[0]``.
- ``segment_starts``: int32 ``[S]``, the frame where each segment starts (``k * T // S``).
- ``factors``: numpy arrays over ``N = MAX_OBJECTS`` object slots (mask unused slots with ``present``):

  ==============  =======  ============  ================================================================
  ``present``     bool     ``[N]``       the slot holds an object (slot 0 always does)
  ``background``  int32    ``[]``        index into ``BACKGROUNDS``
  ``colour``      int32    ``[T, N]``    index into ``COLOURS`` (-1 in absent slots)
  ``shape``       int32    ``[T, N]``    index into ``SHAPES`` (-1 in absent slots)
  ``motion``      int32    ``[T, N]``    index into ``MOTIONS`` (-1 in absent slots), fixed within a segment
  ``size``        float32  ``[T, N]``    bounding-box side (circle: diameter) as a fraction of min(H, W)
  ``position``    float32  ``[T, N, 2]`` bounding-box centre (y, x) as fractions of the image height and
                                         width (0: top/left edge, 1: bottom/right edge)
  ``velocity``    float32  ``[T, N, 2]`` (dy, dx) in image heights / widths per second
  ``visibility``  float32  ``[T, N]``    fraction of the object's area on screen and not covered
  ``visible``     bool     ``[T, N]``    ``visibility >= 0.5``
  ==============  =======  ============  ================================================================

  Absent slots hold 0 in the float factors. ``position`` leaves [0, 1] only while an object is partly
  off screen. Object 1 is drawn over object 0; the objects always have different colours, and their
  start positions are chosen, among a few candidates, to keep their paths apart where possible. The
  triangle points up; its area centroid lies ``size / 6`` (of min(H, W)) below ``position``; for the
  other shapes the centroid is ``position``.

Motion is in image fractions per second, so ``fps`` only changes the sampling: a scene is a function of
(seed, split, index), the clip's duration, the segment boundary times and the aspect ratio, never of
the pixel resolution. Straight movers start where they stay inside the frame for the whole clip (up to
any bouncing segment) when the path fits; otherwise they leave at one edge and, once fully out, re-enter
at the opposite one (never drawn at both edges at once). Bouncers reflect off the edges and stay inside.
With ``segments > 1`` one factor (colour, motion or shape) of one object changes at each boundary while
the object keeps its position.

``split="heldout"`` only uses the (colour, motion) pairs in ``HELDOUT_COMBOS`` and the wordings in
``HELDOUT_TEMPLATES``; ``split="train"`` never does.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

MAX_OBJECTS = 2

COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
COLOUR_RGB = np.array(  # [len(COLOURS), 3] in [0, 1]; saturated, so they stand out on the gray backgrounds
    [
        [0.90, 0.10, 0.10],
        [1.00, 0.50, 0.00],
        [0.95, 0.90, 0.10],
        [0.15, 0.75, 0.20],
        [0.10, 0.80, 0.90],
        [0.15, 0.30, 0.95],
        [0.60, 0.20, 0.85],
        [1.00, 0.40, 0.80],
    ],
    np.float32,
)

SHAPES = ("circle", "square", "triangle", "diamond")
SHAPE_WORDS = {
    "circle": ("circle", "disc", "dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
}
_SHAPE_AREA = np.array([math.pi / 4, 1.0, 0.5, 0.5])  # fraction of the bounding box covered

SIZES = ("small", "medium", "large")
SIZE_VALUES = (0.16, 0.22, 0.30)  # bounding-box side, fraction of the shorter image side
SIZE_WORDS = {
    "small": ("small", "little"),
    "medium": ("medium-sized", "mid-sized"),
    "large": ("large", "big"),
}

BACKGROUNDS = ("dark", "light", "gradient", "checker", "stripes")  # all neutral gray
BACKGROUND_WORDS = {
    "dark": ("dark", "black", "dark gray"),
    "light": ("light", "white", "pale gray"),
    "gradient": ("gradient", "gray gradient", "fading gray"),
    "checker": ("checkered", "checkerboard"),
    "stripes": ("striped", "pinstriped"),
}
_BACKDROPS = ("background", "backdrop")

MOTIONS = (
    "still",
    "left",
    "right",
    "up",
    "down",
    "up-left",
    "up-right",
    "down-left",
    "down-right",
    "bouncing",
)
_STEPS = {"up": (-1.0, 0.0), "down": (1.0, 0.0), "left": (0.0, -1.0), "right": (0.0, 1.0)}
_DIRECTIONS = (
    {"still": np.zeros(2)}
    | {  # unit (dy, dx) of the straight motions
        m: np.sum([_STEPS[p] for p in m.split("-")], axis=0) / math.sqrt(m.count("-") + 1)
        for m in MOTIONS[1:-1]
    }
)


def _diagonal_phrases(vertical: str, horizontal: str) -> tuple[str, ...]:
    edge = {"up": "top", "down": "bottom"}[vertical]
    return (
        f"moving {vertical} and to the {horizontal}",
        f"drifting diagonally {vertical}-{horizontal}",
        f"heading toward the {edge} {horizontal}",
        f"gliding {vertical}-{horizontal}",
    )


MOTION_PHRASES = {
    "still": ("staying still", "sitting still", "standing still", "resting in place", "not moving"),
    "left": ("moving left", "drifting to the left", "sliding leftward", "heading left", "gliding left"),
    "right": ("moving right", "drifting to the right", "sliding rightward", "heading right", "gliding right"),
    "up": ("moving up", "drifting upward", "rising", "floating up", "heading up"),
    "down": ("moving down", "drifting downward", "sinking", "falling", "heading down"),
    **{f"{v}-{h}": _diagonal_phrases(v, h) for v in ("up", "down") for h in ("left", "right")},
    "bouncing": ("bouncing around", "bouncing off the edges", "bouncing off the walls", "ricocheting around"),
}

SPEED_RANGE = (0.08, 0.16)  # straight movers, image fractions per second
BOUNCE_SPEEDUP = 3.0  # bouncers move this much faster, so that they do bounce within a clip

# (colour, motion) pairs that only the held-out split uses: two per colour, every motion at least once.
HELDOUT_COMBOS = frozenset(
    {
        ("red", "up"),
        ("red", "down-left"),
        ("orange", "left"),
        ("orange", "bouncing"),
        ("yellow", "down"),
        ("yellow", "up-right"),
        ("green", "right"),
        ("green", "still"),
        ("cyan", "up-left"),
        ("cyan", "down"),
        ("blue", "down-right"),
        ("blue", "left"),
        ("purple", "bouncing"),
        ("purple", "up"),
        ("pink", "still"),
        ("pink", "right"),
    }
)


@dataclasses.dataclass(frozen=True)
class Template:
    """A caption wording.

    ``obj`` phrases one object from ``{a}`` ("a small red disc"), ``{A}`` (capitalised), ``{np}`` (no
    article) and ``{moving}`` (a motion phrase); ``scene`` joins them with ``join`` into ``{objs}`` and adds
    the background as ``{bg}`` ("a dark backdrop"), ``{bg_adj}`` ("dark") and ``{bg_noun}`` ("backdrop").
    """

    obj: str
    join: str
    scene: str


TRAIN_TEMPLATES = (
    Template("{a} {moving}", " and ", "{objs} on {bg}"),
    Template("{A} is {moving}", ". ", "{objs}, seen against {bg}."),
    Template("{np}, {moving}", "; ", "{objs}; {bg_adj} {bg_noun}"),
    Template("{a} {moving}", " and ", "a video of {objs} against {bg}"),
    Template("{a} {moving}", " together with ", "{bg} with {objs}"),
)
HELDOUT_TEMPLATES = (
    Template("{a} is {moving}", ", while ", "On {bg}, {objs}."),
    Template("{a} {moving}", " alongside ", "Watch {objs} in front of {bg}."),
    Template("{np} ({moving})", " + ", "scene: {objs} | background: {bg_adj}"),
)
SPLITS = ("train", "heldout")
_TEMPLATES = {"train": TRAIN_TEMPLATES, "heldout": HELDOUT_TEMPLATES}

_CANDIDATES = 32  # start positions tried to keep two objects apart
_GRID = 64  # times (over the clip's duration) at which candidate paths are compared


class ObjectSpec(NamedTuple):
    """One object in one segment, as indices into COLOURS, SHAPES, SIZES and MOTIONS."""

    colour: int
    shape: int
    size: int
    motion: int


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[rng.integers(len(options))]


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def describe(
    objects: Sequence[ObjectSpec], background: int, rng: np.random.Generator, split: str = "train"
) -> str:
    """A caption naming each object's colour, shape and motion and the background, in a random wording
    from the split's templates (a size word is added half of the time)."""
    template = _pick(rng, _TEMPLATES[split])
    phrases = []
    for obj in objects:
        words = [COLOURS[obj.colour], _pick(rng, SHAPE_WORDS[SHAPES[obj.shape]])]
        if rng.random() < 0.5:
            words.insert(0, _pick(rng, SIZE_WORDS[SIZES[obj.size]]))
        noun = " ".join(words)
        a = _with_article(noun)
        moving = _pick(rng, MOTION_PHRASES[MOTIONS[obj.motion]])
        phrases.append(template.obj.format(a=a, A=a[0].upper() + a[1:], np=noun, moving=moving))
    adj, backdrop = _pick(rng, BACKGROUND_WORDS[BACKGROUNDS[background]]), _pick(rng, _BACKDROPS)
    return template.scene.format(
        objs=template.join.join(phrases), bg=_with_article(f"{adj} {backdrop}"), bg_adj=adj, bg_noun=backdrop
    )


# --- scene sampling ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Scene:
    """Per-segment factors ``[S, n]`` of the ``n`` objects, and their per-clip ones ``[n]``."""

    background: int
    colour: np.ndarray
    shape: np.ndarray
    motion: np.ndarray
    size: np.ndarray  # index into SIZES
    speed: np.ndarray  # image fractions per second
    bounce: np.ndarray  # [n, 2] unit (dy, dx) direction when bouncing


def _allowed(colour: int, motion: int, heldout: bool) -> bool:
    return ((COLOURS[colour], MOTIONS[motion]) in HELDOUT_COMBOS) == heldout


def _change(
    rng: np.random.Generator, colour: np.ndarray, shape: np.ndarray, motion: np.ndarray, heldout: bool
) -> None:
    """Changes one factor of one object in place, keeping colours distinct and the pairs in the split."""
    options = []
    for o in range(len(colour)):
        taken = set(np.delete(colour, o).tolist())
        colours = [
            c
            for c in range(len(COLOURS))
            if c != colour[o] and c not in taken and _allowed(c, motion[o], heldout)
        ]
        motions = [m for m in range(len(MOTIONS)) if m != motion[o] and _allowed(colour[o], m, heldout)]
        shapes = [s for s in range(len(SHAPES)) if s != shape[o]]
        options += [
            (row, o, values) for row, values in ((colour, colours), (motion, motions), (shape, shapes))
        ]
    row, o, values = _pick(rng, [option for option in options if option[2]])
    row[o] = _pick(rng, values)


def _sample_scene(rng: np.random.Generator, heldout: bool, segments: int) -> _Scene:
    n = 1 + int(rng.random() < 0.5)
    background = int(rng.integers(len(BACKGROUNDS)))
    colour, motion = np.zeros((segments, n), np.int32), np.zeros((segments, n), np.int32)
    for o in range(n):
        pairs = [
            (c, m)
            for c in range(len(COLOURS))
            for m in range(len(MOTIONS))
            if c not in colour[0, :o] and _allowed(c, m, heldout)
        ]
        colour[0, o], motion[0, o] = _pick(rng, pairs)
    shape = np.zeros((segments, n), np.int32)
    shape[0] = rng.integers(len(SHAPES), size=n)
    for k in range(1, segments):
        colour[k], shape[k], motion[k] = colour[k - 1], shape[k - 1], motion[k - 1]
        _change(rng, colour[k], shape[k], motion[k], heldout)
    angle = np.radians(rng.uniform(25.0, 65.0, n))
    bounce = rng.choice([-1.0, 1.0], size=(n, 2)) * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    return _Scene(
        background=background,
        colour=colour,
        shape=shape,
        motion=motion,
        size=rng.integers(len(SIZES), size=n),
        speed=rng.uniform(*SPEED_RANGE, size=n),
        bounce=bounce,
    )


# --- motion -------------------------------------------------------------------------------------------


def _move(
    start: np.ndarray, velocity: np.ndarray, bounce: bool, radius: np.ndarray, dt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities ``[K, m, 2]`` at times ``dt`` [m] after ``start`` [K, 2] for one segment.

    Straight movers wrap over [-r, 1 + r) (off screen at the seam); bouncers fold into [r, 1 - r], after
    first entering it head-on if they start outside.
    """
    lo, hi = radius, 1.0 - radius
    if bounce:
        velocity = np.where(start < lo, np.abs(velocity), np.where(start > hi, -np.abs(velocity), velocity))
    else:
        velocity = np.broadcast_to(velocity, start.shape)
    free = start[:, None] + velocity[:, None] * dt[:, None]
    if not bounce:
        return (free + radius) % (1.0 + 2.0 * radius) - radius, np.broadcast_to(velocity[:, None], free.shape)
    span = hi - lo
    phase = (free - lo) % (2.0 * span)
    forward = phase < span
    folded = lo + np.where(forward, phase, 2.0 * span - phase)
    entering = ((start < lo)[:, None] & (free < lo)) | ((start > hi)[:, None] & (free > hi))
    position = np.where(entering, free, folded)
    return position, np.where(entering | forward, 1.0, -1.0) * velocity[:, None]


def _trajectory(
    start: np.ndarray,
    velocity: np.ndarray,
    bounce: np.ndarray,
    seg_t0: np.ndarray,
    radius: np.ndarray,
    times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise motion: positions and velocities ``[K, M, 2]`` at ``times`` [M] from starts ``[K, 2]``;
    segment ``k`` (from time ``seg_t0[k]``) moves with ``velocity[k]``, bouncing where ``bounce[k]``."""
    pos = np.zeros((len(start), len(times), 2))
    vel = np.zeros_like(pos)
    current = start
    for k, t0 in enumerate(seg_t0):
        last = k + 1 == len(seg_t0)
        end = np.inf if last else seg_t0[k + 1]
        inside = (times >= t0) & (times < end)
        dt = np.append(times[inside], [] if last else [end]) - t0
        x, v = _move(current, velocity[k], bool(bounce[k]), radius, dt)
        pos[:, inside], vel[:, inside] = x[:, : inside.sum()], v[:, : inside.sum()]
        current = x[:, -1]
    return pos, vel


def _start_range(
    velocity: np.ndarray, bounce: np.ndarray, seg_t0: np.ndarray, duration: float, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis start interval that keeps a straight path (up to its first bouncing segment) inside the
    frame; the whole inner range [r, 1 - r] on axes where the path does not fit."""
    first_bounce = int(np.argmax(bounce)) if bounce.any() else len(bounce)
    lengths = np.diff(np.append(seg_t0, duration))[:first_bounce]
    reached = np.cumsum(np.vstack([np.zeros((1, 2)), velocity[:first_bounce] * lengths[:, None]]), axis=0)
    lo, hi = radius - reached.min(axis=0), 1.0 - radius - reached.max(axis=0)
    fits = lo <= hi
    return np.where(fits, lo, radius), np.where(fits, hi, 1.0 - radius)


def _velocities(scene: _Scene, o: int) -> tuple[np.ndarray, np.ndarray]:
    """Object ``o``'s velocity ``[S, 2]`` and bouncing flag ``[S]`` per segment."""
    bouncing = np.array([MOTIONS[m] == "bouncing" for m in scene.motion[:, o]])
    straight = np.stack([_DIRECTIONS.get(MOTIONS[m], np.zeros(2)) for m in scene.motion[:, o]])
    direction = np.where(bouncing[:, None], BOUNCE_SPEEDUP * scene.bounce[o], straight)
    return scene.speed[o] * direction, bouncing


# --- rendering ----------------------------------------------------------------------------------------


def render_background(index: int, height: int, width: int) -> np.ndarray:
    """Background ``index`` as float32 ``[H, W, 3]`` in [0, 1]; patterns scale with the shorter side."""
    unit = min(height, width)
    y = ((np.arange(height) + 0.5) / unit)[:, None]
    x = ((np.arange(width) + 0.5) / unit)[None, :]
    name = BACKGROUNDS[index]
    if name == "dark":
        level = np.full((height, width), 0.10)
    elif name == "light":
        level = np.full((height, width), 0.85)
    elif name == "gradient":
        level = np.broadcast_to(0.20 + 0.40 * y * unit / height, (height, width))
    elif name == "checker":  # soft-edged cells of 1/8 of the shorter side
        level = 0.35 + 0.05 * np.tanh(4.0 * np.sin(8.0 * np.pi * y) * np.sin(8.0 * np.pi * x))
    else:  # vertical stripes, period 1/5 of the shorter side
        level = np.broadcast_to(0.70 + 0.05 * np.tanh(4.0 * np.sin(10.0 * np.pi * x)), (height, width))
    return np.repeat(level[..., None], 3, axis=-1).astype(np.float32)


def _sdf(shape: str, dy: np.ndarray, dx: np.ndarray, half: float) -> np.ndarray:
    """Signed distance in pixels (negative inside) to a shape of bounding-box half-side ``half``."""
    ay, ax = np.abs(dy), np.abs(dx)
    if shape == "circle":
        return np.sqrt(dy * dy + dx * dx) - half
    if shape == "square":
        qy, qx = ay - half, ax - half
        outside = np.sqrt(np.maximum(qy, 0.0) ** 2 + np.maximum(qx, 0.0) ** 2)
        return outside + np.minimum(np.maximum(qy, qx), 0.0)
    if shape == "triangle":  # apex at the top edge's middle, base on the bottom edge
        return np.maximum(dy - half, (2.0 * ax - dy - half) / math.sqrt(5.0))
    return (ax + ay - half) / math.sqrt(2.0)  # diamond


def _alpha(
    shape: np.ndarray, half: float, centre: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Coverage ``[T, a, b]`` in [0, 1] (~1 px soft edges) of pixel centres ``rows`` [T, a] x ``cols``
    [T, b] by a shape ``shape[t]`` of half-side ``half`` centred at ``centre`` [T, 2] (pixels)."""
    dy = (rows - centre[:, :1])[:, :, None].astype(np.float32)
    dx = (cols - centre[:, 1:])[:, None, :].astype(np.float32)
    alpha = np.empty((len(shape), rows.shape[1], cols.shape[1]), np.float32)
    for s in np.unique(shape):
        on = shape == s
        alpha[on] = np.clip(0.5 - _sdf(SHAPES[s], dy[on], dx[on], half), 0.0, 1.0)
    return alpha


def _render(
    background: int,
    colour: np.ndarray,
    shape: np.ndarray,
    size: np.ndarray,
    position: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Video ``[T, H, W, 3]`` in [-1, 1] and visibility ``[T, n]`` from per-frame factors ``[T, n(, 2)]``
    and per-object sizes ``[n]``.

    Each object is drawn in a window around it, on a canvas padded so that windows never leave it.
    """
    frames, n = colour.shape
    half = size * min(height, width) / 2.0
    margin = np.ceil(half).astype(int) + 2  # window half-side, covering the soft edge
    pad = 2 * int(margin.max())
    canvas = np.zeros((frames, height + 2 * pad, width + 2 * pad, 3), np.float32)
    canvas[:, pad:-pad, pad:-pad] = render_background(background, height, width) * 2.0 - 1.0
    centre = position * np.array([height, width]) + pad  # canvas pixels
    frame_index = np.arange(frames)[:, None, None]
    visibility = np.zeros((frames, n), np.float32)
    for o in range(n):
        corner = np.floor(centre[:, o]).astype(int) - margin[o]
        rows = corner[:, :1] + np.arange(2 * margin[o])
        cols = corner[:, 1:] + np.arange(2 * margin[o])
        alpha = _alpha(shape[:, o], half[o], centre[:, o], rows + 0.5, cols + 0.5)
        shown = alpha * (((rows >= pad) & (rows < pad + height))[:, :, None])
        shown *= ((cols >= pad) & (cols < pad + width))[:, None, :]
        for above in range(o + 1, n):
            shown *= 1.0 - _alpha(shape[:, above], half[above], centre[:, above], rows + 0.5, cols + 0.5)
        area = _SHAPE_AREA[shape[:, o]] * (2.0 * half[o]) ** 2
        visibility[:, o] = np.minimum(shown.sum(axis=(1, 2)) / area, 1.0)
        index = (frame_index, rows[:, :, None], cols[:, None, :])
        patch = canvas[index]
        patch += alpha[..., None] * (COLOUR_RGB[colour[:, o]][:, None, None, :] * 2.0 - 1.0 - patch)
        canvas[index] = patch
    return np.ascontiguousarray(canvas[:, pad:-pad, pad:-pad]), visibility


# --- dataset ------------------------------------------------------------------------------------------


class ShapesDataset:
    """Random-access procedural clips, deterministic by (seed, split, index); see the module docstring.

    ``resolution`` is (height, width) in pixels; ``segments`` equal segments each get their own caption.
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (64, 64),
        fps: int = 8,
        frames: int = 33,
        seed: int = 0,
        split: str = "train",
        segments: int = 1,
        length: int = 1_000_000,
    ):
        if len(resolution) != 2 or min(resolution) < 1:
            raise ValueError(f"resolution must be (height, width) >= 1, got {resolution}")
        if fps < 1 or frames < 1 or seed < 0 or length < 0:
            raise ValueError(
                f"need fps, frames >= 1 and seed, length >= 0; got {fps}, {frames}, {seed}, {length}"
            )
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 1 <= segments <= frames:
            raise ValueError(f"segments must be in [1, frames={frames}], got {segments}")
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.fps, self.frames, self.seed, self.split = fps, frames, seed, split
        self.segments, self.length = segments, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
        scene = _sample_scene(rng, self.split == "heldout", self.segments)
        starts = np.arange(self.segments) * self.frames // self.segments
        segment = np.searchsorted(starts, np.arange(self.frames), side="right") - 1
        position, velocity = self._simulate(rng, scene, starts / self.fps)
        size = np.array(SIZE_VALUES)[scene.size]
        video, visibility = _render(
            scene.background,
            scene.colour[segment],
            scene.shape[segment],
            size,
            position,
            *self.resolution,
        )
        captions = [
            describe(
                [ObjectSpec(*spec) for spec in zip(colour, shape, scene.size, motion, strict=True)],
                scene.background,
                rng,
                self.split,
            )
            for colour, shape, motion in zip(scene.colour, scene.shape, scene.motion, strict=True)
        ]
        factors = _pad_factors(
            background=np.array(scene.background, np.int32),
            colour=scene.colour[segment],
            shape=scene.shape[segment],
            motion=scene.motion[segment],
            size=np.broadcast_to(size, (self.frames, len(size))),
            position=position,
            velocity=velocity,
            visibility=visibility,
        )
        return dict(
            video=video,
            caption=captions[0],
            captions=captions,
            segment_starts=starts.astype(np.int32),
            factors=factors,
        )

    def _simulate(
        self, rng: np.random.Generator, scene: _Scene, seg_t0: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame positions and velocities ``[T, n, 2]``; with two objects, the first of a few candidate
        start pairs whose paths never overlap (else the best separated) is used."""
        height, width = self.resolution
        duration = (self.frames - 1) / self.fps
        aspect = np.array([height, width]) / min(height, width)
        n = len(scene.size)
        radius = [SIZE_VALUES[scene.size[o]] / 2.0 / aspect for o in range(n)]
        motion = [_velocities(scene, o) for o in range(n)]
        candidates = []
        for o in range(n):
            lo, hi = _start_range(*motion[o], seg_t0, duration, radius[o])
            candidates.append(lo + (hi - lo) * rng.random((_CANDIDATES, 2)))
        choice = 0
        if n == 2:
            grid = np.linspace(0.0, duration, _GRID)
            paths = [_trajectory(candidates[o], *motion[o], seg_t0, radius[o], grid)[0] for o in range(n)]
            reach = sum(SIZE_VALUES[s] for s in scene.size) / 2.0
            gap = (np.abs(paths[0] - paths[1]) * aspect - reach).max(axis=-1).min(axis=-1)
            choice = int(np.argmax(gap > 0.0)) if (gap > 0.0).any() else int(np.argmax(gap))
        times = np.arange(self.frames) / self.fps
        paths = [
            _trajectory(candidates[o][choice : choice + 1], *motion[o], seg_t0, radius[o], times)
            for o in range(n)
        ]
        position = np.stack([p[0][0] for p in paths], axis=1)
        velocity = np.stack([p[1][0] for p in paths], axis=1)
        return position, velocity


def _pad_factors(
    background: np.ndarray, visibility: np.ndarray, **per_object: np.ndarray
) -> dict[str, np.ndarray]:
    """Pads the per-object factors ``[T, n, ...]`` to ``MAX_OBJECTS`` slots (-1 or 0 in absent ones)."""
    frames, n = visibility.shape
    factors = {"present": np.arange(MAX_OBJECTS) < n, "background": background}
    for name, value in {**per_object, "visibility": visibility}.items():
        integer = np.issubdtype(value.dtype, np.integer)
        padded = np.full((frames, MAX_OBJECTS, *value.shape[2:]), -1 if integer else 0, value.dtype)
        padded[:, :n] = value
        factors[name] = padded.astype(np.int32 if integer else np.float32)
    factors["visible"] = factors["visibility"] >= 0.5
    return factors
