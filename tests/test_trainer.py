"""The shared trainer on a toy task: learning, resume after SIGTERM, mesh changes, NaN stops, accumulation."""

import dataclasses
import os
import signal

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.config import ConfigError, MeshConfig, ModelConfig, OptimizerConfig, TrainConfig
from streamdit_jax.sharding import DEFAULT_RULES, make_mesh
from streamdit_jax.train import NonFiniteLoss, Trainer

TRUE_W = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)


class Count(nnx.Variable):
    """Non-trained state: how many checkpoints the model has been through."""


class Toy(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        init = nnx.with_partitioning(nnx.initializers.normal(1.0), ("embed", "mlp"))
        self.w = nnx.Param(init(rngs.params(), (8, 4)))
        self.saves = Count(jnp.zeros((), jnp.int32))


class ToyTask:
    model_config = ModelConfig()
    tokens_per_example = None

    def __init__(self, nan_at_batch: int | None = None):
        self.nan_at_batch = nan_at_batch

    def build(self, rngs):
        return Toy(rngs)

    def loss(self, model, batch, key, frozen):
        del key
        loss = jnp.mean((batch["x"] @ model.w[...] - batch["y"]) ** 2)
        return loss, {"mse": loss}

    def evaluate(self, model, batch, frozen):
        return {"mse": jnp.mean((batch["x"] @ model.w[...] - batch["y"]) ** 2)}

    def batch_axes(self):
        return {"x": ("batch", None), "y": ("batch", None)}

    def _example(self, i):
        x = np.random.default_rng(i).standard_normal(8).astype(np.float32)
        y = x @ TRUE_W
        return {"x": x, "y": y * np.nan if i == self.nan_at_batch else y}

    def train_batches(self, batch_size, seed, process, processes):
        def make(i):
            return {
                k: np.stack([self._example(i * batch_size + j)[k] for j in range(batch_size)]) for k in "xy"
            }

        # Batch i holds examples [i*B, (i+1)*B); nan_at_batch marks the first example of a batch.
        self.nan_at_batch = None if self.nan_at_batch is None else self.nan_at_batch * batch_size
        return grain.MapDataset.range(10**6).map(make).to_iter_dataset()

    def eval_batches(self, batch_size, count, process, processes):
        return [
            {
                k: np.stack([self._example(10**7 + c * batch_size + j)[k] for j in range(batch_size)])
                for k in "xy"
            }
            for c in range(count)
        ]

    def on_save(self, model):
        model.saves[...] = model.saves[...] + 1


def _trainer(workdir, task=None, steps=6, mesh=(1, 1, 1, 1), resume=False, **train):
    fields = dict(steps=steps, batch_size=4, checkpoint_every=3, log_every=1, eval_every=3) | train
    cfg = TrainConfig(**fields)
    opt = OptimizerConfig(learning_rate=0.3, warmup_steps=1, weight_decay=0.0, ema_decay=0.9)
    devices = jax.devices()[: int(np.prod(mesh))]
    return Trainer(
        task or ToyTask(), cfg, opt, make_mesh(MeshConfig(shape=mesh), devices), DEFAULT_RULES, workdir,
        resume=resume, progress=False,
    )  # fmt: skip


def test_training_learns_and_writes_checkpoints_and_summaries(tmp_path):
    trainer = _trainer(tmp_path, steps=30)
    first = trainer.evaluate()["mse"]
    summary = trainer.run()
    assert summary["end_step"] == 30 and summary["eval"]["mse"] < 0.1 * first
    assert ckpt.latest_step(tmp_path) == 30
    assert any((tmp_path / "tensorboard").iterdir())
    # The params item is the model's whole state: a params-only restore reads it, on_save ran.
    restored = ckpt.manager(tmp_path).restore(
        30, args=ckpt.ocp.args.Composite(params=ckpt.ocp.args.StandardRestore())
    )["params"]
    assert restored["saves"] >= 1


def test_sigterm_saves_and_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a")
    straight.run()

    interrupted = _trainer(tmp_path / "b")
    step, calls = interrupted._train_step, []

    def step_then_terminate_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # as a cluster's preemption would
        return step(*args)

    interrupted._train_step = step_then_terminate_on_the_fourth
    summary = interrupted.run()
    assert summary["stopped_by"] == "SIGTERM" and summary["end_step"] == 4
    assert ckpt.latest_step(tmp_path / "b") == 4
    resumed = _trainer(tmp_path / "b", resume=True)
    assert int(resumed.state.step) == 4
    resumed.run()
    # Identical learning state (the interrupted run saved once more, so only its save counter differs).
    for name in ("step", "params", "ema", "opt_state", "rng", "first_nonfinite"):
        want, got = (jax.tree.leaves(getattr(t.state, name)) for t in (straight, resumed))
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resume_onto_another_mesh(tmp_path):
    straight = _trainer(tmp_path / "a", steps=6)
    straight.run()
    first = _trainer(tmp_path / "b", steps=6, mesh=(4, 1, 1, 1))
    first.cfg = TrainConfig(
        steps=3, batch_size=4, checkpoint_every=3, log_every=1, eval_every=3
    )  # stop at 3 of 6
    first.run()
    second = _trainer(tmp_path / "b", steps=6, mesh=(1, 2, 1, 4), resume=True)
    assert second.state.params["w"][...].sharding.spec == jax.sharding.PartitionSpec("fsdp", "model")
    second.run()
    np.testing.assert_allclose(
        np.asarray(second.state.params["w"][...]),
        np.asarray(straight.state.params["w"][...]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, ToyTask(nan_at_batch=4), steps=10)
    with pytest.raises(NonFiniteLoss, match=r"non-finite at step 5.*last good checkpoint \(step 3\)"):
        trainer.run()
    assert ckpt.latest_step(tmp_path) == 3
    resumed = _trainer(tmp_path, steps=10, resume=True)
    assert np.isfinite(np.asarray(resumed.state.params["w"][...])).all()


def test_a_nan_at_step_k_leaves_the_ema_and_checkpoints_of_step_k_minus_1(tmp_path):
    """The host looks at the loss only when it logs (here every 100 steps) or saves; the jitted step
    itself refuses the NaN step 5 and every step after it, so the EMA, the parameters and the optimizer
    state stay those of step 4, and the save at step 6 stops the run instead of writing."""
    quiet = dict(log_every=100, eval_every=100, checkpoint_every=2)
    clean = _trainer(tmp_path / "clean", steps=8, **quiet)
    clean.cfg = dataclasses.replace(clean.cfg, steps=4)  # the same schedule, stopped after step 4
    clean.run()
    poisoned = _trainer(tmp_path / "nan", ToyTask(nan_at_batch=4), steps=8, **quiet)
    with pytest.raises(NonFiniteLoss, match=r"non-finite at step 5.*last good checkpoint \(step 4\)"):
        poisoned.run()
    assert int(poisoned.state.step) == 4 and ckpt.latest_step(tmp_path / "nan") == 4
    for name in ("params", "ema", "opt_state"):
        want, got = (jax.tree.leaves(getattr(t.state, name)) for t in (clean, poisoned))
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    saved = ckpt.manager(tmp_path / "nan", ("ema",)).restore(
        4, args=ckpt.ocp.args.Composite(ema=ckpt.ocp.args.StandardRestore())
    )["ema"]
    np.testing.assert_array_equal(saved["w"], np.asarray(clean.state.ema["w"][...]))


def test_gradient_accumulation_equals_one_full_batch(tmp_path):
    whole = _trainer(tmp_path / "a", steps=2)
    whole.run()
    accumulated = _trainer(tmp_path / "b", steps=2, grad_accum=2)
    accumulated.run()
    np.testing.assert_allclose(
        np.asarray(accumulated.state.params["w"][...]),
        np.asarray(whole.state.params["w"][...]),
        rtol=1e-6,
        atol=1e-7,
    )


def test_a_batch_the_mesh_cannot_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"'train\.batch_size'.*8 devices"):
        _trainer(tmp_path, mesh=(8, 1, 1, 1))


def test_existing_checkpoints_are_never_overwritten(tmp_path):
    _trainer(tmp_path, steps=3).run()
    with pytest.raises(FileExistsError, match="--resume"):
        _trainer(tmp_path, steps=3)


def test_a_half_written_checkpoint_is_ignored_on_resume(tmp_path):
    _trainer(tmp_path, steps=3).run()
    # What a save killed mid-write leaves: Orbax's temporary folder, never renamed to "6".
    partial = tmp_path / "6.orbax-checkpoint-tmp-1764000000000000"
    (partial / "params").mkdir(parents=True)
    (partial / "params" / "junk").write_bytes(b"\0" * 64)
    resumed = _trainer(tmp_path, steps=6, resume=True)
    assert int(resumed.state.step) == 3 and ckpt.latest_step(tmp_path) == 3
    resumed.run()
    assert ckpt.latest_step(tmp_path) == 6
