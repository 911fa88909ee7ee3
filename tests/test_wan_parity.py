import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from helpers import relative_error  # noqa: E402

from streamdit_jax.convert import ConversionError, convert_wan_state, wan_model_config, wan_transformer  # noqa: E402

BASE = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=16,  # RoPE split 8/4/4: frame, height and width parts differ in size
    in_channels=4,
    out_channels=4,
    text_dim=24,
    freq_dim=32,
    ffn_dim=48,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=64,
)
VARIANTS = {
    "wan": BASE,
    # Another patch, no cross-attention norm, head dim 12 (RoPE split 4/4/4), eps 1e-5.
    "variant": {**BASE, "patch_size": (1, 1, 2), "num_attention_heads": 3, "attention_head_dim": 12,
                "cross_attn_norm": False, "eps": 1e-5},
}  # fmt: skip
LATENT = (2, 3, 8, 12)  # B, F, h, w -> a non-square token grid
TEXT_LENGTHS = (7, 4)  # per sample; the batch is padded to 7
TOLERANCE = 1e-5  # the issue asks for 1e-4; float32 on the CPU gives ~5e-7


@pytest.fixture(scope="module", params=["wan", pytest.param("variant", marks=pytest.mark.slow)])
def wan_dir(request, tmp_path_factory):
    """A randomly initialised diffusers Wan transformer saved as sharded safetensors."""
    torch.manual_seed(0)
    model = diffusers.WanTransformer3DModel(**VARIANTS[request.param]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))  # non-trivial norm scales
            else:
                p.copy_(0.3 * torch.randn_like(p))  # includes the modulation tables and biases
    path = tmp_path_factory.mktemp("wan")
    model.save_pretrained(path, max_shard_size="40KB")
    assert len(list(path.glob("*.safetensors"))) > 1, "expected a sharded checkpoint"
    return path, model


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    b, f, h, w = LATENT
    latents = rng.standard_normal((b, f, h, w, BASE["in_channels"])).astype(np.float32)
    text = rng.standard_normal((b, max(TEXT_LENGTHS), BASE["text_dim"])).astype(np.float32)
    mask = np.arange(max(TEXT_LENGTHS))[None, :] < np.array(TEXT_LENGTHS)[:, None]
    return latents, text, mask


def _reference(model, latents, timestep, text, lengths=TEXT_LENGTHS):
    """diffusers on each sample alone, with the first ``lengths[i]`` text tokens; -> [B, F, h, w, C]."""
    outs = []
    for i, n in enumerate(lengths):
        x = torch.from_numpy(latents[i : i + 1]).permute(0, 4, 1, 2, 3)
        with torch.no_grad():
            out = model(
                x, torch.from_numpy(timestep[i : i + 1]), torch.from_numpy(text[i : i + 1, :n])
            ).sample
        outs.append(out.permute(0, 2, 3, 4, 1).numpy())
    return np.concatenate(outs)


def test_one_timestep_per_sample(wan_dir):
    path, torch_model = wan_dir
    ours = wan_transformer(path)
    latents, text, mask = _inputs()
    t = np.array([870.0, 125.0], np.float32)
    sigma = np.repeat(t[:, None] / 1000.0, LATENT[1], axis=1)
    got = jax.jit(ours.__call__)(latents, sigma, text, mask)
    want = _reference(torch_model, latents, t, text)
    assert got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE


