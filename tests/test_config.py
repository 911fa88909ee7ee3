"""Presets, overrides, variants, and every validation error with the message it must show."""

import dataclasses
import math

import pytest

from streamdit_jax import config as config_lib
from streamdit_jax.config import Config, ConfigError, from_dict, load
from streamdit_jax.model import abstract_model, count_params

PRESETS = ["tiny", "small", "wan2_1_1_3b", "streamdit_4b", "wan2_1_14b"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_as_frozen_dataclasses(name):
    cfg = load(name, num_devices=8)
    assert isinstance(cfg, config_lib.Config) and isinstance(cfg.model, config_lib.ModelConfig)
    with pytest.raises(AttributeError):
        cfg.model.width = 1  # frozen


def test_streamdit_4b_has_about_four_billion_parameters():
    count = count_params(abstract_model(load("streamdit_4b", num_devices=1).model)[1])
    assert 3.8e9 <= count <= 4.2e9


@pytest.mark.parametrize(
    ("name", "wan_config"),
    [
        ("wan2_1_1_3b", dict(num_attention_heads=12, ffn_dim=8960, num_layers=30)),
        ("wan2_1_14b", dict(num_attention_heads=40, ffn_dim=13824, num_layers=40)),
    ],
)
def test_wan_presets_have_exactly_the_diffusers_parameter_count(name, wan_config):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        reference = diffusers.WanTransformer3DModel(attention_head_dim=128, text_dim=4096, **wan_config)
    ours = count_params(abstract_model(load(name, num_devices=1).model)[1])
    assert ours == sum(p.numel() for p in reference.parameters())


def test_path_variant_and_overrides():
    cfg = load("configs/tiny.py:full", ["--config.model.num_layers=4", "model.dtype=bfloat16"], num_devices=1)
    assert cfg.model.window is None and cfg.model.num_layers == 4 and cfg.model.dtype == "bfloat16"
    cfg = load("tiny", ["model.window=(8,2,4)", "buffer.chunk_sizes=[1,8]", "buffer.chunk_weights=(1,3)"], 1)
    assert cfg.model.window == (8, 2, 4) and cfg.buffer.chunk_sizes == (1, 8)
    assert cfg.buffer.chunk_weights == (1.0, 3.0)
    assert load("streamdit_4b:distilled,res=256", num_devices=1).scheme == (0, 8, 2, 1)
    assert load("streamdit_4b:distilled,res=256", num_devices=1).token_grid == (16, 16, 16)


def test_overriding_with_the_wrong_type_names_the_field():
    with pytest.raises(ConfigError, match=r"'model\.num_layers'"):
        load("tiny", ["model.num_layers=2.5"], num_devices=1)


# (overrides, field named in the message, a phrase of the fix)
INVALID = [
    (["model.window=(3,2,2)"], "model.window", "divisors of its axis: frames [1, 2, 4, 8]"),
    (["buffer.chunk_sizes=(1,3)", "buffer.chunk_weights=(1,1)"], "buffer.chunk_sizes", "among [1, 2, 4, 8]"),
    (["buffer.reference_frames=2", "buffer.chunk_sizes=(4,)", "buffer.chunk_weights=(1,)"],
     "buffer.chunk_sizes", "among [1, 2, 3, 6]"),
    (["buffer.chunk_weights=(1,1)"], "buffer.chunk_weights", "one weight per entry"),
    (["model.num_heads=5"], "model.num_heads", "among [1, 2, 4, 8, 16, 32, 64, 128]"),
    (["model.num_layers=3"], "model.num_layers", "even number of layers"),
    (["mesh.shape=(2,2,1,1)"], "mesh.shape", "product of mesh.shape equal the device count"),
    (["mesh.shape=(-1,3,1,1)"], "mesh.shape", "needs a multiple of 3 devices"),
    (["mesh.shape=(-1,-1,1,1)"], "mesh.shape", "at most one -1"),
    (["mesh.rules=(('embed','tensor'),)"], "mesh.rules", "unknown mesh axis 'tensor'"),
    (["data.resolution=(60,64)"], "data.resolution", "height divisible by 16"),
    (["rollout.chunk_frames=3"], "rollout.chunk_frames", "use one of [1, 2, 4, 8]"),
    (["model.patch_size=(2,2,2)"], "model.patch_size", "per latent frame"),
    (["model.attention=flash"], "model.attention", "use one of ['cudnn', 'xla']"),
    (["model.attention=cudnn"], "model.attention", "set model.dtype=bfloat16"),
    (["model.remat=some"], "model.remat", "use one of"),
    (["model.widht=32"], "model.widht", "did you mean 'model.width'"),
    (["modle.width=32"], "modle", "did you mean 'model'"),
    (["model.freq_dim=63"], "model.freq_dim", "even size"),
    (["model.eps=-1.0"], "model.eps", "use a value > 0.0"),
    (["model.window=(4.0,2,2)"], "model.window", "give a int"),
    (["model.window=(4,2)"], "model.window", "give 3 numbers"),
    (["data.resolution=(64,)"], "data.resolution", "give 2 numbers"),
    (["data.prompt_dropout=5.0"], "data.prompt_dropout", "<= 1.0"),
    (["train.batch_size=0"], "train.batch_size", ">= 1"),
    (["train.grad_accum=3"], "train.grad_accum", "divides the batch"),
    (["vae_train.frames=8"], "vae_train.frames", "1 + 4k"),
    (["autoencoder.base_dim=0"], "autoencoder.base_dim", ">= 1"),
    (["autoencoder.temporal_downsample=(True,)"], "autoencoder.temporal_downsample", "one bool per stage"),
    (["autoencoder.latent_channels=8"], "model.latent_channels", "set both to the same number"),
    (["buffer.frames=0"], "buffer.frames", ">= 1"),
    (["optimizer.b1=3.0"], "optimizer.b1", "<= 1.0"),
    (["mesh.rules=(('embed',),)"], "mesh.rules", "(logical axis, mesh axis or None)"),
    (["buffer.level_density=cosine"], "buffer.level_density", "use one of uniform, logit_normal, shifted"),
    (["buffer.level_std=0.0"], "buffer.level_std", "use a value > 0.0"),
    (["buffer.level_shift=-2.0"], "buffer.level_shift", "use a value > 0.0"),
    (["buffer.level_mean=1e999"], "buffer.level_mean", "finite mean"),
    (["rollout.startup_micro_steps=0"], "rollout.startup_micro_steps", "use a value >= 1"),
    (["rollout.startup_guidance=-1.0"], "rollout.startup_guidance", "use a value >= 0.0"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "field", "fix"), INVALID)
def test_invalid_configs_fail_at_load_naming_field_and_fix(overrides, field, fix):
    with pytest.raises(ConfigError) as err:
        load("tiny", overrides, num_devices=8)
    message = str(err.value)
    assert f"'{field}'" in message and "Fix:" in message and fix in message, message


def test_unknown_field_set_by_a_preset_is_rejected(tmp_path):
    preset = tmp_path / "mine.py"
    preset.write_text(
        "from streamdit_jax.config import base_config\n"
        "def get_config(arg=None):\n    c = base_config()\n    c.model.hidden = 3\n    return c\n"
    )
    with pytest.raises(ConfigError, match=r"'model\.hidden': unknown field"):
        load(str(preset), num_devices=1)


def test_unknown_preset_and_variant_are_explained():
    with pytest.raises(ConfigError, match=r"presets .*'tiny'"):
        load("tinny", num_devices=1)
    with pytest.raises(ConfigError, match="unknown option 'fast'"):
        load("tiny:fast", num_devices=1)
    with pytest.raises(ConfigError, match="expected bool"):
        load("streamdit_4b:distilled=no", num_devices=1)
    with pytest.raises(ConfigError, match="expected int"):
        load("streamdit_4b:res=abc", num_devices=1)
    with pytest.raises(ConfigError, match=r"'480p', '720p'"):
        load("wan2_1_14b:res=1080p", num_devices=1)
    assert load("streamdit_4b:distilled=false", num_devices=1).rollout.micro_steps == 16


def test_windows_that_never_shift_allow_an_odd_number_of_layers():
    """A window of 1 frame shifts by 0: only axes that really shift need layer pairs."""
    cfg = load("tiny", ["model.window=(1,4,4)", "model.num_layers=3"], num_devices=1)
    assert cfg.model.num_layers == 3


def test_mesh_with_minus_one_takes_the_remaining_devices():
    cfg = load("tiny", ["mesh.shape=(2,-1,1,2)"], num_devices=8)
    assert cfg.mesh.resolved_shape(8) == (2, 2, 1, 2)
    assert math.prod(cfg.mesh.resolved_shape(16)) == 16


@pytest.mark.parametrize("preset", ["streamdit_4b:finetune", "wan2_1_1_3b:streamdit"])
def test_the_papers_fine_tuning_stages_are_presets(preset):
    from streamdit_jax.config import PAPER_STAGES

    plain = load(preset.split(":")[0], num_devices=8)
    for stage, (_, learning_rate) in PAPER_STAGES.items():
        cfg = load(f"{preset},stage={stage}", num_devices=8)
        assert cfg.optimizer.learning_rate == learning_rate and cfg.train.steps == 10_000
        assert cfg.buffer.chunk_sizes == (1, 2, 4, 8, 16) and cfg.buffer.uniform_share == 0.1
        assert cfg.model == plain.model  # the same transformer: the previous stage's run is the next --init
    assert load(f"{preset},stage=2", num_devices=8).optimizer.warmup_steps == 0
    with pytest.raises(ConfigError, match="has stages"):
        load(f"{preset},stage=4", num_devices=8)


def test_renamed_fields_load_under_their_old_names_with_a_note():
    """`cfg_scale` became `guidance`: old overrides and old checkpoints' saved configs still load."""
    with pytest.warns(FutureWarning, match="'rollout.cfg_scale' is now 'rollout.guidance'"):
        cfg = load("tiny", ["rollout.cfg_scale=2.5"], num_devices=1)
    assert cfg.rollout.guidance == 2.5
    saved = dataclasses.asdict(cfg)
    saved["distill"]["cfg_scale"] = saved["distill"].pop("guidance") + 1.0
    with pytest.warns(FutureWarning, match="'distill.cfg_scale' is now 'distill.guidance'"):
        assert from_dict(Config, saved).distill.guidance == cfg.distill.guidance + 1.0
