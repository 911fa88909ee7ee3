"""`streamdit encode`: captioned videos it writes itself -> shards the training pipeline reads back."""

import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from helpers import write_latent_shards

from streamdit_jax import config as config_lib
from streamdit_jax.autoencoder import restore_autoencoder
from streamdit_jax.cli import main
from streamdit_jax.data import DataError, pipeline
from streamdit_jax.data.encode import clip_frames, read_captions
from streamdit_jax.data.frames import conform
from streamdit_jax.data.latents import LatentShards, training_example
from streamdit_jax.data.shapes import ShapesDataset

TINY = config_lib.load("tiny", num_devices=8)


def _write_video(path, frames, fps):
    """Writes uint8 frames with PyAV (mp4/webm) or Pillow (gif)."""
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(
            path, frames, plugin="pyav", fps=fps, codec="libx264" if path.suffix == ".mp4" else "libvpx"
        )


def _shapes_frames(index, frames, size=(48, 80)):
    clip = ShapesDataset(resolution=size, fps=16, frames=frames, seed=3)[index]
    return ((clip["video"] + 1) * 127.5).round().astype(np.uint8), clip["caption"]


@pytest.fixture
def captioned_videos(shelf):
    """A caption file and its folder: two long videos (one gif), one too short, one corrupt, one missing."""

    def build(root):
        videos = root / "videos"
        videos.mkdir()
        entries = []
        for name, frames, index in (("a.mp4", 80, 0), ("b.gif", 64, 1), ("short.mp4", 8, 2)):
            pixels, caption = _shapes_frames(index, frames)
            _write_video(videos / name, pixels, fps=16)
            entries.append({"video": name, "caption": caption})
        (videos / "corrupt.mp4").write_bytes(b"\x00\x01 not a video" * 100)
        entries += [{"video": "corrupt.mp4", "caption": "a red circle"}]
        entries += [{"video": "gone.webm", "caption": "x"}]
        (root / "captions.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))

    root = shelf.get("captioned_videos", build)
    return root / "captions.jsonl", root / "videos"


@pytest.fixture
def dataset(tiny_vae, captioned_videos):
    """The shelf's tiny VAE and the captioned videos."""
    return tiny_vae, *captioned_videos


def _encode(vae_dir, captions, videos, out, *extra):
    return main(
        ["encode", "--config", "tiny", "--videos", str(videos), "--captions", str(captions), "--vae",
         str(vae_dir), "--out", str(out), "--videos-per-shard", "2", *extra]
    )  # fmt: skip


@pytest.mark.slow
def test_encode_writes_shards_the_pipeline_reads_back(dataset, tmp_path, capsys, caplog):
    vae_dir, captions, videos = dataset
    assert _encode(vae_dir, captions, videos, tmp_path / "shards") == 0
    out = capsys.readouterr().out
    # 80 and 64 frames at 16 fps -> 40 and 32 frames at 8 fps -> 1 clip of 29 frames each (buffer of 8).
    assert clip_frames(TINY) == 29
    assert "2 clips from 2 videos; skipped 3 videos" in out
    assert (
        "corrupt.mp4: unreadable" in out
        and "short.mp4: too short" in out
        and "gone.webm: file not found" in out
    )
    assert sum("skipped" in r.message for r in caplog.records) == 3  # one log line each
    shards = LatentShards(tmp_path / "shards")
    assert len(shards) == 2 and len(shards.paths) == 3  # three shards of two videos; the last one empty
    record = shards[0]
    assert record["caption"].startswith(read_captions(captions, videos)[0][1][:10])
    batches = pipeline.train_batches(shards, training_example, batch_size=2, seed=0)
    batch = next(iter(batches))
    assert batch["latents"].shape == (2, 8, 8, 8, 16) and batch["latents"].dtype == np.float32
    assert batch["text"].shape == (2, 40, 384) and batch["text_mask"].shape == (2, 40)
    assert batch["text_mask"].any(axis=1).all()


@pytest.mark.slow
def test_encode_resumes_and_skips_finished_shards(dataset, tmp_path, capsys):
    vae_dir, captions, videos = dataset
    out = tmp_path / "shards"
    assert _encode(vae_dir, captions, videos, out) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "shard-00001.json").unlink()  # as if the run had died while writing shard 1
    (out / "shard-00001.array_record").unlink()
    capsys.readouterr()
    assert _encode(vae_dir, captions, videos, out) == 0
    assert "wrote 1 shards (2 already complete)" in capsys.readouterr().out
    assert (out / "shard-00000.array_record").stat().st_mtime_ns == first["shard-00000.array_record"]
    assert len(LatentShards(out)) == 2


