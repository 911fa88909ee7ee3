"""The procedural shapes dataset: layout, determinism, rendering against its factors, motion, captions,
held-out split and prompt-switch segments."""

import itertools
import re

import numpy as np
import pytest

from streamdit_jax.data.shapes import (
    BACKGROUND_WORDS,
    BACKGROUNDS,
    BOUNCE_SPEEDUP,
    COLOUR_RGB,
    COLOURS,
    HELDOUT_COMBOS,
    HELDOUT_TEMPLATES,
    MAX_OBJECTS,
    MOTION_PHRASES,
    MOTIONS,
    SHAPE_WORDS,
    SHAPES,
    SPEED_RANGE,
    TRAIN_TEMPLATES,
    ObjectSpec,
    ShapesDataset,
    describe,
    render_background,
)

SIGNS = {  # expected sign of (dy, dx) per straight motion; image y grows downward
    "still": (0, 0),
    "left": (0, -1),
    "right": (0, 1),
    "up": (-1, 0),
    "down": (1, 0),
    "up-left": (-1, -1),
    "up-right": (-1, 1),
    "down-left": (1, -1),
    "down-right": (1, 1),
}
FACTORS = {  # name: (dtype, shape after [T, N] or None for per-clip)
    "present": (np.bool_, None),
    "background": (np.int32, None),
    "colour": (np.int32, ()),
    "shape": (np.int32, ()),
    "motion": (np.int32, ()),
    "size": (np.float32, ()),
    "position": (np.float32, (2,)),
    "velocity": (np.float32, (2,)),
    "visibility": (np.float32, ()),
    "visible": (np.bool_, ()),
}


def _objects(factors):
    return np.flatnonzero(factors["present"])


def _radius(factors, o, resolution):
    """Per-axis half-extent of object ``o`` in image fractions, [T, 2]."""
    return factors["size"][:, o, None] * min(resolution) / 2 / np.array(resolution)


def _words(caption):
    return set(re.findall(r"[a-z]+", caption.lower()))


def _template_regex(template):
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template.scene)))


def _assert_same(a, b):
    assert np.array_equal(a["video"], b["video"])
    assert a["captions"] == b["captions"]
    assert np.array_equal(a["segment_starts"], b["segment_starts"])
    for name in FACTORS:
        assert np.array_equal(a["factors"][name], b["factors"][name]), name


def test_item_layout_dtypes_and_ranges():
    ds = ShapesDataset((48, 80), fps=8, frames=12, segments=3, length=10)
    assert len(ds) == 10
    for i in range(6):
        item = ds[i]
        video, factors = item["video"], item["factors"]
        assert video.shape == (12, 48, 80, 3) and video.dtype == np.float32
        assert video.min() >= -1.0 and video.max() <= 1.0
        assert item["caption"] == item["captions"][0] and len(item["captions"]) == 3
        assert item["segment_starts"].tolist() == [0, 4, 8]
        assert set(factors) == set(FACTORS)
        for name, (dtype, tail) in FACTORS.items():
            assert factors[name].dtype == dtype, name
            if tail is not None:
                assert factors[name].shape == (12, MAX_OBJECTS, *tail), name
        assert factors["present"].shape == (MAX_OBJECTS,) and factors["present"][0]
        assert factors["background"].shape == () and 0 <= factors["background"] < len(BACKGROUNDS)
        absent = ~factors["present"]
        assert (factors["colour"][:, absent] == -1).all() and (factors["shape"][:, absent] == -1).all()
        assert not factors["visible"][:, absent].any() and (factors["position"][:, absent] == 0).all()


@pytest.mark.parametrize(
    ("resolution", "fps", "frames"), [((48, 80), 4, 1), ((48, 80), 16, 50), ((17, 9), 8, 5), ((8, 8), 8, 3)]
)
def test_any_resolution_fps_and_length(resolution, fps, frames):
    for i in range(3):
        item = ShapesDataset(resolution, fps=fps, frames=frames)[i]
        assert item["video"].shape == (frames, *resolution, 3)
        assert np.isfinite(item["video"]).all() and np.abs(item["video"]).max() <= 1.0
        assert np.isfinite(item["factors"]["position"]).all()


