"""The benchmark harness: analytic FLOPs against XLA, and every JSON field of each bench on `tiny`."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest

from streamdit_jax.bench import bench_rollout, forward_flops, rollout_step_flops, table_rows, train_step_flops
from streamdit_jax.bench.common import with_resolution
from streamdit_jax.bench.train import bench_train
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.convert import wan_hf_config, wan_model_config
from streamdit_jax.flow import Scheme
from streamdit_jax.model import apply, init_params


def _xla_flops(cfg, batch):
    graphdef, params = init_params(cfg.model, jax.random.key(0))
    b, grid, length = batch, cfg.latent_grid, cfg.text.max_length
    args = (
        jnp.zeros((b, *grid, cfg.model.latent_channels)),
        jnp.zeros((b, grid[0])),
        jnp.zeros((b, length, cfg.model.text_width)),
        jnp.ones((b, length), bool),
    )
    cost = jax.jit(lambda p, *a: apply(graphdef, p, *a)).lower(params, *args).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


@pytest.mark.parametrize("batch", [1, 3])
def test_analytic_forward_flops_match_xla_cost_analysis(batch):
    # XLA's cost analysis counts a loop body once: tiny's two layers (unshifted, shifted) are one step
    # of the layer scan, so its count covers the whole model here.
    cfg = load("tiny", num_devices=1)
    analytic = forward_flops(cfg.model, cfg.latent_grid, cfg.text.max_length, batch)
    xla = _xla_flops(cfg, batch)
    assert abs(analytic / xla - 1) < 0.10, (analytic, xla)


def test_flops_scale_with_what_they_count():
    cfg = load("tiny", num_devices=1)
    one = forward_flops(cfg.model, cfg.latent_grid, cfg.text.max_length)
    deeper = dataclasses.replace(cfg.model, num_layers=4)
    per_block = forward_flops(deeper, cfg.latent_grid, cfg.text.max_length) - one
    assert 0 < per_block < one  # two more blocks cost less than the whole two-block model
    assert rollout_step_flops(cfg, Scheme(0, 4, 2, 3), guidance=2.0) == 6 * one  # s = 3, doubled by CFG
    assert rollout_step_flops(cfg, Scheme(0, 4, 2, 1), guidance=1.0) == one
    assert train_step_flops(cfg) == 3 * cfg.train.batch_size * one
    full = dataclasses.replace(cfg.model, window=None)  # whole-grid windows: more attention work
    assert forward_flops(full, cfg.latent_grid, cfg.text.max_length) > one


def test_wan_config_round_trip():
    cfg = load("small", num_devices=1).model
    assert wan_model_config(wan_hf_config(cfg)) == dataclasses.replace(cfg, window=None)


@pytest.mark.slow
def test_rollout_bench_json_has_every_field(tmp_path, capsys):
    out = tmp_path / "rollout.json"
    args = ["bench", "rollout", "--config", "tiny", "--steps", "4", "--warmup", "1", "--json", str(out)]
    assert main([*args, "--resolution", "64x128", "--cfg", "2"]) == 0
    result = json.loads(out.read_text())
    cfg = with_resolution(load("tiny"), "64x128")
    assert result["resolution"] == [64, 128] and result["latent_grid"] == [8, 8, 16]
    assert result["device"].startswith("CPU (") and result["platform"] == "cpu"
    assert result["flops_per_step"] == rollout_step_flops(cfg, Scheme(*cfg.scheme), guidance=2.0)
    assert result["forward_passes_per_step"] == 2 * cfg.rollout.micro_steps  # guided: a doubled batch
    assert result["peak_gib"] > 0 and result["peak_flops"] > 0 and result["cold_first_frame_s"] > 0
    assert set(result["modes"]) == {"latents", "decoded"}
    for mode in result["modes"].values():
        step = mode["step_ms"]
        assert (
            step["count"] == 4 and step["min"] <= step["p10"] <= step["median"] <= step["p90"] <= step["max"]
        )
        assert mode["video_fps"] == pytest.approx(result["video_frames_per_step"] / (step["median"] / 1000))
        assert mode["mfu"] == pytest.approx(
            result["flops_per_step"] / (step["median"] / 1000) / result["peak_flops"]
        )
        assert 0 < mode["mfu"] < 1 and mode["first_frame_s"] > 0
        assert mode["traces"] == 2  # start and step traced once each: no retrace while streaming
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2 and all("`streamdit bench" in row for row in rows)


@pytest.mark.slow
def test_train_bench_json_on_eight_devices():
    cfg = load("tiny")  # mesh (-1, 1, 1, 1): all eight CPU devices on the data axis
    result = bench_train(cfg, steps=2, warmup=1)
    assert result["mesh"]["data"] == 8 and len(result["peak_gib_per_device"]) >= 1
    median = result["step_ms"]["median"] / 1000
    tokens = cfg.train.batch_size * 8 * 4 * 4  # tiny's token grid (8, 4, 4)
    assert result["tokens_per_s"] == pytest.approx(tokens / median)
    assert result["flops_per_step"] == train_step_flops(cfg)
    assert result["mfu"] == pytest.approx(result["flops_per_step"] / median / (8 * result["peak_flops"]))
    assert result["first_step_s"] > 0
    (row,) = table_rows(result, "tiny", "streamdit bench train --config tiny")
    assert "mesh 8x1x1x1" in row and row.count("|") == 11


@pytest.mark.slow
def test_peer_runs_the_same_model_in_pytorch_on_cpu():
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from streamdit_jax.bench.peer import bench_peer

    cfg = load("tiny", num_devices=1)
    result = bench_peer(cfg, steps=2, warmup=1)
    assert result["params"]["jax"] == result["params"]["torch"]  # the same architecture and size
    assert result["torch_side"]["device"] == "cpu" and not result["torch_side"]["compiled"]
    for phase, batch in (("forward", 1), ("train", cfg.train.batch_size)):
        r = result["phases"][phase]
        assert r["batch"] == batch and r["tokens"] == batch * 8 * 4 * 4
        ratio = r["jax"]["step_ms"]["median"] / r["torch"]["step_ms"]["median"]
        assert r["jax_over_torch"] == pytest.approx(ratio)
    rows = table_rows(result, "tiny", "streamdit bench peer --config tiny")
    assert len(rows) == 2 and all("JAX / PyTorch" in row for row in rows)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ConfigError, match="at least one timed step"):
        bench_rollout(load("tiny"), steps=0)
    with pytest.raises(ConfigError, match="unknown rollout modes"):
        bench_rollout(load("tiny"), modes=("latent",))
    with pytest.raises(ConfigError, match="both must be >= 1"):
        bench_train(load("tiny"), warmup=0)
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        with_resolution(load("tiny"), "512")
    with pytest.raises(ConfigError):
        with_resolution(load("tiny"), "60x64")  # not a multiple of the VAE's compression
