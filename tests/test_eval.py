"""The shapes detector and the stream metrics, on ground-truth shapes videos and corrupted copies."""

import itertools

import numpy as np
import pytest

from streamdit_jax.data.shapes import MOTIONS, ShapesDataset
from streamdit_jax.eval.detect import detect
from streamdit_jax.eval.metrics import Segment, classify_motion, evaluate

FPS = 8


def _uint8(video):
    return np.round((video + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def test_detector_recovers_colour_shape_position_and_size():
    ds = ShapesDataset((64, 64), FPS, 33, seed=3, split="heldout")
    seen = found = extra = shapes_ok = shapes = 0
    position_error, size_error = [], []
    for i in range(30):
        item = ds[i]
        f, det = item["factors"], detect(_uint8(item["video"]))
        for t in range(33):
            extra += len(set(np.nonzero(det.present[t])[0]) - set(f["colour"][t][f["present"]]))
            for o in np.nonzero(f["present"])[0]:
                if f["visibility"][t, o] < 0.98:
                    continue
                c = f["colour"][t, o]
                seen += 1
                found += det.present[t, c]
                if det.present[t, c] and not det.touches_edge[t, c]:
                    shapes += 1
                    shapes_ok += det.shape[t, c] == f["shape"][t, o]
                    position_error.append(np.abs(det.position[t, c] - f["position"][t, o]).max())
                    size_error.append(abs(det.size[t, c] - f["size"][t, o]))
    assert found / seen >= 0.99 and extra == 0
    assert shapes > 500 and shapes_ok / shapes >= 0.97
    assert np.percentile(position_error, 95) < 0.02  # image fractions: about one pixel at 64x64
    assert np.percentile(size_error, 95) < 0.03


def test_motion_classifier_on_true_tracks():
    ds = ShapesDataset((64, 64), FPS, 97, seed=7, split="train")
    right = total = 0
    for i in range(40):
        item = ds[i]
        f = item["factors"]
        if f["present"][1]:
            continue
        det, c = detect(_uint8(item["video"])), f["colour"][0, 0]
        track = np.where(det.present[:, c : c + 1], det.position[:, c], np.nan)
        for a in range(0, 97 - 8, 2 * FPS):
            vote = classify_motion(track[a : a + 2 * FPS], FPS)
            total += vote >= 0
            right += vote == f["motion"][0, 0]
    assert total > 50 and right / total >= 0.9


def _streams(count=4, seconds=30):
    """True single-object videos with three prompt segments, their segments and 8-frame chunks."""
    ds = ShapesDataset((64, 64), FPS, seconds * FPS + 1, seed=5, split="heldout", segments=3)
    out = []
    for i in range(50):
        item = ds[i]
        f = item["factors"]
        if f["present"][1]:
            continue
        segments = [
            Segment(int(s), int(f["colour"][s, 0]), int(f["shape"][s, 0]), int(f["motion"][s, 0]))
            for s in item["segment_starts"]
        ]
        out.append((_uint8(item["video"]), segments))
        if len(out) == count:
            return out, [0, *range(5, seconds * FPS + 1, 4 * 2)]
    raise AssertionError("too few single-object items")


@pytest.fixture(scope="module")
def streams():
    return _streams()


def test_true_videos_score_near_perfect(streams):
    videos, chunks = streams
    for video, segments in videos:
        scores = evaluate(video, FPS, segments, chunks)
        assert scores["adherence"]["colour"] >= 0.99
        assert scores["adherence"]["shape"] >= 0.95
        assert scores["adherence"]["motion"] >= 0.75
        assert scores["consistency"]["identity"] >= 0.99
        assert scores["consistency"]["size_stability"] >= 0.95
        assert scores["drift_points"]["adherence"] <= 10 and scores["drift_points"]["consistency"] <= 5
        assert 0.7 <= scores["seam_ratio"] <= 1.3
        assert scores["objects_per_frame"] == 1.0  # single-object scenes, no spurious colour


def test_corrupted_videos_score_as_they_should(streams):
    videos, chunks = streams
    for video, segments in videos:
        swapped = evaluate(video[..., [2, 0, 1]], FPS, segments, chunks)  # every hue moved
        assert swapped["adherence"]["colour"] <= 0.05
        seamed = video.astype(int)
        for k, start in enumerate(chunks):
            seamed[start : start + 8] += 12 * (k % 2)  # every other chunk brighter
        assert evaluate(np.clip(seamed, 0, 255).astype(np.uint8), FPS, segments, chunks)["seam_ratio"] > 3
        faded = video.copy()
        faded[len(video) * 2 // 3 :] = video[len(video) * 2 // 3 :].mean(axis=-1, keepdims=True)  # gray
        drift = evaluate(faded, FPS, segments, chunks)["drift_points"]
        assert drift["presence"] > 50 and drift["adherence"] > 50
        # coloured 4x4 fragments of random hues scattered over the frames (what a transformer made of a
        # latent space it could not model, docs/evaluation.md) are many objects a frame
        rng = np.random.default_rng(0)
        mosaic = video.copy()
        t, y, x = (rng.integers(0, n, 40 * len(video)) for n in (len(video), 16, 16))
        colours = rng.integers(0, 256, (len(t), 3)).astype(np.uint8)
        colours[np.arange(len(t)), rng.integers(0, 3, len(t))] = 0  # saturated: one channel off
        for frame, row, col, colour in zip(t, 4 * y, 4 * x, colours, strict=True):
            mosaic[frame, row : row + 4, col : col + 4] = colour
        assert evaluate(mosaic, FPS, segments, chunks)["objects_per_frame"] >= 3
    # reversed time within segments reverses straight motion
    moving = [(v, s) for v, s in videos if all(MOTIONS[x.motion] not in ("still", "bouncing") for x in s)]
    assert moving
    for video, segments in moving:
        bounds = [s.start for s in segments] + [len(video)]
        backwards = np.concatenate([video[a:b][::-1] for a, b in itertools.pairwise(bounds)])
        assert evaluate(backwards, FPS, segments, chunks)["adherence"]["motion"] <= 0.2


def test_every_registered_metric_is_scored_summarised_and_tabled(streams):
    """``METRICS`` is what every reader goes by: each metric ``evaluate`` computes sits at its path in a
    stream's scores; the summary and eval.md's rows are the summarised metrics, in the registry's order."""
    from streamdit_jax.eval.metrics import METRICS
    from streamdit_jax.eval.run import markdown, summarise

    videos, chunks = streams
    results = {f"s{i}": evaluate(video, FPS, segments, chunks) for i, (video, segments) in enumerate(videos)}
    assert all(m.read(results["s0"]) is not None for m in METRICS if m.source == "frames")
    summary = summarise(results)
    assert list(summary) == [m.key for m in METRICS if m.summary is not None]
    table = markdown(summary, results).split("\n\n")[0].splitlines()
    assert [line.split(" | ")[0].removeprefix("| ") for line in table[2:]] == list(summary)


def test_switch_response_counts_chunks_until_the_new_colour_dominates(streams):
    (first, segs_a), (second, segs_b) = streams[0][0], streams[0][1]
    assert segs_a[0].colour != segs_b[0].colour
    chunks = list(range(0, 160, 8))
    a, b = first[:80], second[:80]  # both within their first segment
    switch = [segs_a[0]._replace(start=0), segs_b[0]._replace(start=80)]
    assert evaluate(np.concatenate([a, b]), FPS, switch, chunks)["switch_response_chunks"] == [0]
    late = np.concatenate([a, first[56:80], b[24:]])  # the old object for three more chunks
    assert evaluate(late, FPS, switch, chunks)["switch_response_chunks"] == [3]


def test_heldout_prompts_are_unseen_and_parse_back_to_their_factors():
    from streamdit_jax.config import ConfigError
    from streamdit_jax.data.shapes import COLOURS, HELDOUT_COMBOS
    from streamdit_jax.eval.run import heldout_prompts, parse_prompt

    prompts = heldout_prompts(6, seconds=60)
    assert len({p.name for p in prompts}) == 6
    for prompt in prompts:
        assert [at for at, _ in prompt.schedule] == [0, 20, 40]
        for (_, text), ask in zip(prompt.schedule, prompt.asks, strict=True):
            assert (COLOURS[ask[0]], MOTIONS[ask[2]]) in HELDOUT_COMBOS
            assert parse_prompt(text) == ask, text
    with pytest.raises(ConfigError, match="names no shape"):
        parse_prompt("a red thing moving left")


def test_truth_scores_a_held_out_schedule_on_its_true_video():
    """The ceiling reported beside a model's scores: the held-out scene rendered at the stream's length
    and scored like a stream, near-perfect; a schedule of one's own has none."""
    from streamdit_jax.eval.run import heldout_prompts, prompts_from_schedule, truth

    prompt = heldout_prompts(1, seconds=30, segments=4)[0]
    scores = truth(prompt, 240, FPS, (64, 64), list(range(0, 240, 8)))
    assert [s["start"] for s in scores["segments"]] == [0, 60, 120, 180]
    assert scores["adherence"]["colour"] >= 0.99 and scores["consistency"]["identity"] >= 0.99
    assert 0.7 <= scores["seam_ratio"] <= 1.3
    own = prompts_from_schedule("own", [(0.0, "a red circle moving left")])
    assert truth(own, 240, FPS, (64, 64), [0]) is None


@pytest.mark.slow
def test_through_an_exact_autoencoder_the_scores_are_the_true_videos():
    """The latent space's ceiling (``autoencoder_summary``): true videos encoded and decoded by the run's
    autoencoder, scored like a stream. Through the patch kind, an exact inverse, they are the true
    videos' scores; eval.json and eval.md carry them beside the model's."""
    import json
    import tempfile
    from pathlib import Path

    from flax import nnx

    from streamdit_jax.autoencoder import build_autoencoder
    from streamdit_jax.bench.rollout import random_stream_model
    from streamdit_jax.config import load
    from streamdit_jax.eval.run import heldout_prompts, run_eval, truth

    patch = ["autoencoder.kind=patch", "autoencoder.latent_channels=768", "model.latent_channels=768"]
    cfg = load("tiny", patch, num_devices=1)
    prompt = heldout_prompts(1, seconds=12, segments=3)[0]
    ae = build_autoencoder(cfg.autoencoder, nnx.Rngs(0))
    starts = list(range(0, 96, 8))
    assert truth(prompt, 96, FPS, (64, 64), starts, ae) == truth(prompt, 96, FPS, (64, 64), starts)
    with tempfile.TemporaryDirectory() as out:
        report = run_eval(random_stream_model(cfg), heldout_prompts(2, seconds=4), 4.0, out)
        assert report["autoencoder"] == "patch"
        same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN == NaN
        assert same(report["autoencoder_summary"], report["truth_summary"])
        saved = json.loads((Path(out) / "eval.json").read_text())
        assert saved["autoencoder_summary"]["colour_adherence"] == report["truth_summary"]["colour_adherence"]
        assert "through the autoencoder" in (Path(out) / "eval.md").read_text()
