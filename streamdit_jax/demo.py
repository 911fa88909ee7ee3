"""``streamdit demo``: the whole system end to end on the shapes world, in stages that resume.

1. ``autoencoder``: the preset's autoencoder into ``DIR/autoencoder``: trained (``vae_train``), or for
   the ``patch`` kind (no weights) its latent statistics measured.
2. ``latents``: encode ``demo.clips`` shapes training scenes with it into ``DIR/latents``.
3. ``teacher``: train the StreamDiT (buffered flow matching under the preset's partition mixture) on
   those latents into ``DIR/teacher``.
4. ``student``: distil the teacher segment-wise (``distill``) into ``DIR/student``, which takes one
   unguided forward pass per emitted chunk.
5. ``eval``: stream, with the student, ``demo.prompts`` held-out prompt schedules (``demo.segments``
   prompts each, so ``demo.segments - 1`` prompt changes) for ``demo.seconds`` each, score them
   (``streamdit_jax.eval``) and write ``DIR/eval.json``, ``DIR/eval.md``, the plots, every stream under
   ``DIR/streams``, the first one as ``DIR/stream.mp4`` (and as ``DIR/preview.gif``, captioned with its
   prompts), and ``DIR/report.png``.

``DIR/stages/NAME.json`` records the config fields a stage read (its own and its predecessors') and
whether it finished. A re-run skips a finished stage with the same inputs, resumes an unfinished one
(the trainers from their newest checkpoint, the encoder from its next shard) or a trainer whose step
count was raised, and refuses to build on an output made from other inputs (re-running the eval is
always allowed: it only writes reports).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from etils import epath

from streamdit_jax.config import Config, ConfigError
from streamdit_jax.storage import workpath, write_with


@dataclasses.dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes everything under its work directory."""

    root: epath.Path  # a local folder or a bucket URL (storage.workpath)

    @property
    def autoencoder(self) -> epath.Path:
        return self.root / "autoencoder"

    @property
    def latents(self) -> epath.Path:
        return self.root / "latents"

    @property
    def teacher(self) -> epath.Path:
        return self.root / "teacher"

    @property
    def student(self) -> epath.Path:
        return self.root / "student"

    @property
    def streams(self) -> epath.Path:
        return self.root / "streams"

    @property
    def stream(self) -> epath.Path:
        return self.root / "stream.mp4"

    @property
    def eval(self) -> epath.Path:
        return self.root / "eval.json"

    @property
    def report(self) -> epath.Path:
        return self.root / "report.png"

    @property
    def preview(self) -> epath.Path:
        return self.root / "preview.gif"