def test_window_equal_to_the_latent_is_wan_full_attention(wan_dir):
    path, torch_model = wan_dir
    grid = tuple(n // p for n, p in zip(LATENT[1:], torch_model.config.patch_size, strict=True))
    ours = wan_transformer(path, window=grid)
    assert ours.cfg.window == grid
    latents, text, mask = _inputs(seed=3)
    t = np.array([500.0, 40.0], np.float32)
    got = jax.jit(ours.__call__)(latents, np.repeat(t[:, None] / 1000.0, LATENT[1], axis=1), text, mask)
    assert relative_error(got, _reference(torch_model, latents, t, text)) <= TOLERANCE


@pytest.mark.slow
def test_wan_pipeline_padding_is_reproduced_with_an_all_true_mask(wan_dir):
    """Wan's pipeline zero-pads prompt states and attends to the padding: an all-true mask does the same."""
    path, torch_model = wan_dir
    ours = wan_transformer(path)
    latents, text, mask = _inputs(seed=4)
    padded = np.where(mask[..., None], text, 0.0).astype(np.float32)
    t = np.array([250.0, 750.0], np.float32)
    sigma = np.repeat(t[:, None] / 1000.0, LATENT[1], axis=1)
    want = _reference(torch_model, latents, t, padded, lengths=(7, 7))
    got = ours(latents, sigma, padded, np.ones_like(mask))
    assert relative_error(got, want) <= TOLERANCE
    assert relative_error(ours(latents, sigma, padded, mask), want) > 1e-3  # the mask does matter


def test_per_frame_timesteps(wan_dir):
    """diffusers takes one timestep per token (Wan 2.2 style); ours one per frame, broadcast to its tokens."""
    path, torch_model = wan_dir
    ours = wan_transformer(path)
    latents, text, mask = _inputs(seed=1)
    b, f, h, w = LATENT
    sigma = np.sort(np.random.default_rng(2).uniform(0, 1, (b, f)).astype(np.float32), axis=1)
    _, ph, pw = torch_model.config.patch_size
    per_token = np.repeat(1000.0 * sigma, (h // ph) * (w // pw), axis=1).astype(np.float32)
    got = jax.jit(ours.__call__)(latents, sigma, text, mask)
    want = _reference(torch_model, latents, per_token, text)
    assert relative_error(got, want) <= TOLERANCE
    # The frames really got different time embeddings: one shared sigma gives another answer.
    flat = np.repeat(sigma.mean(1, keepdims=True), f, axis=1)
    assert relative_error(jax.jit(ours.__call__)(latents, flat, text, mask), want) > 1e-2


def test_padding_mask_hides_padded_text(wan_dir):
    path, _ = wan_dir
    ours = wan_transformer(path)
    latents, text, mask = _inputs()
    sigma = jnp.full(LATENT[:2], 0.5)
    garbage = text.copy()
    garbage[~mask] = 100.0
    a, b = ours(latents, sigma, text, mask), ours(latents, sigma, garbage, mask)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unknown_and_missing_tensors_are_listed(wan_dir):
    from streamdit_jax.convert.safetensors_io import read_safetensors_folder

    path, _ = wan_dir
    tensors = dict(read_safetensors_folder(path))
    cfg = wan_model_config(json.loads((path / "config.json").read_text()))
    del tensors["blocks.1.attn2.to_k.weight"]
    tensors["blocks.0.attn1.extra_proj.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError) as err:
        convert_wan_state(tensors, cfg)
    message = str(err.value)
    assert "blocks.0.attn1.extra_proj.weight" in message and "unknown tensors (1)" in message
    assert "blocks.1.attn2.to_k.weight" in message and "missing tensors (1)" in message


def test_image_conditioned_config_is_rejected():
    with pytest.raises(ValueError, match="image-conditioned"):
        wan_model_config({**BASE, "image_dim": 1280})


@pytest.mark.slow
def test_bfloat16_weights_convert(wan_dir, tmp_path):
    """bf16 safetensors (as Wan ships) are read without torch and give bf16-accurate parity."""
    import copy

    bf16 = copy.deepcopy(wan_dir[1]).to(torch.bfloat16)
    bf16.save_pretrained(tmp_path)
    # The reference: the same bf16-rounded weights in a float32 model (its RoPE tables stay float32).
    torch_model = diffusers.WanTransformer3DModel.from_config(wan_dir[1].config).eval()
    torch_model.load_state_dict({k: v.float() for k, v in bf16.state_dict().items()})
    ours = wan_transformer(tmp_path, param_dtype="bfloat16")
    assert ours.blocks.mlp.fc1.kernel[...].dtype == jnp.bfloat16
    latents, text, mask = _inputs(seed=5)
    t = np.array([600.0, 300.0], np.float32)
    got = ours(latents, np.repeat(t[:, None] / 1000.0, LATENT[1], axis=1), text, mask)
    assert relative_error(got, _reference(torch_model, latents, t, text)) <= TOLERANCE
