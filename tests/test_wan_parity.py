"""Parity with code we did not write: diffusers' PyTorch WanTransformer3DModel, converted into ours."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from helpers import relative_error  # noqa: E402

from streamdit_jax.convert import convert_wan_state, wan_model_config, wan_transformer  # noqa: E402

WAN_CONFIG = dict(
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
LATENT = (2, 3, 8, 12)  # B, F, h, w -> a non-square (3, 4, 6) token grid
TEXT_LENGTHS = (7, 4)  # per sample; the batch is padded to 7


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    """A randomly initialised diffusers Wan transformer saved as sharded safetensors."""
    torch.manual_seed(0)
    model = diffusers.WanTransformer3DModel(**WAN_CONFIG).eval()
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
    latents = rng.standard_normal((b, f, h, w, WAN_CONFIG["in_channels"])).astype(np.float32)
    text = rng.standard_normal((b, max(TEXT_LENGTHS), WAN_CONFIG["text_dim"])).astype(np.float32)
    mask = np.arange(max(TEXT_LENGTHS))[None, :] < np.array(TEXT_LENGTHS)[:, None]
    return latents, text, mask


def _reference(model, latents, timestep, text):
    """diffusers on each sample alone, with its unpadded prompt; -> [B, F, h, w, C]."""
    outs = []
    for i, n in enumerate(TEXT_LENGTHS):
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
    assert relative_error(got, want) <= 1e-4


def test_per_frame_timesteps(wan_dir):
    """diffusers takes one timestep per token (Wan 2.2 style); ours one per frame, broadcast to its tokens."""
    path, torch_model = wan_dir
    ours = wan_transformer(path)
    latents, text, mask = _inputs(seed=1)
    b, f, h, w = LATENT
    sigma = np.sort(np.random.default_rng(2).uniform(0, 1, (b, f)).astype(np.float32), axis=1)
    tokens_per_frame = (h // 2) * (w // 2)
    per_token = np.repeat(1000.0 * sigma, tokens_per_frame, axis=1).astype(np.float32)
    got = jax.jit(ours.__call__)(latents, sigma, text, mask)
    want = _reference(torch_model, latents, per_token, text)
    assert relative_error(got, want) <= 1e-4
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
    with pytest.raises(ValueError) as err:
        convert_wan_state(tensors, cfg)
    message = str(err.value)
    assert "blocks.0.attn1.extra_proj.weight" in message and "unknown tensors (1)" in message
    assert "blocks.1.attn2.to_k.weight" in message and "missing tensors (1)" in message


def test_image_conditioned_config_is_rejected():
    with pytest.raises(ValueError, match="image-conditioned"):
        wan_model_config({**WAN_CONFIG, "image_dim": 1280})
