"""The streamdit command: summary, convert (round trip through an Orbax checkpoint), errors."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import relative_error

from streamdit_jax.cli import main
from streamdit_jax.config import MeshConfig
from streamdit_jax.model import apply, count_params, restore_params
from streamdit_jax.sharding import make_mesh, use_mesh


def test_summary_of_the_4b_preset_prints_the_parameter_count():
    """Through the installed console script, as a user runs it; nothing is allocated (eval_shape)."""
    out = subprocess.run(
        ["streamdit", "summary", "--config", "configs/streamdit_4b.py"],
        capture_output=True,
        text=True,
        check=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": f"{sys.prefix}/bin"},
    ).stdout
    count = int(next(line for line in out.splitlines() if line.startswith("parameters: ")).split()[1])
    assert 3.8e9 <= count <= 4.2e9
    assert "blocks/self_attn" in out and "(32 layers)" in out


def test_bad_config_exits_with_a_message(capsys):
    assert main(["summary", "--config", "tiny", "--config.model.num_heads=5"]) == 2
    assert "model.num_heads" in capsys.readouterr().err


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A random diffusers Wan model converted with `streamdit convert` into an Orbax checkpoint."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(1)
    model = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=12, in_channels=4, out_channels=4,
        text_dim=16, freq_dim=32, ffn_dim=40, num_layers=2,
    ).eval()  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("ckpt") / "wan"
    model.save_pretrained(src)
    assert (
        main(["convert", "wan-transformer", "--src", str(src), "--out", str(out), "--window", "2,2,3"]) == 0
    )
    return model, out, src


@pytest.mark.slow
def test_convert_then_restore_on_other_meshes(converted):
    torch_model, ckpt, _ = converted
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((2, 4, 4, 12, 4)).astype(np.float32)  # token grid (4, 2, 6)
    text = rng.standard_normal((2, 5, 16)).astype(np.float32)
    t = np.array([300.0, 700.0], np.float32)
    sigma = np.repeat(t[:, None] / 1000, 4, axis=1)
    mask = np.ones((2, 5), bool)

    # The saved window applies; full attention (as diffusers computes it) is a shape-free override.
    _, graphdef, params = restore_params(ckpt, model_overrides={"window": None})
    got = jax.jit(lambda p, *a: apply(graphdef, p, *a))(params, latents, sigma, text, mask)
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        want = torch_model(
            torch.from_numpy(latents).permute(0, 4, 1, 2, 3), torch.from_numpy(t), torch.from_numpy(text)
        ).sample.permute(0, 2, 3, 4, 1)
    assert relative_error(got, want.numpy()) <= 1e-4

    # Windowed, as saved: the same numbers on one device and on a (2, 2, 1, 2) mesh.
    cfg1, graphdef1, params1 = restore_params(ckpt)
    assert cfg1.window == (2, 2, 3)
    one = jax.jit(lambda p, *a: apply(graphdef1, p, *a))(params1, latents, sigma, text, mask)
    mesh = make_mesh(MeshConfig(shape=(2, 2, 1, 2)))
    _, graphdef8, params8 = restore_params(ckpt, mesh=mesh)
    assert params8["blocks"]["mlp"]["fc1"]["kernel"][...].sharding.mesh.shape["model"] == 2
    with use_mesh(mesh, MeshConfig().rules):
        eight = jax.jit(lambda p, *a: apply(graphdef8, p, *a))(params8, latents, sigma, text, mask)
    assert relative_error(eight, one) <= 1e-5
    assert relative_error(one, got) > 1e-3  # windows really changed the computation
    assert count_params(params8) == sum(p.numel() for p in torch_model.parameters())


def test_convert_never_overwrites_a_checkpoint(converted, capsys):
    _, ckpt, src = converted
    argv = ["convert", "wan-transformer", "--src", str(src), "--out", str(ckpt), "--param-dtype", "bfloat16"]
    assert main(argv) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    cfg, _, params = restore_params(ckpt)
    assert cfg.window == (2, 2, 3) and cfg.param_dtype == "float32"  # untouched
    assert params["head"]["kernel"][...].dtype == np.float32


def test_space_separated_override_gets_a_hint(capsys):
    with pytest.raises(SystemExit):
        main(["summary", "--config", "tiny", "--config.model.num_layers", "4"])
    assert "--config.model.num_layers=VALUE" in capsys.readouterr().err


def test_summary_of_a_checkpoint(converted, capsys):
    torch_model, ckpt, _ = converted
    assert main(["summary", "--checkpoint", str(ckpt)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("parameters: "))
    assert int(line.split()[1]) == sum(p.numel() for p in torch_model.parameters())


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        restore_params(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        restore_params(tmp_path / "empty")


def test_convert_of_a_folder_without_config_is_a_clear_error(tmp_path, capsys):
    assert main(["convert", "wan-transformer", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_restore_rejects_shape_changing_overrides(converted):
    _, ckpt, _ = converted
    with pytest.raises(ValueError, match="num_layers"):
        restore_params(ckpt, model_overrides={"num_layers": 4})