@pytest.mark.slow
def test_the_latents_are_the_vae_encoding_of_the_conformed_video(dataset, tmp_path):
    from streamdit_jax.data.frames import read_video

    vae_dir, captions, videos = dataset
    assert _encode(vae_dir, captions, videos, tmp_path / "shards") == 0
    frames, fps = read_video(videos / "a.mp4")
    clip = conform(frames, fps, TINY)[:29]
    vae = restore_autoencoder(vae_dir)
    want = np.asarray(jax.jit(vae.encode)(clip[None]))[0]
    got = np.asarray(LatentShards(tmp_path / "shards")[0]["latents"], np.float32)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)  # stored as float16


@pytest.mark.slow
def test_precomputed_text_serves_the_encoded_captions(dataset, tmp_path):
    from streamdit_jax.text import MiniLM, PrecomputedText, TextEncoder

    vae_dir, captions, videos = dataset
    assert _encode(vae_dir, captions, videos, tmp_path / "shards") == 0
    precomputed = PrecomputedText(tmp_path / "shards")
    assert isinstance(precomputed, TextEncoder) and (precomputed.max_length, precomputed.width) == (40, 384)
    caption = read_captions(captions, videos)[1][1]  # the gif's caption
    tokens, mask = precomputed([caption, ""])
    want_tokens, want_mask = MiniLM.from_package(40)([caption, ""])
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(want_mask))
    np.testing.assert_allclose(np.asarray(tokens), np.asarray(want_tokens), atol=2e-3)  # float16 storage
    with pytest.raises(KeyError, match="not a caption of the encoded dataset"):
        precomputed(["a prompt nobody encoded"])