def test_deterministic_by_seed_split_and_index():
    ds = ShapesDataset(frames=9, segments=2)
    first = ds[3]
    ds[10]
    _assert_same(first, ShapesDataset(frames=9, segments=2)[3])
    for other in (
        ds[4],
        ShapesDataset(frames=9, segments=2, seed=1)[3],
        ShapesDataset(frames=9, split="heldout")[3],
    ):
        assert not np.array_equal(first["video"], other["video"])


def test_scene_independent_of_resolution_and_fps():
    """Motion is per second: 8 fps samples the same path as 4 fps, twice as densely, at any resolution."""
    slow = ShapesDataset((64, 64), fps=4, frames=17, segments=2)
    fast = ShapesDataset((64, 64), fps=8, frames=33, segments=2)
    large = ShapesDataset((128, 128), fps=8, frames=33, segments=2)
    for i in range(20):
        a, b, c = slow[i], fast[i], large[i]
        assert a["captions"] == b["captions"] == c["captions"]
        np.testing.assert_allclose(a["factors"]["position"], b["factors"]["position"][::2], atol=1e-6)
        np.testing.assert_array_equal(a["factors"]["colour"], b["factors"]["colour"][::2])
        np.testing.assert_array_equal(b["factors"]["position"], c["factors"]["position"])


def test_rendered_colour_at_centre_matches_factor_and_differs_from_background():
    resolution = (64, 96)
    ds = ShapesDataset(resolution, frames=8, segments=2)
    checked = 0
    for i in range(40):
        item = ds[i]
        f = item["factors"]
        background = render_background(int(f["background"]), *resolution) * 2 - 1
        for t, o in itertools.product(range(8), _objects(f)):
            y, x = f["position"][t, o]
            if not (0 < y < 1 and 0 < x < 1):
                continue
            if any(
                (np.abs(f["position"][t, o] - f["position"][t, p]) < _radius(f, o, resolution)[t] * 2.2).all()
                for p in _objects(f)
                if p != o
            ):
                continue  # the objects might overlap
            row, col = int(y * resolution[0]), int(x * resolution[1])
            expected = COLOUR_RGB[f["colour"][t, o]] * 2 - 1
            np.testing.assert_allclose(item["video"][t, row, col], expected, atol=0.02)
            assert np.linalg.norm(expected - background[row, col]) > 0.8
            checked += 1
    assert checked > 200


def test_rendered_centroid_matches_position():
    """The alpha-weighted centroid of a lone object is its position (triangle: size / 6 lower)."""
    resolution = (64, 96)
    ds = ShapesDataset(resolution, frames=6)
    rows, cols = np.mgrid[: resolution[0], : resolution[1]] + 0.5
    checked = 0
    for i in range(30):
        item = ds[i]
        f = item["factors"]
        if f["present"][1] or BACKGROUNDS[f["background"]] not in ("dark", "light"):
            continue  # alpha is only recoverable for a lone object on a uniform background
        background = render_background(int(f["background"]), *resolution)[0, 0] * 2 - 1
        for t in np.flatnonzero(f["visibility"][:, 0] > 0.99):
            contrast = COLOUR_RGB[f["colour"][t, 0]] * 2 - 1 - background
            alpha = (item["video"][t] - background) @ contrast / (contrast @ contrast)
            centroid = np.array([np.sum(alpha * rows), np.sum(alpha * cols)]) / alpha.sum()
            expected = f["position"][t, 0] * resolution
            if SHAPES[f["shape"][t, 0]] == "triangle":
                expected[0] += f["size"][t, 0] * min(resolution) / 6
            np.testing.assert_allclose(centroid, expected, atol=0.3)
            checked += 1
    assert checked > 20


