"""A sharded trainer shared by every model: the VAE and the StreamDiT train through it.

A :class:`Task` says what to train (model, loss, data, evaluation); the :class:`Trainer` owns the rest:
parameters born sharded on the mesh, one jitted step with donation and gradient accumulation, AdamW,
an EMA, async Orbax checkpoints (params, EMA, optimizer, step, RNG, data iterator, configs) with
resume onto any mesh, a progress bar, TensorBoard scalars and ``metrics.jsonl`` from process 0, a
clean save on SIGTERM/SIGINT, and a stop on the first non-finite loss that leaves the last good
checkpoint intact.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any, Protocol

import flax.struct
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.config import (
    AutoencoderConfig,
    Config,
    ConfigError,
    ModelConfig,
    OptimizerConfig,
    TinyDecoderConfig,
    TrainConfig,
)
from streamdit_jax.model.functional import param_shardings
from streamdit_jax.sharding import batch_devices, batch_mesh_axes, logical_sharding, make_mesh, use_mesh
from streamdit_jax.storage import append_text, workpath
from streamdit_jax.train.optim import learning_rate, make_optimizer

# Metrics shown on the progress line (all go to TensorBoard).
_SHOWN = ("loss", "step_s", "examples_s", "tokens_s", "psnr")
# Checkpoint items beyond checkpoint.PARAMS, checkpoint.EMA and checkpoint.CONFIG.
OPT_STATE, TRAIN, DATA = "opt_state", "train", "data"
RUN_CONFIG = ckpt.RUN_CONFIG
EMA = ckpt.EMA
METRICS_FILE = "metrics.jsonl"  # one JSON line per logged step (train and eval), from process 0


class Task(Protocol):
    """What the trainer trains.

    ``frozen`` is the trainer's frozen pytree (see :class:`Trainer`), handed to every loss and evaluation:
    a task that keeps nothing frozen gets None and ignores it.
    """

    model_config: ModelConfig | AutoencoderConfig | TinyDecoderConfig  # saved with every checkpoint
    # Transformer tokens in one example, for the tokens_s metric; None where tokens mean nothing.
    tokens_per_example: int | None

    def build(self, rngs: nnx.Rngs) -> nnx.Module:
        """A fresh model; its nnx.Param variables are trained, any other state rides along."""

    def loss(
        self, model: nnx.Module, batch: dict[str, jax.Array], key: jax.Array, frozen: Any
    ) -> tuple[jax.Array, dict]:
        """(scalar loss, metrics) of one (micro-)batch."""

    def evaluate(self, model: nnx.Module, batch: dict[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Held-out metrics of one batch (averaged over batches by the trainer)."""

    def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
        """Logical axis names of every batch entry (the first is the batch axis)."""

    def train_batches(self, batch_size: int, seed: int, process: int, processes: int) -> grain.IterDataset:
        """This process's endless stream of training batches of ``batch_size`` examples."""

    def eval_batches(self, batch_size: int, count: int, process: int, processes: int) -> list[dict]:
        """This process's ``count`` fixed held-out batches."""

    def on_save(self, model: nnx.Module) -> None:
        """Updates non-trained state (e.g. latent statistics) before a checkpoint is written."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: nnx.State  # trained (nnx.Param)
    rest: nnx.State  # the model's other state
    ema: nnx.State
    opt_state: Any
    rng: jax.Array  # raw key data
    first_nonfinite: jax.Array  # the first step (1-based) whose loss was not finite, or -1


def ema_decay(decay: float, step: jax.Array) -> jax.Array:
    """The EMA decay at ``step``, warmed up as min(decay, (1 + t) / (10 + t)) so early EMAs are usable."""
    t = step.astype(jnp.float32)
    return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


class Trainer:
    """Trains ``task`` in ``workdir`` on ``mesh``; ``resume`` continues from the newest checkpoint.

    ``initial`` (the model's nnx.Param state, e.g. a teacher's weights) starts a new run from those
    weights instead of a fresh init. ``frozen`` is a pytree of arrays on the mesh (e.g. a teacher's
    parameters) handed to ``task.loss(model, batch, key, frozen)`` and ``task.evaluate(model, batch,
    frozen)`` inside the jitted steps: not trained, not donated, not checkpointed (None for a task that
    has none). ``on_log(step, values)`` is called with every logged set of training metrics (``step_s``
    among them). :meth:`for_stage` builds the trainer of one of a Config's training stages.
    """

    def __init__(
        self,
        task: Task,
        train_cfg: TrainConfig,
        opt_cfg: OptimizerConfig,
        mesh: Mesh,
        rules: Sequence[tuple],
        workdir: str | PathLike,
        *,
        run_config: Config | None = None,
        section: str = "train",
        seed: int = 0,
        resume: bool = False,
        progress: bool = True,
        initial: nnx.State | None = None,
        frozen: Any = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ):
        self._set_up_program(task, train_cfg, opt_cfg, mesh, rules, section, frozen)
        self.initial, self.on_log = initial, on_log
        self.workdir = workpath(workdir)
        self.run_config, self.seed, self.progress = run_config, seed, progress
        self.is_main = jax.process_index() == 0
        self.manager = ckpt.manager(
            self.workdir,
            (ckpt.PARAMS, ckpt.CONFIG, EMA, OPT_STATE, TRAIN, RUN_CONFIG, DATA),
            max_to_keep=train_cfg.keep_checkpoints,
            enable_async_checkpointing=True,
        )
        existing = self.manager.latest_step()
        if existing is not None and not resume:
            raise FileExistsError(
                f"{self.workdir} already holds a checkpoint (step {existing}). Pass --resume to continue it, "
                "or choose another --workdir; nothing is overwritten"
            )
        self.data = iter(task.train_batches(self.local_batch, seed, jax.process_index(), jax.process_count()))
        self.state = self._restore(existing) if existing is not None else self._init()
        self.last_saved = existing
        self._stop_signal: str | None = None

    def _set_up_program(self, task, train_cfg, opt_cfg, mesh, rules, section, frozen) -> None:
        """The optimizer, the shardings and the jitted steps: everything but the work dir, the data and
        the state (nothing is allocated)."""
        self.task, self.cfg, self.opt_cfg, self.frozen = task, train_cfg, opt_cfg, frozen
        self.mesh, self.rules = mesh, tuple(rules)
        self.local_batch = self._check_batch(train_cfg, mesh, self.rules, section)
        self.tx = make_optimizer(opt_cfg, train_cfg.steps)
        self.schedule = learning_rate(opt_cfg, train_cfg.steps)
        self._build_shardings()
        frozen_shardings = jax.tree.map(lambda x: x.sharding, frozen)
        self._train_step = jax.jit(
            self._step,
            in_shardings=(self.state_shardings, self.batch_shardings, frozen_shardings),
            out_shardings=(self.state_shardings, None),
            donate_argnums=0,
        )
        self._eval_step = jax.jit(
            self._evaluate, in_shardings=(self.state_shardings, self.batch_shardings, frozen_shardings)
        )

    @classmethod
    def for_stage(
        cls,
        task: Task,
        cfg: Config,
        stage: str,
        workdir: str | PathLike,
        *,
        mesh: Mesh | None = None,
        run_config: Config | None = None,
        resume: bool = False,
        progress: bool = True,
        initial: nnx.State | None = None,
        frozen: Any = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> Trainer:
        """The trainer of training stage ``stage`` of ``cfg`` (one of ``config.STAGES``: ``teacher``,
        ``vae``, ``decoder``, ``distill``): that stage's train and optimizer sections, ``cfg``'s mesh
        (``mesh`` if one is built already), rules and seed, and ``cfg`` saved as the run config (or
        ``run_config``); the other arguments are the constructor's."""
        sections = cfg.stage(stage)
        return cls(
            task,
            sections.train,
            sections.optimizer,
            make_mesh(cfg.mesh) if mesh is None else mesh,
            cfg.mesh.rules,
            workdir,
            run_config=cfg if run_config is None else run_config,
            section=sections.section,
            seed=cfg.seed,
            resume=resume,
            progress=progress,
            initial=initial,
            frozen=frozen,
            on_log=on_log,
        )

    @classmethod
    def program(
        cls, task: Task, train_cfg: TrainConfig, opt_cfg: OptimizerConfig, mesh: Mesh, rules: Sequence[tuple],
        section: str = "train",
    ) -> Trainer:  # fmt: skip
        """The trainer's program alone (optimizer, shardings, jitted steps) for :meth:`lower_step`: no work
        dir, no data, no state; nothing is allocated (``streamdit plan``)."""
        trainer = cls.__new__(cls)
        trainer._set_up_program(task, train_cfg, opt_cfg, mesh, rules, section, None)
        return trainer

    def abstract_state(self) -> TrainState:
        """The TrainState's shapes, dtypes and shardings, without allocating it."""

        params, rest = self.abstract
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        rng = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
        shapes = TrainState(
            step=scalar, params=params, rest=rest, ema=params, opt_state=self.abstract_opt, rng=rng,
            first_nonfinite=scalar,
        )  # fmt: skip
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, self.state_shardings
        )

    def lower_step(self, batch: Mapping[str, jax.ShapeDtypeStruct]) -> jax.stages.Lowered:
        """The training step lowered on abstract inputs (the global ``batch``'s shapes and dtypes)."""
        shardings = self.batch_shardings
        batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k]) for k, v in batch.items()}
        with use_mesh(self.mesh, self.rules):
            return self._train_step.lower(self.abstract_state(), batch, self.frozen)

    @staticmethod
    def _check_batch(cfg: TrainConfig, mesh: Mesh, rules: Sequence[tuple], section: str) -> int:
        """This process's batch; a ConfigError unless every micro-batch splits over processes and shards."""
        shards, devices = batch_mesh_axes(rules), batch_devices(rules, mesh.shape)
        micro = cfg.batch_size // cfg.grad_accum
        split = max(devices, jax.process_count())
        if micro % split:
            raise ConfigError(
                f"config field '{section}.batch_size': micro-batches of {micro} examples cannot be split "
                f"over the {devices} devices of mesh axes {shards} ({jax.process_count()} processes). Fix: "
                f"use a batch divisible by {split * cfg.grad_accum}, or change mesh.shape"
            )
        return cfg.batch_size // jax.process_count()

    # -- state and shardings ---------------------------------------------------------------------

    def _split(self, model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
        return nnx.split(model, nnx.Param, ...)

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        """The task's model, unplaced: the trainer puts it on the mesh with jit(out_shardings=...)."""
        with nnx.use_eager_sharding(False):
            return self.task.build(rngs)

    def _build_shardings(self) -> None:
        self.graphdef, params, rest = self._split(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))
        self.abstract = (params, rest)
        p_sh = param_shardings(params, self.mesh, self.rules)
        r_sh = param_shardings(rest, self.mesh, self.rules)
        abstract_params = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), params, p_sh
        )
        replicated = NamedSharding(self.mesh, PartitionSpec())
        with use_mesh(self.mesh, self.rules):
            self.abstract_opt = jax.eval_shape(self.tx.init, abstract_params)
        # The optimizer's per-parameter state (AdamW's moments) is sharded like its parameter, the rest
        # (step counts) replicated. (Output shardings of a jitted init would replicate the moments: zeros
        # do not depend on the parameters, so nothing propagates their sharding.)
        like_param = lambda _, sharding: sharding
        opt_sh = optax.tree_map_params(
            self.tx, like_param, self.abstract_opt, p_sh, transform_non_params=lambda _: replicated
        )
        self.state_shardings = TrainState(
            step=replicated,
            params=p_sh,
            rest=r_sh,
            ema=p_sh,
            opt_state=opt_sh,
            rng=replicated,
            first_nonfinite=replicated,
        )
        self.batch_shardings = {
            key: logical_sharding(self.mesh, self.rules, names)
            for key, names in self.task.batch_axes().items()
        }

    def _init(self) -> TrainState:
        def init(seed: jax.Array, initial: nnx.State | None) -> TrainState:
            key = jax.random.key(seed)
            _, params, rest = self._split(self._build(nnx.Rngs(jax.random.fold_in(key, 0))))
            if initial is not None:
                # An explicit copy: the state is donated at every step, the initial weights may live on.
                params = jax.tree.map(lambda new, given: jnp.copy(given).astype(new.dtype), params, initial)
            return TrainState(
                step=jnp.zeros((), jnp.int32),
                params=params,
                rest=rest,
                ema=params,
                opt_state=self.tx.init(params),
                rng=jax.random.key_data(jax.random.fold_in(key, 1)),
                first_nonfinite=jnp.full((), -1, jnp.int32),
            )

        if self.initial is not None:
            want = jax.tree.structure(self.abstract[0])
            if jax.tree.structure(self.initial) != want:
                raise ConfigError(
                    "the initial weights do not have this model's parameters. Fix: start from a checkpoint "
                    "of the same model config"
                )
        with use_mesh(self.mesh, self.rules):
            return jax.jit(init, out_shardings=self.state_shardings)(
                jnp.asarray(self.seed, jnp.uint32), self.initial
            )

    def _model_state(self, params: nnx.State, rest: nnx.State) -> dict:
        """The model's whole state as a plain dict: what the ``params`` and ``ema`` items hold."""
        return nnx.to_pure_dict(nnx.merge_state(params, rest))

    def _from_pure(self, pure: dict) -> tuple[nnx.State, nnx.State]:
        """(params, rest) from a plain dict of the model's state."""
        state = jax.tree.map(lambda a: a, nnx.merge_state(*self.abstract))  # fresh Variables
        nnx.replace_by_pure_dict(state, pure)
        return nnx.split_state(state, nnx.Param, ...)

    def _targets(self) -> dict[str, Any]:
        """Abstract arrays with this mesh's shardings: what a restore reads into."""

        def sharded(tree, shardings):
            return jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
            )

        params, rest = self.abstract
        sh = self.state_shardings
        model = self._model_state(sharded(params, sh.params), sharded(rest, sh.rest))
        train = {
            "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=sh.step),
            "rng": jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=sh.rng),
            "first_nonfinite": jax.ShapeDtypeStruct((), jnp.int32, sharding=sh.first_nonfinite),
        }
        ema = self._model_state(sharded(params, sh.params), sharded(rest, sh.rest))
        opt_state = sharded(self.abstract_opt, sh.opt_state)
        return {ckpt.PARAMS: model, EMA: ema, OPT_STATE: opt_state, TRAIN: train}

    def _restore(self, step: int) -> TrainState:
        saved = self.manager.restore(step, args=ocp.args.Composite(**{ckpt.CONFIG: ocp.args.JsonRestore()}))
        expected = ckpt.config_record(self.task.model_config)
        if saved[ckpt.CONFIG] != json.loads(json.dumps(expected)):
            raise ConfigError(
                f"{self.workdir} holds a checkpoint of another model:\n  saved:   {saved[ckpt.CONFIG]}\n"
                f"  current: {expected}\nResume with the config it was trained with, or use a new --workdir"
            )
        targets = self._targets()
        args = {name: ocp.args.StandardRestore(target) for name, target in targets.items()}
        args[DATA] = grain.checkpoint.CheckpointRestore(self.data)
        restored = self.manager.restore(step, args=ocp.args.Composite(**args))
        params, rest = self._from_pure(restored[ckpt.PARAMS])
        ema, _ = self._from_pure(restored[EMA])
        train = restored[TRAIN]
        return TrainState(
            step=train["step"],
            params=params,
            rest=rest,
            ema=ema,
            opt_state=restored[OPT_STATE],
            rng=train["rng"],
            first_nonfinite=train["first_nonfinite"],
        )

    def save(self, block: bool = False) -> None:
        """Writes a checkpoint of the current step (async unless ``block``); refuses to save a bad state."""
        self._check_finite()
        step = int(self.state.step)
        if step == self.last_saved:
            return
        rest, ema_rest = (self._updated_rest(p) for p in (self.state.params, self.state.ema))
        self.state = self.state.replace(rest=rest)
        items = {
            ckpt.PARAMS: ocp.args.StandardSave(self._model_state(self.state.params, rest)),
            EMA: ocp.args.StandardSave(self._model_state(self.state.ema, ema_rest)),
            OPT_STATE: ocp.args.StandardSave(self.state.opt_state),
            TRAIN: ocp.args.StandardSave(
                {
                    "step": self.state.step,
                    "rng": self.state.rng,
                    "first_nonfinite": self.state.first_nonfinite,
                }
            ),
            ckpt.CONFIG: ocp.args.JsonSave(ckpt.config_record(self.task.model_config)),
            RUN_CONFIG: ocp.args.JsonSave(self.run_config.to_dict() if self.run_config else {}),
            DATA: grain.checkpoint.CheckpointSave(self.data),
        }
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        if block:
            self.manager.wait_until_finished()
        self.last_saved = step

    def _updated_rest(self, params: nnx.State) -> nnx.State:
        """The model's non-trained state as the task sets it before a save, for these weights."""
        model = nnx.merge(self.graphdef, params, self.state.rest)
        self.task.on_save(model)
        return jax.device_put(self._split(model)[2], self.state_shardings.rest)

    def _check_finite(self) -> None:
        bad = int(jax.device_get(self.state.first_nonfinite))
        if bad >= 0:
            self.manager.wait_until_finished()
            kept = (
                f"the last good checkpoint (step {self.last_saved})" if self.last_saved is not None else "no"
            )
            raise NonFiniteLoss(
                f"the loss became non-finite at step {bad}; training stopped. {kept.capitalize()} checkpoint "
                f"in {self.workdir} is intact. Lower the learning rate or check the data, then --resume"
            )

    # -- the jitted steps ------------------------------------------------------------------------

    def _loss(self, params, rest, batch, key, frozen):
        return self.task.loss(nnx.merge(self.graphdef, params, rest), batch, key, frozen)

    def _step(self, state: TrainState, batch: dict, frozen: Any) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        accum = self.cfg.grad_accum
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        if accum == 1:
            (loss, metrics), grads = grad_fn(state.params, state.rest, batch, key, frozen)
        else:
            micro = jax.tree.map(lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]), batch)

            def accumulate(carry, inputs):
                (loss, metrics), grads = grad_fn(state.params, state.rest, inputs[0], inputs[1], frozen)
                return jax.tree.map(jnp.add, carry, (loss, metrics, grads)), None

            zero = jax.eval_shape(
                lambda: grad_fn(state.params, state.rest, jax.tree.map(lambda x: x[0], micro), key, frozen)
            )
            zero = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), (zero[0][0], zero[0][1], zero[1]))
            keys = jax.random.split(key, accum)
            (loss, metrics, grads), _ = jax.lax.scan(accumulate, zero, (micro, keys))
            loss, metrics, grads = jax.tree.map(lambda x: x / accum, (loss, metrics, grads))
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        decay = ema_decay(self.opt_cfg.ema_decay, state.step)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
        grad_norm = optax.global_norm(grads)
        metrics = {**metrics, "loss": loss, "grad_norm": grad_norm, "lr": self.schedule(state.step)}
        # Checked here at every step, on the device (the host looks only when it logs or saves): a
        # non-finite step, and every step after it, leaves the state as it was, so neither the EMA
        # nor any later checkpoint ever holds it.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        healthy = state.first_nonfinite < 0
        first = jnp.where(healthy & ~finite, state.step + 1, state.first_nonfinite)
        stepped = state.replace(step=state.step + 1, params=params, ema=ema, opt_state=opt_state)
        keep = jax.tree.map(lambda new, old: jnp.where(healthy & finite, new, old), stepped, state)
        return keep.replace(first_nonfinite=first), metrics

    def _evaluate(self, state: TrainState, batch: dict, frozen: Any) -> dict:
        return self.task.evaluate(nnx.merge(self.graphdef, state.ema, state.rest), batch, frozen)

    def _global_batch(self, local: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        return {
            key: jax.make_array_from_process_local_data(self.batch_shardings[key], np.asarray(value))
            for key, value in local.items()
        }

    def step(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """One optimizer step on this process's share of a batch; returns its metrics (not fetched)."""
        with use_mesh(self.mesh, self.rules):
            self.state, metrics = self._train_step(self.state, self._global_batch(local_batch), self.frozen)
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics of the EMA weights, averaged over ``eval_batches`` fixed batches."""
        batches = self.task.eval_batches(
            self.local_batch, self.cfg.eval_batches, jax.process_index(), jax.process_count()
        )
        totals: dict[str, float] = {}
        with use_mesh(self.mesh, self.rules):
            for batch in batches:
                metrics = jax.device_get(self._eval_step(self.state, self._global_batch(batch), self.frozen))
                for name, value in metrics.items():
                    totals[name] = totals.get(name, 0.0) + float(value) / len(batches)
        return totals

    # -- the loop --------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signal.Signals(signum).name

    def run(self) -> dict[str, Any]:
        """Trains to ``steps``; returns the last train and eval metrics and how the run ended."""
        writer = self._writer()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        start = int(self.state.step)
        bar = self._bar(start)
        step = start  # counted on the host: reading state.step would wait for every step
        summary: dict[str, Any] = {"start_step": start, "train": {}, "eval": {}}
        last_time, last_step = time.perf_counter(), start
        try:
            with use_mesh(self.mesh, self.rules):
                while step < self.cfg.steps:
                    metrics = self.step(next(self.data))
                    step += 1
                    if step % self.cfg.log_every == 0 or step == self.cfg.steps:
                        self._check_finite()
                        now = time.perf_counter()
                        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                        values["step_s"] = (now - last_time) / max(step - last_step, 1)
                        values["examples_s"] = self.cfg.batch_size / values["step_s"]
                        if self.task.tokens_per_example:
                            values["tokens_s"] = values["examples_s"] * self.task.tokens_per_example
                        last_time, last_step = now, step
                        summary["train"] = values
                        self._log(writer, bar, step, values, "train")
                        if self.on_log is not None:
                            self.on_log(step, values)
                    if step % self.cfg.eval_every == 0 or step == self.cfg.steps:
                        summary["eval"] = self.evaluate()
                        self._log(writer, bar, step, summary["eval"], "eval")
                    if step % self.cfg.checkpoint_every == 0:
                        self.save()
                    if self._stop_signal:
                        self.save(block=True)
                        summary["stopped_by"] = self._stop_signal
                        self._print(
                            f"{self._stop_signal}: saved step {step} to {self.workdir}; resume with --resume"
                        )
                        break
                    if bar is not None:
                        bar.update(1)
            if "stopped_by" not in summary:
                self.save(block=True)
            if not summary["eval"]:  # e.g. resumed at the last step
                summary["eval"] = self.evaluate()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.manager.wait_until_finished()
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        summary["end_step"] = int(self.state.step)
        return summary

    def close(self) -> None:
        """Waits for pending checkpoint writes and releases the checkpoint manager."""
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # whatever happened: a run that raised keeps its saved checkpoints

    def _writer(self):
        if not self.is_main:
            return None
        from tensorboardX import SummaryWriter

        return SummaryWriter(str(self.workdir / "tensorboard"))

    def _bar(self, start: int):
        if not (self.is_main and self.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.steps, initial=start, desc="train", dynamic_ncols=True)

    def _log(self, writer, bar, step: int, values: dict[str, float], prefix: str) -> None:
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"{prefix}/{name}", value, step)
            writer.flush()
            line = json.dumps({"step": step, "split": prefix, **values})
            append_text(self.workdir / METRICS_FILE, line + "\n")
        shown = {f"{prefix}_{k}": f"{v:.4g}" for k, v in values.items() if prefix == "eval" or k in _SHOWN}
        if bar is not None:
            bar.set_postfix(shown)
        else:
            self._print(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))

    def _print(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)
