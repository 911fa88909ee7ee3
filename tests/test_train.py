"""Training the StreamDiT (buffered flow matching on tiny) through the shared trainer and the CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.config import ConfigError, MeshConfig, load
from streamdit_jax.data import DataError
from streamdit_jax.data.training import on_the_fly_encoders
from streamdit_jax.sharding import make_mesh
from streamdit_jax.train import Trainer
from streamdit_jax.train.flow_task import FlowTask

ROOT = Path(__file__).resolve().parents[1]
ENV = {"JAX_PLATFORMS": "cpu", "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
ENV |= {k: v for k, v in os.environ.items() if k.startswith("JAX_") and "CACHE" in k}  # conftest's cache


@pytest.fixture(scope="module")
def encoders():
    return on_the_fly_encoders(load("tiny", num_devices=1))


@pytest.fixture(scope="module")
def vae_dir(encoders, tmp_path_factory):
    """The untrained tiny VAE with its measured latent statistics, saved once: subprocess runs restore it
    (fast) instead of measuring the statistics again in every process."""
    from flax import nnx

    path = tmp_path_factory.mktemp("vae") / "ckpt"
    ckpt.save_params(path, encoders[0].cfg, nnx.state(encoders[0]))
    return path


def _trainer(workdir, encoders, mesh=(1, 1, 1, 1), overrides=(), resume=False):
    size = int(np.prod(mesh))
    cfg = load("tiny", [f"mesh.shape={mesh}".replace(" ", ""), *overrides], num_devices=size)
    return Trainer(
        FlowTask(cfg, *encoders), cfg.train, cfg.optimizer, make_mesh(cfg.mesh, jax.devices()[:size]),
        cfg.mesh.rules, workdir, run_config=cfg, seed=cfg.seed, resume=resume, progress=False,
    )  # fmt: skip


def test_one_step_is_the_same_on_every_mesh(tmp_path, encoders):
    """Loss and updated parameters of one step on (8,1,1,1), (2,2,1,2), (1,2,2,2) equal one device's.
    Tolerances: loss 1e-5 relative; parameters 1e-5 absolute (AdamW's first step moves every weight by
    about the learning rate, 1e-3 here, so this is 1% of a step)."""
    results = {}
    for mesh in [(1, 1, 1, 1), (8, 1, 1, 1), (2, 2, 1, 2), (1, 2, 2, 2)]:
        trainer = _trainer(tmp_path / "x".join(map(str, mesh)), encoders, mesh, ["optimizer.warmup_steps=0"])
        metrics = jax.device_get(trainer.step(next(trainer.data)))
        results[mesh] = (metrics["loss"], jax.device_get(trainer.state.params))
        trainer.close()
    loss, params = results.pop((1, 1, 1, 1))
    for mesh, (other_loss, other_params) in results.items():
        assert other_loss == pytest.approx(loss, rel=1e-5), mesh
        moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), params, other_params))
        assert max(moved) < 1e-5, (mesh, max(moved))


@pytest.mark.slow
def test_three_hundred_steps_on_shapes_halve_the_held_out_loss(tmp_path, encoders):
    # On 160 scenes encoded once (as `streamdit demo` trains): encoding every batch on the fly would
    # cost most of the test's time. The last 16 are held out.
    from streamdit_jax.data.encode import encode_shapes

    encode_shapes(load("tiny", num_devices=1), 160, tmp_path / "latents", *encoders, progress=False)
    overrides = [f"data.path={tmp_path / 'latents'}", "data.heldout=16"]
    trainer = _trainer(tmp_path / "run", encoders, overrides=["data.source=latents", *overrides,
                       "train.steps=300", "train.eval_every=300"])  # fmt: skip
    first = trainer.evaluate()
    summary = trainer.run()
    trainer.close()
    assert summary["eval"]["loss"] < 0.5 * first["loss"], (first, summary["eval"])


def _train_cli(workdir, *overrides, devices=1, extra_env=None, **popen):
    args = [
        "streamdit", "train", "--config", "tiny", "--workdir", str(workdir), "--config.train.log_every=1",
        "--config.train.eval_batches=1", "--config.train.eval_every=1000", *overrides,
    ]  # fmt: skip
    env = {**ENV, "JAX_NUM_CPU_DEVICES": str(devices), **(extra_env or {})}
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen
    )


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
    data = json.loads(next((Path(workdir) / str(step) / "data").glob("*")).read_text())
    return restored, data


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path, vae_dir):
    """2N steps straight == N steps, SIGKILL, --resume, N more: parameters, optimizer, EMA, RNG and the
    data iterator (hence every batch) are identical."""
    n, steps = (
        4,
        ["--config.train.steps=8", "--config.train.checkpoint_every=4", f"--config.data.vae={vae_dir}"],
    )
    _finish(_train_cli(tmp_path / "straight", *steps))

    killed = _train_cli(tmp_path / "killed", *steps)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / str(n)).is_dir():  # Orbax renames a step folder once it is complete
        assert killed.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert ckpt.latest_step(tmp_path / "killed") == n  # killed before its second checkpoint
    out = _finish(_train_cli(tmp_path / "killed", *steps, "--resume"))
    assert "step 8" in out

    (want, want_data), (got, got_data) = (_checkpoint(tmp_path / d, 8) for d in ("straight", "killed"))
    assert got_data == want_data
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_job_matches_one_process(tmp_path, vae_dir):
    """launch/local.sh runs 2 processes x 2 CPU devices (gloo collectives); the losses equal one process
    with 4 devices and the same global batch (tolerance 1e-5 relative)."""
    steps = ["--config.train.steps=3", "--config.train.checkpoint_every=3", f"--config.data.vae={vae_dir}"]
    single = _train_cli(tmp_path / "one", *steps, devices=4)
    launcher = subprocess.run(
        ["bash", "launch/local.sh", "2", "2", "train", "--config", "tiny", "--workdir", str(tmp_path / "two"),
         "--config.train.log_every=1", "--config.train.eval_batches=1", *steps],
        env={**ENV, "STREAMDIT_PORT": str(_free_port())}, cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert launcher.returncode == 0, launcher.stdout[-3000:] + launcher.stderr[-3000:]
    _finish(single)

    def losses(workdir):
        lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        return [m["loss"] for m in lines if m["split"] == "train"]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 3
    np.testing.assert_allclose(two, one, rtol=1e-5)
    assert ckpt.latest_step(tmp_path / "two") == 3


def test_bad_data_and_foreign_work_dirs_are_clear_errors(tmp_path, encoders):
    with pytest.raises(ConfigError, match=r"'data.path'.*needs a path"):
        load("tiny", ["data.source=latents"], num_devices=1)
    cfg = load("tiny", ["data.source=latents", f"data.path={tmp_path / 'nowhere'}"], num_devices=1)
    with pytest.raises(FileNotFoundError, match=r"'data.path'.*does not exist"):
        FlowTask(cfg)

    # A shard written for another buffer length.
    from array_record.python.array_record_module import ArrayRecordWriter

    from streamdit_jax.data.latents import EMPTY_PROMPT, pack

    shards = tmp_path / "shards"
    shards.mkdir()
    writer = ArrayRecordWriter(str(shards / "shard-00000.array_record"), "group_size:1")
    for _ in range(3):
        writer.write(pack({
            "latents": np.zeros((5, 8, 8, 16), np.float16), "text": np.zeros((40, 384), np.float16),
            "text_mask": np.ones(40, bool), "caption": "x", "video": "v", "clip": 0,
        }))  # fmt: skip
    writer.close()
    np.savez(shards / EMPTY_PROMPT, text=np.zeros((40, 384), np.float16), text_mask=np.ones(40, bool))
    cfg = load("tiny", ["data.source=latents", f"data.path={shards}"], num_devices=1)
    with pytest.raises(DataError, match=r"latents of shape \(5, 8, 8, 16\).*expects \(8, 8, 8, 16\)"):
        FlowTask(cfg)

    # Resuming a work dir trained with another preset (its model differs).
    trainer = _trainer(tmp_path / "run", encoders, overrides=["train.steps=1"])
    trainer.run()
    trainer.close()
    other = load("tiny", ["mesh.shape=(1,1,1,1)", "model.width=32"], num_devices=1)
    with pytest.raises(ConfigError, match="checkpoint of another model"):
        Trainer(FlowTask(other, *encoders), other.train, other.optimizer,
                make_mesh(MeshConfig(shape=(1, 1, 1, 1)), jax.devices()[:1]), other.mesh.rules,
                tmp_path / "run", resume=True, progress=False)  # fmt: skip


class NaNTask(FlowTask):
    """Training batches as FlowTask's, but the fourth one's latents are NaN."""

    def train_batches(self, *args):
        count = [0]

        def poison(batch):
            count[0] += 1
            return {**batch, "latents": batch["latents"] * np.nan} if count[0] == 4 else batch

        return super().train_batches(*args).map(poison)


def test_a_nan_batch_stops_the_run_and_the_last_checkpoint_restores(tmp_path, encoders):
    from streamdit_jax.train import NonFiniteLoss

    cfg = load("tiny", ["mesh.shape=(1,1,1,1)", "train.steps=6", "train.checkpoint_every=2"], num_devices=1)
    trainer = Trainer(
        NaNTask(cfg, *encoders), cfg.train, cfg.optimizer, make_mesh(cfg.mesh, jax.devices()[:1]),
        cfg.mesh.rules, tmp_path, progress=False,
    )  # fmt: skip
    with pytest.raises(NonFiniteLoss, match=r"non-finite at step 4.*last good checkpoint \(step 2\)"):
        trainer.run()
    trainer.close()
    assert ckpt.latest_step(tmp_path) == 2
    resumed = _trainer(tmp_path, encoders, overrides=["train.steps=6"], resume=True)
    assert int(resumed.state.step) == 2
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(resumed.state.params))
    resumed.close()