def teacher_config(cfg: Config, paths: DemoPaths) -> Config:
    """The preset with its data pointed at the demo's latents (and autoencoder, which the stream decodes
    with)."""
    heldout = max(1, min(cfg.data.heldout, cfg.demo.clips // 16))
    data = dataclasses.replace(
        cfg.data, source="latents", path=str(paths.latents), vae=str(paths.autoencoder), heldout=heldout
    )
    return dataclasses.replace(cfg, data=data)


def _train(task, cfg: Config, stage: str, workdir: Path, progress: bool, on_log=None) -> dict:
    """Trains ``task`` as training stage ``stage`` of ``cfg`` in ``workdir``, resuming from its newest
    checkpoint if it has one; ``on_log`` goes to the Trainer."""
    from streamdit_jax.train import Trainer

    trainer = Trainer.for_stage(task, cfg, stage, workdir, resume=True, progress=progress, on_log=on_log)
    with trainer:
        return trainer.run()


def _stage_autoencoder(cfg: Config, paths: DemoPaths, progress: bool, forecast: Forecast) -> str:
    from streamdit_jax.autoencoder.training import prepare_autoencoder

    on_log = forecast.hook("autoencoder", "autoencoder_step")
    summary = prepare_autoencoder(cfg, paths.autoencoder, resume=True, progress=progress, on_log=on_log)
    if "eval" not in summary:
        return f"{cfg.autoencoder.kind} autoencoder: nothing to train, latent statistics measured"
    return f"held-out PSNR {summary['eval']['psnr']:.2f} dB (step {summary['end_step']})"


def _stage_latents(cfg: Config, paths: DemoPaths, progress: bool, forecast: Forecast) -> str:
    from streamdit_jax.autoencoder import restore_autoencoder
    from streamdit_jax.data.encode import encode_shapes
    from streamdit_jax.text import build_encoder

    autoencoder = restore_autoencoder(paths.autoencoder)
    report = encode_shapes(
        cfg, cfg.demo.clips, paths.latents, autoencoder, build_encoder(cfg.text), progress=progress
    )
    return f"{report.clips} clips in {report.shards_written} shards ({report.shards_skipped} done before)"


def _stage_teacher(cfg: Config, paths: DemoPaths, progress: bool, forecast: Forecast) -> str:
    from streamdit_jax.train.flow_task import FlowTask

    on_log = forecast.hook("teacher", "teacher_step")
    summary = _train(FlowTask(cfg), cfg, "teacher", paths.teacher, progress, on_log)
    return f"held-out loss {summary['eval']['loss']:.4f} (step {summary['end_step']})"


def _stage_student(cfg: Config, paths: DemoPaths, progress: bool, forecast: Forecast) -> str:
    from streamdit_jax.distill import distill_trainer
    from streamdit_jax.sharding import make_mesh

    trainer = distill_trainer(cfg, paths.teacher, paths.student, make_mesh(cfg.mesh), resume=True,
                              progress=progress)  # fmt: skip
    with trainer:
        summary = trainer.run()
    return f"held-out distillation loss {summary['eval']['loss']:.4f} (step {summary['end_step']})"


def _stage_eval(cfg: Config, paths: DemoPaths, progress: bool, forecast: Forecast) -> str:
    from streamdit_jax.eval.run import heldout_prompts, run_eval
    from streamdit_jax.stream import StreamModel

    model = StreamModel.restore(paths.student)
    prompts = heldout_prompts(cfg.demo.prompts, cfg.demo.seconds, segments=cfg.demo.segments)
    report = run_eval(
        model, prompts, cfg.demo.seconds, paths.root, video_dir=paths.streams, progress=progress
    )
    paths.stream.write_bytes((paths.streams / f"{prompts[0].name}.mp4").read_bytes())
    write_report(paths, report, prompts[0].name)
    write_preview(paths, report, prompts[0].name, cfg.data.fps)
    s = report["summary"]
    return (
        f"colour {s['colour_adherence']:.0%}, shape {s['shape_adherence']:.0%}, motion "
        f"{s['motion_adherence']:.0%}, drift {s['drift_adherence_points']:.1f} points, seam ratio "
        f"{s['seam_ratio']:.2f}; start-up {s['startup_seconds']:.2f} s, then "
        f"{1000 * s['seconds_per_chunk']:.0f} ms a chunk"
    )


@dataclasses.dataclass(frozen=True)
class Costs:
    """Seconds of one unit of each stage's work: an autoencoder training step, an encoded clip, a teacher
    step, a student step, a second of held-out stream evaluated."""

    autoencoder_step: float
    latents_clip: float
    teacher_step: float
    student_step: float
    eval_stream_second: float

    def of(self, cfg: Config, stage: str) -> float:
        """Seconds of ``stage`` of the demo of ``cfg`` at these costs."""
        units = {
            "autoencoder": cfg.vae_train.steps * self.autoencoder_step if _trains_autoencoder(cfg) else 0.0,
            "latents": cfg.demo.clips * self.latents_clip,
            "teacher": cfg.train.steps * self.teacher_step,
            "student": cfg.distill.steps * self.student_step,
            "eval": cfg.demo.prompts * cfg.demo.seconds * self.eval_stream_second,
        }
        return units[stage]


# The committed `small` demo's costs on this workplace's 2-core CPU, 2026-12-07, a slow day (each stage's
# wall time over its units, compiling and held-out evaluation included: 262 s, 72 s, 556 s, 223 s and 34 s,
# 19.1 min in all, with short diagnostics on the same cores), from run t8 of docs/evaluation.md: a machine's
# pace relative to these, read off the first stage's step time, scales them into the forecast the demo
# prints. Another recipe's first stage runs at another pace, so its forecast is only a rough guide.
REFERENCE_COSTS = Costs(
    autoencoder_step=0.327,
    latents_clip=0.161,
    teacher_step=0.174,
    student_step=1.48,
    eval_stream_second=0.142,
)


def _trains_autoencoder(cfg: Config) -> bool:
    from streamdit_jax.autoencoder.registry import autoencoder_class

    return autoencoder_class(cfg.autoencoder.kind).trainable


class Forecast:
    """The demo's expected duration, printed once a training stage has shown this machine's pace: from
    its step time over the second logging interval (the first includes compiling), against
    ``REFERENCE_COSTS``."""

    def __init__(self, cfg: Config, log: Callable[[str], None], started: float):
        self.cfg, self.log, self.started = cfg, log, started
        self.remaining: list[str] = [stage.name for stage in STAGES]
        self.said: set[str] = set()

    def reference(self) -> str:
        total = sum(REFERENCE_COSTS.of(self.cfg, stage) for stage in self.remaining)
        return f"about {total / 60:.0f} min on the reference 2-core CPU"

    def stage_done(self, stage: str) -> None:
        if stage in self.remaining:
            self.remaining.remove(stage)

    def hook(self, stage: str, unit: str) -> Callable[[int, dict[str, float]], None]:
        """The ``on_log`` of a stage's trainer: prints the forecast at its second log."""
        logs = []

        def on_log(step: int, values: dict[str, float]) -> None:
            logs.append(step)
            if len(logs) != 2 or stage in self.said:
                return
            self.said.add(stage)
            pace = values["step_s"] / getattr(REFERENCE_COSTS, unit)
            left = {name: pace * REFERENCE_COSTS.of(self.cfg, name) for name in self.remaining}
            steps = {"autoencoder": self.cfg.vae_train.steps, "teacher": self.cfg.train.steps}.get(stage)
            if steps:  # the part of this stage already done
                left[stage] *= max(0.0, 1.0 - step / steps)
            elapsed = time.perf_counter() - self.started
            total = elapsed + sum(left.values())
            parts = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in left.items())
            self.log(
                f"  forecast: {values['step_s']:.3f} s per {stage} step ({pace:.2f}x the reference pace): "
                f"the demo should take about {total / 60:.0f} min in all, "
                f"{sum(left.values()) / 60:.0f} min from now ({parts} min)"
            )

        return on_log


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    what: str
    run: Callable[[Config, DemoPaths, bool, Forecast], str]
    reads: tuple[
        str, ...
    ]  # the config fields (dotted prefixes) its output depends on, beyond earlier stages'
    steps: str = ""  # a trainer's step count: raising it resumes the stage instead of refusing


STAGES = (
    Stage(
        "autoencoder",
        "train the autoencoder (or measure its latent statistics)",
        _stage_autoencoder,
        ("seed", "data.resolution", "data.fps", "autoencoder", "vae_train", "vae_optimizer"),
        "vae_train.steps",
    ),
    Stage(
        "latents",
        "encode shapes scenes into latents",
        _stage_latents,
        ("demo.clips", "buffer.frames", "data.clip_latents", "text"),
    ),
    Stage(
        "teacher",
        "train the StreamDiT",
        _stage_teacher,
        ("model", "buffer", "train", "optimizer", "data.prompt_dropout", "data.heldout"),
        "train.steps",
    ),
    Stage(
        "student",
        "distil it: one unguided forward pass per chunk",
        _stage_student,
        ("distill", "distill_optimizer"),
        "distill.steps",
    ),
    Stage("eval", "stream held-out prompt schedules with the student and score them", _stage_eval, ("demo",)),
)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): list(tree) if isinstance(tree, tuple) else tree}


