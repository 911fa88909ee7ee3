"""Work dirs in object stores: ``storage.workpath`` and what goes through it, against a local S3 server.

The training round trip (train, SIGKILL, resume bit-identically, stream from the bucket) is in
test_train.py; these are the pieces."""

import os

import boto3
import numpy as np
import pytest

from streamdit_jax import checkpoint as ckpt
from streamdit_jax import storage
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.data.encode import read_captions
from streamdit_jax.data.latents import LatentShards
from streamdit_jax.storage import append_text, local_copy, workpath
from streamdit_jax.stream.video import InputVideo
from streamdit_jax.text.precomputed import PrecomputedText


def test_workpath_keeps_urls_and_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(workpath("s3://bucket/runs/a")) == "s3://bucket/runs/a"
    assert str(workpath("s3://bucket/runs/a") / "7") == "s3://bucket/runs/a/7"
    assert str(workpath("runs/a")) == os.path.join(os.getcwd(), "runs", "a")  # never ./gs:/...
    os.symlink(tmp_path, tmp_path / "link")
    assert str(workpath("link/x")) == os.path.join(os.getcwd(), "link", "x")  # symlinks kept, as typed
    with pytest.raises(ValueError, match="http:// is not a supported location; use a local folder"):
        workpath("http://host/run")
    with pytest.raises(ValueError, match="names no bucket"):
        workpath("s3:///run")


def test_a_missing_file_system_package_is_named(monkeypatch):
    monkeypatch.setitem(storage.BACKENDS, "gs", ("gcsfs_absent_here",))
    storage._check_backend.cache_clear()
    with pytest.raises(ImportError, match=r"through gcsfs_absent_here.*streamdit-jax\[cloud\]"):
        workpath("gs://bucket/run")
    storage._check_backend.cache_clear()


def test_a_bucket_step_without_its_commit_marker_is_not_a_checkpoint(bucket):
    """S3 cannot rename a folder: a step is complete once its commit_success.txt is written last, so a
    step a SIGKILL cut short is never restored."""
    cfg = load("tiny", num_devices=1).autoencoder
    state = {"w": np.arange(6, dtype=np.float32)}
    ckpt.save_params(f"{bucket}/ckpt", cfg, state, step=3)
    name = bucket.removeprefix("s3://")
    boto3.client("s3").put_object(Bucket=name, Key="ckpt/5/params/_METADATA", Body=b"{}")  # cut short
    assert ckpt.latest_step(f"{bucket}/ckpt") == 3
    assert ckpt.restore_config(f"{bucket}/ckpt") == cfg
    with pytest.raises(FileExistsError, match="already holds checkpoint step 3"):
        ckpt.save_params(f"{bucket}/ckpt", cfg, state, step=2)


def test_appends_and_local_copies_of_bucket_files(bucket):
    log = workpath(f"{bucket}/run/metrics.jsonl")
    append_text(log, "1\n")
    append_text(log, "2\n")
    assert log.read_text() == "1\n2\n"
    (workpath(bucket) / "shards" / "a.bin").write_bytes(b"abc")
    local = local_copy(workpath(f"{bucket}/shards"))
    assert (local / "a.bin").read_bytes() == b"abc" and str(local).startswith(os.environ["STREAMDIT_CACHE"])
    os.utime(local / "a.bin", (0, 0))
    assert local_copy(workpath(f"{bucket}/shards")) == local
    assert (local / "a.bin").stat().st_mtime == 0  # the same size: not fetched again
    (workpath(bucket) / "shards" / "a.bin").unlink()
    (workpath(bucket) / "shards" / "b.bin").write_bytes(b"de")
    assert sorted(p.name for p in local_copy(workpath(f"{bucket}/shards")).iterdir()) == ["b.bin"]


@pytest.mark.slow
def test_encode_into_a_bucket_reads_back_as_the_local_shards(bucket, tiny_vae, tiny_latents):
    """`streamdit encode --out s3://...` (ArrayRecord written locally, uploaded shard by shard) holds the
    records of the same scenes encoded locally (the shelf's tiny_latents); the training source and the
    precomputed text read it from the bucket."""
    out = f"{bucket}/latents"
    args = ["encode", "--config", "tiny", "--shapes", "3", "--vae", str(tiny_vae), "--out", out]
    assert main([*args, "--videos-per-shard", "2"]) == 0
    names = sorted(p.name for p in workpath(out).iterdir())
    shards = [f"shard-0000{i}.{suffix}" for i in (0, 1) for suffix in ("array_record", "json")]
    assert names == ["empty_prompt.npz", *shards]
    remote, local = LatentShards(out), LatentShards(tiny_latents)
    assert len(remote) == 3
    for i in range(3):
        got, want = remote[i], local[i]
        assert (got["video"], got["caption"]) == (want["video"], want["caption"])
        np.testing.assert_array_equal(got["text"], want["text"])
        np.testing.assert_allclose(
            np.asarray(got["latents"], np.float32), np.asarray(want["latents"], np.float32), atol=2e-3
        )
    tokens, mask = PrecomputedText(out)([local[1]["caption"], ""])
    np.testing.assert_array_equal(np.asarray(tokens[0]), np.asarray(local[1]["text"], np.float32))
    assert not np.asarray(mask[1]).all()  # the empty prompt's states, from the bucket's npz


def test_videos_in_a_bucket_are_a_clear_error():
    """PyAV reads local files: raw videos and a video-to-video input must be local; shards need not."""
    with pytest.raises(ConfigError, match=r"caption file s3://b/c\.jsonl: videos are read from local disk"):
        read_captions("s3://b/c.jsonl", "s3://b/videos")
    with pytest.raises(ConfigError, match=r"input video gs://b/in\.mp4: .* `streamdit encode`"):
        InputVideo("gs://b/in.mp4", load("tiny", num_devices=1))
