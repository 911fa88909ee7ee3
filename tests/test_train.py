"""Training the StreamDiT (buffered flow matching on tiny) through the shared trainer and the CLI.

The runs train on the shelf's `tiny_latents` (shapes scenes encoded once per session), so that no test
pays for on-the-fly VAE encoding or for loading the text encoder in its subprocesses."""

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from helpers import subprocess_env, upload_folder, write_latent_shards

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, MeshConfig, load
from streamdit_jax.data import DataError
from streamdit_jax.sharding import make_mesh
from streamdit_jax.storage import is_url, workpath
from streamdit_jax.train import Trainer
from streamdit_jax.train.flow_task import FlowTask

ROOT = Path(__file__).resolve().parents[1]


# No warm-up: the first step moves every weight. The 300-step run and the one-device reference of the
# mesh test share this schedule, hence one compiled step.
SCHEDULE = ["optimizer.warmup_steps=0", "train.steps=300"]


def _on(latents, heldout=16):
    return ["data.source=latents", f"data.path={latents}", f"data.heldout={heldout}"]


def _trainer(workdir, mesh=(1, 1, 1, 1), overrides=(), resume=False):
    size = int(np.prod(mesh))
    cfg = load("tiny", [f"mesh.shape={mesh}".replace(" ", ""), *overrides], num_devices=size)
    return Trainer(
        FlowTask(cfg), cfg.train, cfg.optimizer, make_mesh(cfg.mesh, jax.devices()[:size]),
        cfg.mesh.rules, workdir, run_config=cfg, seed=cfg.seed, resume=resume, progress=False,
    )  # fmt: skip


@pytest.mark.slow
def test_one_step_is_the_same_on_every_mesh(tmp_path, tiny_latents):
    """Loss and updated parameters of one step on (8,1,1,1), (2,2,1,2), (1,2,2,2) equal one device's.
    Tolerances: loss 1e-5 relative; parameters 1e-5 absolute (AdamW's first step moves every weight by
    about the learning rate, 1e-3 here, so this is 1% of a step)."""
    results = {}
    for mesh in [(1, 1, 1, 1), (8, 1, 1, 1), (2, 2, 1, 2), (1, 2, 2, 2)]:
        overrides = [*SCHEDULE, *_on(tiny_latents)]
        trainer = _trainer(tmp_path / "x".join(map(str, mesh)), mesh, overrides)
        metrics = jax.device_get(trainer.step(next(trainer.data)))
        results[mesh] = (metrics["loss"], jax.device_get(trainer.state.params))
        trainer.close()
    loss, params = results.pop((1, 1, 1, 1))
    for mesh, (other_loss, other_params) in results.items():
        assert other_loss == pytest.approx(loss, rel=1e-5), mesh
        moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), params, other_params))
        assert max(moved) < 1e-5, (mesh, max(moved))


@pytest.mark.slow
def test_three_hundred_steps_on_shapes_halve_the_held_out_loss(tmp_path, tiny_latents):
    # On the shelf's 160 scenes encoded once (as `streamdit demo` trains); the last 16 are held out.
    overrides = [*SCHEDULE, *_on(tiny_latents), "train.eval_every=300"]
    trainer = _trainer(tmp_path / "run", overrides=overrides)
    first = trainer.evaluate()
    summary = trainer.run()
    trainer.close()
    assert summary["eval"]["loss"] < 0.5 * first["loss"], (first, summary["eval"])


def _train_cli(workdir, *overrides, devices=1, **popen):
    args = [
        "streamdit", "train", "--config", "tiny", "--workdir", str(workdir), "--config.train.log_every=1",
        "--config.train.eval_batches=1", "--config.train.eval_every=1000", *overrides,
    ]  # fmt: skip
    env = subprocess_env(JAX_NUM_CPU_DEVICES=str(devices))
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
    )


def _cli(overrides):
    return [f"--config.{o}" for o in overrides]


def _finish(process, timeout=600) -> str:
    out, _ = process.communicate(timeout=timeout)
    text = out.decode()
    assert process.returncode == 0, text[-3000:]
    return text


def _checkpoint(workdir, step):
    items = ("params", "ema", "opt_state", "train")
    with ckpt.manager(workdir, (*items, "data")) as manager:
        args = {i: ckpt.ocp.args.StandardRestore() for i in items}
        restored = manager.restore(step, args=ckpt.ocp.args.Composite(**args))
        restored = {i: restored[i] for i in items}
    data = json.loads(next((workpath(workdir) / str(step) / "data").glob("process_*.json")).read_text())
    return restored, data


RESUME_RUN = ["--config.train.steps=8", "--config.train.checkpoint_every=4"]


@pytest.fixture
def straight_run(shelf, tiny_latents):
    """8 steps of tiny in one go, the reference of the resume tests (built once per session)."""

    def build(folder):
        _finish(_train_cli(folder / "run", *RESUME_RUN, *_cli(_on(tiny_latents))))

    return shelf.get("straight_run", build) / "run"


def _kill_after_first_checkpoint(workdir, *args, n=4):
    """Starts the run, SIGKILLs it once step ``n`` is committed (a local step folder is renamed into
    place; a bucket's gets its commit_success.txt last), and checks that only step ``n`` survived."""
    killed = _train_cli(workdir, *args)
    committed = workpath(workdir) / str(n) / ("commit_success.txt" if is_url(workdir) else "")
    deadline = time.time() + 300
    while not committed.exists():
        assert killed.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert ckpt.latest_step(workdir) == n  # killed before its second checkpoint