def test_motion_direction_and_speed_match_motion_name():
    fps = 8
    ds = ShapesDataset((64, 64), fps=fps, frames=9)
    seen = set()
    for i in range(300):
        f = ds[i]["factors"]
        for o in _objects(f):
            name = MOTIONS[f["motion"][0, o]]
            seen.add(name)
            step = np.diff(f["position"][:, o], axis=0) * fps  # image fractions per second
            speed = np.linalg.norm(f["velocity"][:, o], axis=-1)
            if name == "bouncing":  # a step across a bounce is shorter than the speed
                lo, hi = BOUNCE_SPEEDUP * np.array(SPEED_RANGE)
                assert (np.abs(step) > 0).all() and (np.linalg.norm(step, axis=-1) <= speed[1:] + 1e-4).all()
                assert ((speed > lo - 1e-4) & (speed < hi + 1e-4)).all()
                continue
            np.testing.assert_array_equal(
                np.sign(np.round(step, 6)), np.broadcast_to(SIGNS[name], step.shape)
            )
            np.testing.assert_allclose(step, f["velocity"][1:, o], atol=1e-4)
            if name != "still":
                assert ((speed > SPEED_RANGE[0] - 1e-4) & (speed < SPEED_RANGE[1] + 1e-4)).all()
    assert seen == set(MOTIONS)


def test_straight_movers_stay_inside_a_default_clip():
    resolution = (64, 64)
    ds = ShapesDataset(resolution, fps=8, frames=33)
    for i in range(60):
        f = ds[i]["factors"]
        for o in _objects(f):
            radius = _radius(f, o, resolution)
            position = f["position"][:, o]
            assert ((position >= radius - 1e-6) & (position <= 1 - radius + 1e-6)).all()


def test_long_straight_movers_leave_and_reenter_on_the_opposite_side():
    resolution = (48, 80)
    ds = ShapesDataset(resolution, fps=8, frames=160)
    wrapped = 0
    for i in range(40):
        f = ds[i]["factors"]
        for o in _objects(f):
            name = MOTIONS[f["motion"][0, o]]
            if name not in ("left", "right", "up", "down"):
                continue
            axis = int(name in ("left", "right"))
            radius = _radius(f, o, resolution)[0, axis]
            track = f["position"][:, o, axis]
            assert ((track >= -radius - 1e-6) & (track < 1 + radius + 1e-6)).all()
            for t in np.flatnonzero(np.diff(track) * SIGNS[name][axis] < 0):  # the wrap: mostly off screen
                wrapped += 1
                assert not f["visible"][t : t + 2, o].any()
    assert wrapped > 3


def test_bouncing_objects_stay_inside_and_reflect():
    resolution = (48, 80)
    ds = ShapesDataset(resolution, fps=8, frames=160)
    bouncers = 0
    for i in range(40):
        f = ds[i]["factors"]
        for o in _objects(f):
            if MOTIONS[f["motion"][0, o]] != "bouncing":
                continue
            bouncers += 1
            radius = _radius(f, o, resolution)
            position = f["position"][:, o]
            assert ((position >= radius - 1e-6) & (position <= 1 - radius + 1e-6)).all()
            assert all(len(set(np.sign(f["velocity"][:, o, axis]))) == 2 for axis in (0, 1))
    assert bouncers >= 3


def test_captions_mention_every_objects_colour_shape_motion_and_background():
    for split in ("train", "heldout"):
        ds = ShapesDataset((16, 16), frames=6, segments=2, split=split)
        for i in range(60):
            item = ds[i]
            f = item["factors"]
            for caption, start in zip(item["captions"], item["segment_starts"], strict=True):
                words = _words(caption)
                assert any(phrase in caption for phrase in BACKGROUND_WORDS[BACKGROUNDS[f["background"]]])
                for o in _objects(f):
                    assert COLOURS[f["colour"][start, o]] in words, caption
                    assert words & set(SHAPE_WORDS[SHAPES[f["shape"][start, o]]]), caption
                    assert any(p in caption for p in MOTION_PHRASES[MOTIONS[f["motion"][start, o]]]), caption


def test_describe_varies_its_wording():
    objects = [
        ObjectSpec(colour=0, shape=0, size=0, motion=1),
        ObjectSpec(colour=5, shape=1, size=2, motion=0),
    ]
    rng = np.random.default_rng(0)
    captions = {describe(objects, 0, rng) for _ in range(60)}
    assert len(captions) > 30
    assert all({"red", "blue"} <= _words(c) for c in captions)


