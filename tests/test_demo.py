"""`streamdit demo` end to end on `tiny` (shortened): the shelf's `tiny_demo` run, its outputs, and on a
copy of it the re-run that skips every stage, the resumed teacher and the refusal of stale stages."""

import json
import shutil

import imageio.v3 as iio
import pytest
from helpers import TINY_DEMO

from streamdit_jax import checkpoint
from streamdit_jax.cli import main
from streamdit_jax.data.latents import LatentShards

pytestmark = pytest.mark.slow  # the shelf's tiny demo: about a minute on 2 cores, built once


def test_tiny_demo_writes_everything(tiny_demo):
    out = (tiny_demo.parent / "demo.log").read_text()
    for stage in ("autoencoder", "latents", "teacher", "student", "eval"):
        assert f"] {stage}: " in out
    assert "report.png" in out and "expected: about" in out  # the demo says how long it should take
    assert checkpoint.latest_step(tiny_demo / "autoencoder") == 4
    assert checkpoint.latest_step(tiny_demo / "teacher") == 4
    assert checkpoint.latest_step(tiny_demo / "student") == 2
    assert checkpoint.restore_run_config(tiny_demo / "student").scheme == (0, 4, 2, 1)  # one pass a chunk
    assert len(LatentShards(tiny_demo / "latents")) == 20
    frames = iio.imread(tiny_demo / "stream.mp4", plugin="pyav")
    assert frames.shape == (48, 64, 64, 3)  # 6 s at 8 fps
    report = json.loads((tiny_demo / "eval.json").read_text())
    assert len(report["streams"]) == 2 and report["seconds"] == 6
    first = next(iter(report["streams"].values()))
    assert len(first["prompts"]) == 4  # demo.segments prompts: three changes
    assert report["truth_summary"]["colour_adherence"] >= 0.99  # the true videos of the same schedules
    # ... and the same true videos through the run's own autoencoder: the ceilings of its latent space
    assert report["autoencoder"] == "vae" and set(report["autoencoder_summary"]) == set(report["summary"])
    assert "through the autoencoder" in (tiny_demo / "eval.md").read_text()
    for name in ("eval.md", "report.png", "adherence.png", "seams.png", "strips.png"):
        assert (tiny_demo / name).stat().st_size > 0
    for kind in ("", ".autoencoder", ".truth"):  # each stream, its true video encoded and decoded, as is
        assert len(list((tiny_demo / "streams").glob(f"heldout-*[0-9]{kind}.mp4"))) == 2
    preview = iio.imread(tiny_demo / "preview.gif", index=None)
    assert len(preview) == 24 and preview.shape[1:3] == (128 + 40, 128)  # every other frame, 2x, captioned
    assert first["startup_seconds"] > 0 and report["summary"]["startup_forward_passes"] > 0


def test_the_demo_skips_resumes_and_refuses_stale_stages(tiny_demo, tmp_path, capsys):
    work = tmp_path / "run"
    shutil.copytree(tiny_demo, work)

    def demo(*extra):
        return main(["demo", "--workdir", str(work), *TINY_DEMO, *extra])

    # A re-run skips every finished stage, also one recorded before a config field existed (the field is
    # taken at its default), but not one whose record holds another value for it.
    record = work / "stages" / "teacher.json"
    saved = json.loads(record.read_text())
    del saved["inputs"]["buffer.level_density"]
    record.write_text(json.dumps(saved))
    assert demo() == 0
    assert capsys.readouterr().out.count("), skipped") == 5

    # More teacher steps: the earlier stages are kept and the teacher resumes; the student, distilled from
    # the old teacher, is refused (nothing touched) until its folder is removed, then distilled afresh.
    assert demo("--config.train.steps=6") != 0
    captured = capsys.readouterr()
    assert captured.out.count("), skipped") == 2 and "(step 6)" in captured.out
    assert "student was made with a different config (train.steps: 4 -> 6)" in captured.err
    assert checkpoint.latest_step(work / "teacher") == 6
    assert checkpoint.latest_step(work / "student") == 2
    shutil.rmtree(work / "student")
    assert demo("--config.train.steps=6") == 0
    assert capsys.readouterr().out.count("), skipped") == 3
    assert json.loads((work / "stages" / "eval.json").read_text())["finished"]

    # A stage made from other inputs is refused, naming the field; nothing is touched.
    assert demo("--config.train.steps=6", "--config.buffer.level_density=shifted") != 0
    assert "buffer.level_density: 'uniform' -> 'shifted'" in capsys.readouterr().err
    assert demo("--config.train.steps=6", "--config.vae_train.object_weight=3") != 0
    err = capsys.readouterr().err
    assert "vae_train.object_weight: 0.0 -> 3.0" in err and "new --workdir" in err
    assert checkpoint.latest_step(work / "autoencoder") == 4


@pytest.mark.parametrize("slower", [1.0, 2.0])
def test_the_forecast_scales_the_reference_costs_by_the_first_stage_pace(slower):
    """At the second log of the first training stage the demo prints its expected duration: the reference
    machine's stage costs scaled by this machine's pace (its step time over the reference's), the part
    of the stage already done left out."""
    from streamdit_jax.config import load
    from streamdit_jax.demo import REFERENCE_COSTS, STAGES, Forecast

    cfg = load("small", num_devices=1)
    said = []
    forecast = Forecast(cfg, said.append, started=0.0)
    reference = sum(REFERENCE_COSTS.of(cfg, stage.name) for stage in STAGES)
    assert f"about {reference / 60:.0f} min" in forecast.reference()
    hook = forecast.hook("autoencoder", "autoencoder_step")
    step = REFERENCE_COSTS.autoencoder_step * slower
    hook(cfg.vae_train.log_every, {"step_s": step})
    assert not said  # the first log includes compiling: no forecast from it
    done = 2 * cfg.vae_train.log_every
    hook(done, {"step_s": step})
    left = slower * (reference - REFERENCE_COSTS.of(cfg, "autoencoder") * done / cfg.vae_train.steps)
    assert len(said) == 1 and f"({slower:.2f}x the reference pace)" in said[0]
    assert f"{left / 60:.0f} min from now" in said[0]
    hook(3 * cfg.vae_train.log_every, {"step_s": step})
    assert len(said) == 1  # once a stage
