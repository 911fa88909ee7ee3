"""``streamdit plan``: the training step's per-device memory from the compiled step, checked against the
peak ``bench train`` measures, and its searches (largest batch, smallest mesh that fits)."""

import json
import subprocess

import jax
import pytest
from helpers import subprocess_env

from streamdit_jax.cli import main
from streamdit_jax.config import load
from streamdit_jax.train import plan
from streamdit_jax.train.plan import StepMemory


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_the_plan_is_within_15_percent_of_the_measured_peak(preset, tmp_path):
    """On one CPU device (where the measured peak is one device's: the resident train state plus the
    steps' rise of the process's peak RSS), plan's total is within 15% of `bench train`'s."""
    out = tmp_path / "bench.json"
    bench = ["streamdit", "bench", "train", "--config", preset, "--steps", "2", "--warmup", "1"]
    subprocess.run(
        [*bench, "--json", str(out)], env=subprocess_env(JAX_NUM_CPU_DEVICES="1"), check=True,
        capture_output=True, timeout=600,
    )  # fmt: skip
    bench = json.loads(out.read_text())
    assert bench["peak_memory_source"].startswith("per device: the resident train state")
    measured = bench["peak_gib_per_device"][0] * plan.GIB
    memory = plan.step_memory(plan.with_mesh(load(preset, num_devices=1), (1, 1, 1, 1)), jax.devices()[:1])
    assert memory.total == pytest.approx(measured, rel=0.15), (memory, measured)
    # The state's share is exact: parameters, EMA and AdamW's two moments (float32), plus the model's state.
    assert memory.optimizer == pytest.approx(2 * memory.ema, rel=0.01)


@pytest.mark.slow
def test_a_mesh_that_cannot_fit_is_reported_with_the_smallest_that_can(tmp_path, capsys):
    """With a budget between the (1,2,1,1) and (1,1,1,1) steps, the single device does not fit and the
    smallest mesh that fits is (1,2,1,1). (The largest-batch search is tested on fake memory below:
    each of its compiles would cost as much as this test.)"""
    cfg = load("tiny", num_devices=8)
    one, two = (
        plan.step_memory(plan.with_mesh(cfg, s), jax.devices()[: s[1]]) for s in ((1, 1, 1, 1), (1, 2, 1, 1))
    )
    assert two.params < one.params and two.total < one.total  # fsdp shards the state and the batch
    assert two.optimizer == pytest.approx(2 * two.ema, rel=0.01)  # AdamW's moments sharded like the weights
    budget_gib = (one.total + two.total) / 2 / plan.GIB
    args = ["plan", "--config", "tiny", "--mesh", "1,1,1,1", "--device-memory", f"{budget_gib:.6f}"]
    assert main([*args, "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "smallest mesh that fits batch 8: (1, 2, 1, 1) on 2 devices" in out
    report = json.loads((tmp_path / "plan.json").read_text())
    assert not report["fits"] and report["step"]["total"] == one.total
    assert report["smallest_mesh"]["total"] == two.total


def _fake_memory(total_of):
    def step_memory(cfg, devices=None):
        b, shape = cfg.train.batch_size, tuple(cfg.mesh.shape)
        return StepMemory(shape, b, 0, 0, 0, 0, int(total_of(b, shape)), 0, 0)

    return step_memory


def test_the_largest_batch_search_lands_on_the_last_batch_within_budget(monkeypatch):
    """Linear growth is found from two compiles and checked at its edge; growth faster or slower than
    linear is bisected to the same edge."""
    cfg = plan.with_mesh(load("tiny", num_devices=8), (2, 1, 1, 1))  # batches of 2k
    cases = [
        (lambda b, _: 100 + 10 * b, 345, 24),  # 100 + 240 <= 345 < 100 + 260
        (lambda b, _: 100 + 2 * b + 0.05 * b * b, 1000, 114),  # 977.8 fits, 116: 1004.8 does not
        (lambda b, _: 100 + 50 * b**0.5, 1000, 324),  # sqrt(324) = 18: exactly 1000
    ]
    for total_of, budget, want in cases:
        monkeypatch.setattr(plan, "step_memory", _fake_memory(total_of))
        assert plan.largest_batch(cfg, budget).batch_size == want, (budget, want)
    assert plan.largest_batch(cfg, 103) is None  # not even a batch of 2 (104.2)


def test_the_mesh_search_grows_fsdp_while_the_batch_splits(monkeypatch):
    cfg = plan.with_mesh(load("tiny", num_devices=8), (1, 1, 1, 1))
    monkeypatch.setattr(plan, "step_memory", _fake_memory(lambda b, shape: 1000 // shape[1]))
    assert plan.smallest_fitting_mesh(cfg, 300).mesh == (1, 4, 1, 1)
    assert plan.smallest_fitting_mesh(cfg, 100) is None  # 8 devices give 125


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mesh", "1,2"], "--mesh '1,2': give four sizes"),
        (["--device-memory", "0"], "--device-memory 0.0: give the memory of one device in GiB"),
        (["--devices", "64"], "--devices 64: only 8 cpu devices are present"),
    ],
)
def test_bad_plan_arguments_are_clear_errors(args, message, capsys):
    assert main(["plan", "--config", "tiny", *args]) == 2
    assert message in capsys.readouterr().err