def test_a_malformed_caption_file_is_an_error_before_any_work(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"video": "a.mp4", "caption": "x"}\n{"video": "b.mp4"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2"):
        read_captions(bad, tmp_path)


@pytest.mark.slow
def test_video_folders_train_on_the_fly_skipping_bad_files(dataset, minilm, caplog):
    """data.source=videos: decoded, conformed and encoded per batch; corrupt, short and missing files
    are skipped with a log line (replaced by the next readable video); the last entry is held out."""
    from streamdit_jax.data.training import ExampleSource

    vae_dir, captions, videos = dataset
    cfg = config_lib.load(
        "tiny",
        ["data.source=videos", f"data.path={videos}", f"data.captions={captions}", "data.heldout=1"],
        num_devices=8,
    )

    source = ExampleSource(cfg, restore_autoencoder(vae_dir), minilm)
    batch = next(iter(source.train_batches(4, seed=0, process=0, processes=1)))
    assert batch["latents"].shape == (4, *cfg.latent_grid, 16) and np.isfinite(batch["latents"]).all()
    assert batch["text"].shape == (4, 40, 384) and batch["text_mask"].shape == (4, 40)
    skipped = {
        record.getMessage().split(":")[0] for record in caplog.records if "skipped" in record.getMessage()
    }
    assert any("corrupt.mp4" in s for s in skipped) and any("short.mp4" in s for s in skipped)
    # Only the two readable videos (a.mp4, b.gif) feed training: the skipped ones are marked bad, and a
    # bad entry is replaced by the next readable one (every example is one of their clips).
    for i in range(len(source.train)):
        source.train[i]
    readable = {caption for i, (_, caption) in enumerate(source.train.entries) if i not in source.train.bad}
    assert readable == {json.loads(line)["caption"] for line in captions.read_text().splitlines()[:2]}


@pytest.mark.slow
def test_encode_shapes_batches_across_scenes_in_order(dataset, tmp_path, capsys):

    vae_dir = dataset[0]
    out = tmp_path / "shapes"
    args = ["encode", "--config", "tiny", "--shapes", "5", "--vae", str(vae_dir), "--out", str(out)]
    assert main([*args, "--videos-per-shard", "3", "--batch", "2"]) == 0
    assert "5 clips from 5 videos" in capsys.readouterr().out
    shards = LatentShards(out)
    frames = clip_frames(TINY)
    scenes = ShapesDataset(TINY.data.resolution, TINY.data.fps, frames, seed=TINY.seed, split="train")
    vae = restore_autoencoder(vae_dir)
    want = np.asarray(jax.jit(vae.encode)(np.stack([scenes[i]["video"] for i in range(5)])))
    for i in range(5):  # batches of 2 span scenes and shards; the last one is padded
        record = shards[i]
        assert record["video"] == f"shapes/train/{i}" and record["caption"] == scenes[i]["caption"]
        np.testing.assert_allclose(np.asarray(record["latents"], np.float32), want[i], rtol=2e-3, atol=2e-3)


def test_encode_takes_videos_or_shapes_not_both(captioned_videos, tmp_path, capsys):
    captions, videos = captioned_videos
    assert _encode(tmp_path / "vae", captions, videos, tmp_path / "x", "--shapes", "3") != 0
    assert "either --videos DIR --captions FILE, or --shapes N" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_long_clips_train_on_windows_at_drawn_offsets(dataset, minilm, tmp_path):
    """data.clip_latents > buffer.frames: encode writes whole long clips; training examples are windows
    of the buffer's length at offsets drawn per position (every offset occurs), the same from the
    latents shards as from the on-the-fly shapes source."""
    from streamdit_jax.data.training import ExampleSource, window_offset

    vae_dir = dataset[0]
    out = tmp_path / "long"
    args = ["encode", "--config", "tiny", "--shapes", "6", "--vae", str(vae_dir), "--out", str(out)]
    assert main([*args, "--config.data.clip_latents=11"]) == 0
    assert LatentShards(out)[0]["latents"].shape == (11, 8, 8, 16)
    cfg = config_lib.load(
        "tiny", ["data.source=latents", f"data.path={out}", "data.clip_latents=11", "data.heldout=1"]
    )
    source = ExampleSource(cfg, None, None)
    offsets = {window_offset(cfg.seed, p, 11, 8) for p in range(64)}
    assert offsets == {0, 1, 2, 3}
    for position in range(6):
        record = LatentShards(out)[position % 5]
        example = source._latent_window(record, position)
        o = window_offset(cfg.seed, position, 11, 8)
        np.testing.assert_array_equal(
            example["latents"], np.asarray(record["latents"], np.float32)[o : o + 8]
        )
    batch = next(iter(source.train_batches(4, seed=0, process=0, processes=1)))
    assert batch["latents"].shape == (4, 8, 8, 8, 16)

    # On the fly: the whole 41-frame clip is encoded and each example keeps its window.
    vae = restore_autoencoder(vae_dir)
    shapes_cfg = config_lib.load("tiny", ["data.clip_latents=11"])
    assert clip_frames(shapes_cfg) == 41
    on_the_fly = ExampleSource(shapes_cfg, vae, minilm)
    examples = [on_the_fly._video_and_caption(on_the_fly.train[i], i) for i in range(2)]
    encoded = on_the_fly.encode({k: np.stack([e[k] for e in examples]) for k in examples[0]})
    whole = np.asarray(jax.jit(vae.encode)(np.stack([e["video"] for e in examples])))
    for i, e in enumerate(examples):
        o = int(e["offset"])
        np.testing.assert_allclose(encoded["latents"][i], whole[i, o : o + 8], atol=1e-5)


def test_clips_shorter_than_the_buffer_are_a_config_error():
    with pytest.raises(config_lib.ConfigError, match=r"data\.clip_latents.*at least 8"):
        config_lib.load("tiny", ["data.clip_latents=5"])


def test_no_source_video_is_in_both_splits(captioned_videos, tmp_path):
    """data.heldout counts source videos. Latent shards: the last videos' records, every clip of them
    (holding out the last 4 records would have cut v1 in two). Video folders: a video named again
    earlier in the caption file is held out there too, and a bad file is replaced only from its own
    split."""
    from streamdit_jax.data.training import ExampleSource

    write_latent_shards(tmp_path / "shards", [("v0", 3), ("v1", 2), ("v2", 3)])
    for heldout, held in ((1, {"v2"}), (2, {"v1", "v2"})):
        cfg = config_lib.load("tiny", ["data.source=latents", f"data.path={tmp_path / 'shards'}",
                                       f"data.heldout={heldout}"])  # fmt: skip
        source = ExampleSource(cfg, None, None)
        train = [source.train[i]["video"] for i in range(len(source.train))]
        test = [source.heldout[i]["video"] for i in range(len(source.heldout))]
        assert set(test) == held and not set(train) & set(test) and len(train) + len(test) == 8
    cfg = config_lib.load("tiny", ["data.source=latents", f"data.path={tmp_path / 'shards'}",
                                   "data.heldout=3"])  # fmt: skip
    with pytest.raises(config_lib.ConfigError, match=r"data\.heldout.*3 source videos"):
        ExampleSource(cfg, None, None)

    _, videos = captioned_videos
    captions = tmp_path / "captions.jsonl"
    entries = [("a.mp4", "first a"), ("short.mp4", "short"), ("b.gif", "b"), ("a.mp4", "second a")]
    captions.write_text("".join(json.dumps({"video": v, "caption": c}) + "\n" for v, c in entries))
    cfg = config_lib.load("tiny", ["data.source=videos", f"data.path={videos}",
                                   f"data.captions={captions}", "data.heldout=1"])  # fmt: skip
    unused = object(), object()  # the split reads videos and encodes nothing: no VAE, no text encoder
    source = ExampleSource(cfg, *unused)
    assert [c for _, c in source.heldout.entries] == ["first a", "second a"]
    assert [c for _, c in source.train.entries] == ["short", "b"]
    assert source.train[0]["caption"] == "b"  # short.mp4 is too short: replaced within the train split
    captions.write_text("".join(json.dumps({"video": v, "caption": v}) + "\n" for v in ["a.mp4", "gone.mp4"]))
    source = ExampleSource(cfg, *unused)
    with pytest.raises(DataError, match="none of the 1 entries"):
        source.heldout[0]  # the held-out video is missing: no train video stands in for it