def test_heldout_split_is_disjoint_from_train():
    heldout_patterns = [_template_regex(t) for t in HELDOUT_TEMPLATES]
    seen = {}
    for split in ("train", "heldout"):
        ds = ShapesDataset((16, 16), frames=6, segments=3, split=split)
        seen[split] = set()
        for i in range(200):
            item = ds[i]
            f = item["factors"]
            objects = _objects(f)
            if len(objects) == 2:
                assert (f["colour"][:, 0] != f["colour"][:, 1]).all()
            seen[split] |= {
                (COLOURS[f["colour"][t, o]], MOTIONS[f["motion"][t, o]]) for t in range(6) for o in objects
            }
            for caption in item["captions"]:
                is_heldout = any(p.fullmatch(caption) for p in heldout_patterns)
                assert is_heldout == (split == "heldout"), caption
    assert not seen["train"] & HELDOUT_COMBOS
    assert seen["heldout"] == HELDOUT_COMBOS
    assert len(seen["train"]) == len(COLOURS) * len(MOTIONS) - len(HELDOUT_COMBOS)
    assert not {t.scene for t in TRAIN_TEMPLATES} & {t.scene for t in HELDOUT_TEMPLATES}


def test_segments_change_one_factor_and_keep_the_position():
    fps = 8
    ds = ShapesDataset((32, 32), fps=fps, frames=30, segments=3)
    changed = set()
    for i in range(40):
        item = ds[i]
        f = item["factors"]
        starts = item["segment_starts"].tolist()
        assert starts == [0, 10, 20] and len(set(item["captions"])) == 3
        objects = _objects(f)
        for t in range(1, 30):
            diffs = [
                (name, o)
                for name in ("colour", "shape", "motion")
                for o in objects
                if f[name][t, o] != f[name][t - 1, o]
            ]
            assert len(diffs) == (t in starts), (t, diffs)
            changed |= {name for name, _ in diffs}
            for o in objects:
                if f["visibility"][t - 1 : t + 1, o].min() > 0:  # not across a wrap
                    step = np.linalg.norm(f["position"][t, o] - f["position"][t - 1, o])
                    assert step <= np.linalg.norm(f["velocity"][t - 1, o]) / fps + 1e-5
    assert changed == {"colour", "shape", "motion"}


def test_vocabularies_are_distinct_and_visible_on_every_background():
    assert {"circle", "square", "triangle"} <= set(SHAPES) and len(COLOURS) >= 6 and len(BACKGROUNDS) >= 4
    assert len(COLOUR_RGB) == len(COLOURS) and set(MOTION_PHRASES) == set(MOTIONS)
    assert set(BACKGROUND_WORDS) == set(BACKGROUNDS) and set(SHAPE_WORDS) == set(SHAPES)
    distances = np.linalg.norm(COLOUR_RGB[:, None] - COLOUR_RGB[None], axis=-1)
    assert distances[~np.eye(len(COLOURS), dtype=bool)].min() > 0.4
    for b in range(len(BACKGROUNDS)):
        pixels = render_background(b, 40, 56).reshape(-1, 3)
        assert np.linalg.norm(COLOUR_RGB[:, None] - pixels[None], axis=-1).min() > 0.4, BACKGROUNDS[b]
    shape_words = [w for words in SHAPE_WORDS.values() for w in words]
    assert len(shape_words) == len(set(shape_words))
    phrases = [p for group in (*BACKGROUND_WORDS.values(), *MOTION_PHRASES.values()) for p in group]
    other_words = set().union(*map(_words, phrases))
    assert not other_words & (set(COLOURS) | set(shape_words))
    assert {c for c, _ in HELDOUT_COMBOS} <= set(COLOURS) and {m for _, m in HELDOUT_COMBOS} <= set(MOTIONS)


@pytest.mark.parametrize(
    "kwargs",
    [dict(split="val"), dict(segments=0), dict(frames=4, segments=5), dict(resolution=(0, 8)), dict(fps=0)],
)
def test_invalid_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ShapesDataset(**kwargs)


def test_index_out_of_range():
    ds = ShapesDataset(length=3)
    with pytest.raises(IndexError):
        ds[3]
