"""Building the distillation run: the teacher restored onto the mesh, the student starting from it."""

from __future__ import annotations

from pathlib import Path

from jax.sharding import Mesh

from streamdit_jax.config import Config
from streamdit_jax.distill.task import DistillTask, student_config
from streamdit_jax.model import restore_params
from streamdit_jax.train import Trainer


def distill_trainer(
    cfg: Config,
    teacher: str | Path,
    workdir: str | Path,
    mesh: Mesh,
    *,
    resume: bool,
    progress: bool = True,
    encoders: tuple | None = None,
) -> Trainer:
    """The Trainer that distils the ``teacher`` checkpoint (EMA weights) into a student in ``workdir``:
    the student starts from the teacher's weights (or resumes its own checkpoint), the teacher rides
    along as the trainer's frozen state, and the student's checkpoints carry :func:`student_config`.
    ``encoders`` (VAE, text encoder) for on-the-fly data default to ``on_the_fly_encoders(cfg)``."""
    from streamdit_jax import checkpoint as ckpt
    from streamdit_jax.data.training import on_the_fly_encoders
    from streamdit_jax.stream import StreamModel

    StreamModel.load_config(teacher, cfg)  # a ConfigError unless the teacher is cfg.model
    overrides = ckpt.shape_free(cfg.model)
    _, graphdef, params = restore_params(teacher, mesh, cfg.mesh.rules, model_overrides=overrides)
    task = DistillTask(cfg, graphdef, *(encoders or on_the_fly_encoders(cfg)))
    return Trainer.for_stage(
        task,
        cfg,
        "distill",
        workdir,
        mesh=mesh,
        run_config=student_config(cfg),
        resume=resume,
        progress=progress,
        initial=params,
        frozen=task.frozen(params, mesh),
    )