def _inputs(cfg: Config, upto: int) -> dict[str, Any]:
    """The config fields stages 0 .. ``upto`` read, flattened."""
    prefixes = [p for stage in STAGES[: upto + 1] for p in stage.reads]
    flat = _flat(cfg.to_dict())
    return {k: v for k, v in flat.items() if any(k == p or k.startswith(p + ".") for p in prefixes)}


def _recorded_inputs(record: dict, inputs: dict) -> dict:
    """A stage record's inputs; a field added to the config after the record was written (absent from
    it) counts as recorded at its default, so an older run is not redone for a new field left alone."""
    defaults = _flat(Config().to_dict())
    added = {k: defaults[k] for k in inputs.keys() - record["inputs"].keys() if k in defaults}
    return {**added, **record["inputs"]}


def _check_record(stage: Stage, record: dict, inputs: dict, paths: DemoPaths) -> None:
    """Refuses to build on a stage output made from other inputs (only a trainer's steps may change)."""
    before = _recorded_inputs(record, inputs)
    changed = sorted(k for k in inputs.keys() | before.keys() if inputs.get(k) != before.get(k))
    if not changed or stage.name == "eval" or changed == [stage.steps]:
        return
    shown = ", ".join(f"{k}: {before.get(k)!r} -> {inputs.get(k)!r}" for k in changed[:6])
    raise ConfigError(
        f"{paths.root / stage.name} was made with a different config ({shown}). Nothing was changed. Fix: "
        f"run the demo in a new --workdir, or delete {paths.root / stage.name} (and the outputs of the "
        "stages after it) to redo it"
    )


