"""`streamdit demo` end to end on `tiny` (shortened), its resume and its refusal of stale stages."""

import json
import shutil

import imageio.v3 as iio
import pytest

from streamdit_jax import checkpoint
from streamdit_jax.cli import main
from streamdit_jax.data.latents import LatentShards

SHORT = [
    "--config.vae_train.steps=4",
    "--config.vae_train.batch_size=8",
    "--config.vae_train.frames=9",
    "--config.vae_train.crop=(32,32)",
    "--config.vae_train.eval_batches=1",
    "--config.train.steps=4",
    "--config.train.batch_size=8",
    "--config.train.checkpoint_every=2",
    "--config.distill.steps=2",
    "--config.distill.teacher_micro_steps=2",
    "--config.distill.eval_batches=1",
    "--config.distill.checkpoint_every=2",
    "--config.demo.clips=20",
    "--config.demo.prompts=2",
    "--config.demo.seconds=6",
]


def demo(workdir, *extra):
    return main(["demo", "--config", "tiny", "--workdir", str(workdir), *SHORT, *extra])


@pytest.mark.slow
def test_tiny_demo_writes_everything_and_resumes(tmp_path, capsys):
    assert demo(tmp_path) == 0
    out = capsys.readouterr().out
    for stage in ("vae", "latents", "teacher", "student", "eval"):
        assert f"] {stage}: " in out
    assert str(tmp_path / "report.png") in out or "report.png" in out
    assert checkpoint.latest_step(tmp_path / "vae") == 4
    assert checkpoint.latest_step(tmp_path / "teacher") == 4
    assert checkpoint.latest_step(tmp_path / "student") == 2
    assert checkpoint.restore_run_config(tmp_path / "student").scheme == (0, 4, 2, 1)  # one pass a chunk
    assert len(LatentShards(tmp_path / "latents")) == 20
    frames = iio.imread(tmp_path / "stream.mp4", plugin="pyav")
    assert frames.shape == (48, 64, 64, 3)  # 6 s at 8 fps
    report = json.loads((tmp_path / "eval.json").read_text())
    assert len(report["streams"]) == 2 and report["seconds"] == 6
    first = next(iter(report["streams"].values()))
    assert len(first["prompts"]) == 4  # demo.segments prompts: three changes
    assert report["truth_summary"]["colour_adherence"] >= 0.99  # the true videos of the same schedules
    for name in ("eval.md", "report.png", "adherence.png", "seams.png", "strips.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(list((tmp_path / "streams").glob("*.mp4"))) == 2

    # A re-run skips every finished stage.
    assert demo(tmp_path) == 0
    assert capsys.readouterr().out.count("), skipped") == 5

    # More teacher steps: the earlier stages are kept and the teacher resumes; the student, distilled from
    # the old teacher, is refused (nothing touched) until its folder is removed, then distilled afresh.
    assert demo(tmp_path, "--config.train.steps=6") != 0
    captured = capsys.readouterr()
    assert captured.out.count("), skipped") == 2 and "(step 6)" in captured.out
    assert "student was made with a different config (train.steps: 4 -> 6)" in captured.err
    assert checkpoint.latest_step(tmp_path / "teacher") == 6
    assert checkpoint.latest_step(tmp_path / "student") == 2
    shutil.rmtree(tmp_path / "student")
    assert demo(tmp_path, "--config.train.steps=6") == 0
    assert capsys.readouterr().out.count("), skipped") == 3
    assert json.loads((tmp_path / "stages" / "eval.json").read_text())["finished"]

    # A stage made from other inputs is refused, naming the field; nothing is touched.
    assert demo(tmp_path, "--config.train.steps=6", "--config.vae_train.object_weight=3") != 0
    err = capsys.readouterr().err
    assert "vae_train.object_weight: 0.0 -> 3.0" in err and "new --workdir" in err
    assert checkpoint.latest_step(tmp_path / "vae") == 4