def _assert_same_run(want_dir, got_dir, step=8):
    (want, want_data), (got, got_data) = (_checkpoint(d, step) for d in (want_dir, got_dir))
    assert got_data == want_data
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path, tiny_latents, straight_run):
    """2N steps straight == N steps, SIGKILL, --resume, N more: parameters, optimizer, EMA, RNG and the
    data iterator (hence every batch) are identical."""
    args = [*RESUME_RUN, *_cli(_on(tiny_latents))]
    _kill_after_first_checkpoint(tmp_path / "killed", *args)
    assert "step 8" in _finish(_train_cli(tmp_path / "killed", *args, "--resume"))
    _assert_same_run(straight_run, tmp_path / "killed")


@pytest.mark.slow
def test_a_run_in_a_bucket_resumes_exactly_and_streams(tiny_latents, tiny_vae, straight_run, bucket):
    """Everything in a bucket of the local S3 server (latents, VAE, work dir, the stream's mp4): the run
    SIGKILLed after its first checkpoint and resumed equals the local straight run bit for bit, its
    metrics.jsonl and TensorBoard events are in the bucket, and it streams from there."""
    latents = upload_folder(tiny_latents, f"{bucket}/latents")
    vae = upload_folder(tiny_vae, f"{bucket}/vae")
    run = f"{bucket}/runs/tiny"
    args = [*RESUME_RUN, *_cli(_on(latents))]
    _kill_after_first_checkpoint(run, *args)
    assert "step 8" in _finish(_train_cli(run, *args, "--resume"))
    _assert_same_run(straight_run, run)
    steps = [json.loads(line)["step"] for line in (workpath(run) / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 1 and steps[-1] == 8  # the lines from before the kill kept, the resume's appended
    assert any(p.name.startswith("events.out.tfevents") for p in (workpath(run) / "tensorboard").iterdir())
    assert not (ROOT / "s3:").exists()  # no local folder named after the URL

    out = f"{bucket}/streams/clip.mp4"
    stream = ["stream", "--checkpoint", run, "--vae", vae, "--prompt", "a red circle", "--seconds", "1"]
    assert main([*stream, "--out", out]) == 0
    assert iio.improps(workpath(out).read_bytes(), extension=".mp4", plugin="pyav").n_images == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_job_matches_one_process(tmp_path, tiny_latents):
    """launch/local.sh runs 2 processes x 2 CPU devices (gloo collectives); the losses equal one process
    with 4 devices (this one) and the same global batch (tolerance 1e-5 relative)."""
    steps = ["train.steps=3", "train.checkpoint_every=3", *_on(tiny_latents)]
    launcher = subprocess.run(
        ["bash", "launch/local.sh", "2", "2", "train", "--config", "tiny", "--workdir", str(tmp_path / "two"),
         "--config.train.log_every=1", "--config.train.eval_batches=1", *_cli(steps)],
        env=subprocess_env(STREAMDIT_PORT=str(_free_port())), cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert launcher.returncode == 0, launcher.stdout[-3000:] + launcher.stderr[-3000:]
    # The reference: this process, on 4 of its devices, with the same global batch.
    quiet = ["train.log_every=1", "train.eval_batches=1", "train.eval_every=1000"]
    with _trainer(tmp_path / "one", (4, 1, 1, 1), [*steps, *quiet]) as single:
        single.run()

    def losses(workdir):
        lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        return [m["loss"] for m in lines if m["split"] == "train"]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 3
    np.testing.assert_allclose(two, one, rtol=1e-5)
    assert ckpt.latest_step(tmp_path / "two") == 3


def test_bad_data_and_foreign_work_dirs_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"'data.path'.*needs a path"):
        load("tiny", ["data.source=latents"], num_devices=1)
    cfg = load("tiny", ["data.source=latents", f"data.path={tmp_path / 'nowhere'}"], num_devices=1)
    with pytest.raises(FileNotFoundError, match=r"'data.path'.*does not exist"):
        FlowTask(cfg)

    # A shard written for another buffer length.
    write_latent_shards(tmp_path / "short", [("v", 3)], frames=5)
    cfg = load("tiny", ["data.source=latents", f"data.path={tmp_path / 'short'}"], num_devices=1)
    with pytest.raises(DataError, match=r"latents of shape \(5, 8, 8, 16\).*expects \(8, 8, 8, 16\)"):
        FlowTask(cfg)

    # Resuming a work dir that holds a checkpoint of another model (the trainer reads its config first).
    from streamdit_jax.model import init_params

    tiny = load("tiny", num_devices=1)
    ckpt.save_params(tmp_path / "run", tiny.model, init_params(tiny.model, jax.random.key(0))[1])
    write_latent_shards(tmp_path / "shards", [("v0", 1), ("v1", 1)])
    other = ["mesh.shape=(1,1,1,1)", "model.width=32", *_on(tmp_path / "shards", heldout=1)]
    other = load("tiny", other, num_devices=1)
    with pytest.raises(ConfigError, match="checkpoint of another model"):
        Trainer(FlowTask(other), other.train, other.optimizer,
                make_mesh(MeshConfig(shape=(1, 1, 1, 1)), jax.devices()[:1]), other.mesh.rules,
                tmp_path / "run", resume=True, progress=False)  # fmt: skip