def run_demo(
    cfg: Config, workdir: str | Path, progress: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Runs every stage that is not finished with the same inputs; returns {stage: outcome, seconds} and
    writes it with the config to ``DIR/demo.json``."""
    paths = DemoPaths(workpath(workdir))
    (paths.root / "stages").mkdir(parents=True, exist_ok=True)
    cfg = teacher_config(cfg, paths)
    timings: dict[str, Any] = {}
    forecast = Forecast(cfg, log, time.perf_counter())
    for number, stage in enumerate(STAGES):
        tag = f"[{number + 1}/{len(STAGES)}] {stage.name}"
        inputs = _inputs(cfg, number)
        record_path = paths.root / "stages" / f"{stage.name}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else None
        if stage.name != "eval" and not (paths.root / stage.name).exists():
            record = None  # its output was removed: the stage runs afresh
        if record is not None:
            _check_record(stage, record, inputs, paths)
            if record["finished"] and _recorded_inputs(record, inputs) == inputs:
                log(f"{tag}: finished before ({record['outcome']}), skipped")
                timings[stage.name] = {"outcome": "skipped", "seconds": 0.0}
                forecast.stage_done(stage.name)
                continue
        if not timings or all(t["outcome"] == "skipped" for t in timings.values()):  # the first that runs
            log(f"expected: {forecast.reference()}; a forecast for this machine follows its first steps")
        log(f"{tag}: {stage.what}")
        record_path.write_text(json.dumps({"inputs": inputs, "finished": False}))
        start = time.perf_counter()
        outcome = stage.run(cfg, paths, progress, forecast)
        forecast.stage_done(stage.name)
        seconds = round(time.perf_counter() - start, 1)
        record_path.write_text(json.dumps({"inputs": inputs, "finished": True, "outcome": outcome}))
        timings[stage.name] = {"outcome": outcome, "seconds": seconds}
        log(f"{tag}: {outcome} ({seconds:.0f} s)")
    (paths.root / "demo.json").write_text(json.dumps({"stages": timings, "config": cfg.to_dict()}, indent=1))
    return timings


def _curve(path: Path, split: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` in the ``split`` ("train" or "eval") lines of a trainer's metrics.jsonl."""
    steps, values = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("split") == split and key in record:
                steps.append(record["step"])
                values.append(record[key])
    return steps, values


def write_report(paths: DemoPaths, report: dict, first: str) -> None:
    """``report.png``: the first stream's frames per prompt (over its true video's), training curves,
    colour adherence per segment and the summary against the targets of docs/evaluation.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from streamdit_jax.eval.run import plot_colour_adherence

    rows, prompts = _frame_rows(paths, first), report["streams"][first]["prompts"]
    shown = _shown_frames(prompts, len(rows[0][1]))
    fig, n, width = plt.figure(figsize=(12, 8 + 1.5 * (len(rows) - 1))), len(rows), max(len(shown), 2)
    grid = fig.add_gridspec(n + 2, width, height_ratios=(*([0.9] * n), 1.0, 1.1))
    _draw_frames(fig, grid, rows, shown, prompts)
    half = width // 2
    _draw_autoencoder_curve(fig.add_subplot(grid[n, :half]), paths, report["autoencoder"])
    _draw_streamdit_curves(fig.add_subplot(grid[n, half:]), paths)
    plot_colour_adherence(fig.add_subplot(grid[n + 1, :half]), report["streams"])
    _draw_targets(fig.add_subplot(grid[n + 1, half:]), report)
    fig.suptitle(
        f"streamdit demo: {len(report['streams'])} held-out streams of {report['seconds']:.0f} s by the "
        "student (one forward pass per chunk)"
    )
    fig.tight_layout()
    write_with(paths.report, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def _frame_rows(paths: DemoPaths, first: str) -> list[tuple[str, np.ndarray]]:
    """(label, frames) of the first stream, and of its true video through the autoencoder and as it is
    where they were written."""
    import imageio.v3 as iio

    read = lambda path: np.asarray(iio.imread(path.read_bytes(), extension=".mp4", plugin="pyav"))
    truths = (("true video through the autoencoder", paths.streams / f"{first}.autoencoder.mp4"),
              ("true video", paths.streams / f"{first}.truth.mp4"))  # fmt: skip
    return [("the demo", read(paths.stream))] + [(label, read(p)) for label, p in truths if p.exists()]


def _shown_frames(prompts: list[dict], frames: int) -> list[int]:
    """The middle frame of each prompt's segment."""
    starts = [p["from_frame"] for p in prompts] + [frames]
    return [min(frames - 1, (a + b) // 2) for a, b in itertools.pairwise(starts)]


def _draw_frames(fig, grid, rows: list[tuple[str, np.ndarray]], shown: list[int], prompts: list) -> None:
    """A row of frames per video (labelled), a column per prompt (titled with it on the first row)."""
    for r, (label, video) in enumerate(rows):
        for i, (frame, prompt) in enumerate(zip(shown, prompts, strict=True)):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(video[min(frame, len(video) - 1)])
            ax.set_title(f"frame {frame}\n{_wrap(prompt['prompt'])}" if r == 0 else "", fontsize=6)
            if i == 0:
                ax.set_ylabel(_wrap(label, 18), fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])


def _draw_autoencoder_curve(ax, paths: DemoPaths, kind: str) -> None:
    ax.plot(*_curve(paths.autoencoder / "metrics.jsonl", "eval", "psnr"), marker=".")
    ax.set(xlabel="autoencoder step", ylabel="held-out PSNR (dB)", title=f"{kind} autoencoder")


def _draw_streamdit_curves(ax, paths: DemoPaths) -> None:
    """The teacher's train and held-out loss, and the student's held-out distillation loss."""
    for split, label in (("train", "train loss"), ("eval", "held-out loss")):
        ax.plot(
            *_curve(paths.teacher / "metrics.jsonl", split, "loss"), marker=".", label=f"teacher: {label}"
        )
    ax.plot(*_curve(paths.student / "metrics.jsonl", "eval", "loss"), marker=".",
            label="student: held-out distillation loss")  # fmt: skip
    ax.set(xlabel="step", title="StreamDiT: flow matching, then distillation", yscale="log")
    ax.legend(fontsize=7)


def _draw_targets(ax, report: dict) -> None:
    """The metrics with a ``label`` in ``eval.metrics.METRICS``: the demo's, the true videos' through the
    autoencoder and as they are, and the target."""
    from streamdit_jax.eval.metrics import METRICS

    ax.axis("off")
    columns = (report["summary"], report.get("autoencoder_summary") or {}, report["truth_summary"] or {})
    reported = [m for m in METRICS if m.label]
    rows = [(m.label, *(m.cell(c.get(m.key), "report") for c in columns), m.target) for m in reported]
    labels = ("metric", "demo", "true videos through\nthe autoencoder", "true videos", "target")
    table = ax.table(cellText=rows, colLabels=labels, loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)


def write_preview(
    paths: DemoPaths, report: dict, first: str, fps: int, scale: int = 2, every: int = 2
) -> None:
    """``preview.gif``: the first stream at ``scale``x size, every ``every``-th frame (played at the
    stream's speed), under a caption band with the prompt in effect."""
    import imageio.v3 as iio
    from PIL import Image, ImageDraw

    frames = np.asarray(iio.imread(paths.stream.read_bytes(), extension=".mp4", plugin="pyav"))
    prompts = report["streams"][first]["prompts"]
    height, width = frames.shape[1] * scale, frames.shape[2] * scale
    band = 40
    images = []
    for t in range(0, len(frames), every):
        prompt = [p["prompt"] for p in prompts if p["from_frame"] <= t][-1]
        image = Image.new("RGB", (width, height + band), (255, 255, 255))
        image.paste(Image.fromarray(frames[t]).resize((width, height), Image.NEAREST), (0, band))
        text = "\n".join(_wrap(prompt, width // 6).splitlines()[:3])
        ImageDraw.Draw(image).multiline_text((2, 1), text, fill=(0, 0, 0), spacing=1)
        images.append(image.quantize(colors=64, dither=Image.Dither.NONE))
    duration = round(1000 * every / fps)
    write_with(
        paths.preview,
        lambda f: images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
        ),
    )


def _wrap(text: str, width: int = 40) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:3])
