"""The causal video VAE: parity with diffusers' AutoencoderKLWan, streaming, conversion, checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import relative_error

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from streamdit_jax.autoencoder import restore_autoencoder  # noqa: E402
from streamdit_jax.autoencoder.vae import VideoVAE  # noqa: E402
from streamdit_jax.checkpoint import save_params  # noqa: E402
from streamdit_jax.cli import main  # noqa: E402
from streamdit_jax.config import AutoencoderConfig  # noqa: E402
from streamdit_jax.convert import ConversionError, wan_vae  # noqa: E402

Z = 4
WAN_VAE = dict(
    base_dim=8,
    z_dim=Z,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.3, -0.2, 0.1, 0.5],
    latents_std=[1.5, 0.7, 2.0, 1.1],
)
TOLERANCE = 1e-4  # float32 on the CPU gives ~2e-6


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """A randomly initialised diffusers Wan VAE (non-trivial norms, biases and statistics) and its folder."""
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLWan(**WAN_VAE).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if "gamma" in name else 0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("wan_vae")
    ref.save_pretrained(path)
    return ref, path, wan_vae(path)


def _video(frames=9, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (2, frames, 32, 48, 3)).astype(np.float32)


def _channels_first(x):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3)


def _channels_last(x):
    return x.permute(0, 2, 3, 4, 1).numpy()


def test_encode_matches_diffusers(wan):
    ref, _, ours = wan
    video = _video()
    with torch.no_grad():
        posterior = ref.encode(_channels_first(video)).latent_dist
    mean, std = np.array(WAN_VAE["latents_mean"]), np.array(WAN_VAE["latents_std"])
    want = (_channels_last(posterior.mean) - mean) / std  # Wan's pipeline normalisation
    got = jax.jit(ours.encode)(video)
    assert got.shape == (2, 3, 4, 6, Z)
    assert relative_error(got, want) <= TOLERANCE
    _, logvar = jax.jit(ours.posterior)(video)
    assert relative_error(logvar, _channels_last(posterior.logvar)) <= TOLERANCE


def test_decode_matches_diffusers(wan):
    ref, _, ours = wan
    latents = np.random.default_rng(1).standard_normal((2, 3, 4, 6, Z)).astype(np.float32)
    raw = latents * np.array(WAN_VAE["latents_std"]) + np.array(WAN_VAE["latents_mean"])
    with torch.no_grad():
        want = _channels_last(ref.decode(_channels_first(raw.astype(np.float32))).sample)
    got = jax.jit(ours.decode)(latents)
    assert got.shape == (2, 9, 32, 48, 3)
    assert relative_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("chunk", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_streaming_decoder_equals_whole_decode(wan, chunk):
    _, _, ours = wan
    latents = jnp.asarray(np.random.default_rng(2).standard_normal((1, 5, 4, 6, Z)), jnp.float32)
    whole = jax.jit(ours.decode)(latents)
    decoder = ours.streaming_decoder()
    frames = []
    for start in range(0, 5, chunk):
        frames.append(decoder.step(latents[:, start : start + chunk]))
    assert [f.shape[1] for f in frames][:2] == [1 + 4 * (chunk - 1), 4 * chunk]
    assert relative_error(jnp.concatenate(frames, axis=1), whole) <= TOLERANCE
    decoder.reset()
    np.testing.assert_allclose(np.asarray(decoder.step(latents[:, :chunk])), np.asarray(frames[0]), atol=1e-6)


@pytest.mark.parametrize("chunk", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_streaming_encoder_equals_whole_encode(wan, chunk):
    """Encoding 1 + 4(chunk - 1) frames, then 4·chunk at a time, gives the whole video's latents."""
    _, _, ours = wan
    video = _video(17)
    whole = jax.jit(ours.encode)(video)
    encoder = ours.streaming_encoder()
    first = 1 + 4 * (chunk - 1)
    pieces = [encoder.step(video[:, :first])]
    pieces += [encoder.step(video[:, t : t + 4 * chunk]) for t in range(first, 17, 4 * chunk)]
    assert [p.shape[1] for p in pieces][:2] == [chunk, chunk]
    assert relative_error(jnp.concatenate(pieces, axis=1), whole) <= TOLERANCE


@pytest.mark.slow
def test_sample_follows_the_posterior(wan):
    _, _, ours = wan
    video = _video(5)
    mean = ours.encode(video)
    sample = ours.sample(video, jax.random.key(0))
    _, logvar = ours.posterior(video)
    expected_std = jnp.exp(0.5 * logvar) / jnp.asarray(WAN_VAE["latents_std"])
    z = (sample - mean) / expected_std
    assert abs(float(z.std()) - 1.0) < 0.1 and abs(float(z.mean())) < 0.1


def test_bad_video_shapes_are_explained(wan):
    _, _, ours = wan
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        ours.encode(_video(8))
    with pytest.raises(ValueError, match="multiples of 8"):
        ours.encode(_video(5)[:, :, :30])
    with pytest.raises(ValueError, match="channels last"):
        ours.encode(np.zeros((1, 5, 3, 32, 32), np.float32))


def test_converter_lists_unknown_and_missing_tensors(wan, tmp_path):
    from safetensors.torch import save_file

    ref, path, _ = wan
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    del state["decoder.conv_out.bias"]
    state["decoder.extra.weight"] = torch.zeros(2)
    save_file(state, tmp_path / "diffusion_pytorch_model.safetensors")
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ConversionError, match=r"decoder\.extra\.weight(.|\n)*decoder/conv_out/bias"):
        wan_vae(tmp_path)


def test_wan22_layout_is_rejected():
    from streamdit_jax.convert import wan_vae_config

    with pytest.raises(ConversionError, match="is_residual"):
        wan_vae_config({"is_residual": True})


@pytest.mark.slow
def test_checkpoint_round_trip_and_cli(wan, tmp_path, capsys):
    _, path, ours = wan
    out = tmp_path / "ckpt"
    assert main(["convert", "wan-vae", "--src", str(path), "--out", str(out)]) == 0
    restored = restore_autoencoder(out)
    np.testing.assert_allclose(np.asarray(restored.latents_std[...]), WAN_VAE["latents_std"], rtol=1e-7)
    latents = jnp.ones((1, 2, 4, 6, Z))
    np.testing.assert_allclose(
        np.asarray(restored.decode(latents)), np.asarray(ours.decode(latents)), atol=1e-6
    )
    capsys.readouterr()
    assert main(["summary", "--checkpoint", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("parameters: "))
    assert int(line.split()[1]) == sum(p.numel() for p in wan[0].parameters())


@pytest.mark.slow
def test_fresh_vae_trains_from_its_own_init(tmp_path):
    """Our init gives a working autoencoder graph: finite reconstructions, and gradients everywhere
    after one step (the residual blocks' and the attention's last layers start at zero, so the layers
    before them only get gradients once those have moved)."""
    cfg = AutoencoderConfig(base_dim=8, dim_mult=(1, 1, 2, 2), num_res_blocks=1, latent_channels=4)
    vae = VideoVAE(cfg, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(vae, nnx.Param, ...)
    video = jnp.asarray(_video(5)[:1])

    def loss(p):
        model = nnx.merge(graphdef, p, rest)
        mean, _ = model.posterior(video)
        recon, _ = model.decode_raw(mean)
        return jnp.mean(jnp.abs(recon - video))

    grad = jax.jit(jax.grad(loss))
    first = grad(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(first))
    stepped = jax.tree.map(lambda p, g: p - 1e-2 * jnp.sign(g), params, first)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grad(stepped))]
    assert all(np.isfinite(n) and n > 0 for n in norms)
    assert save_params(tmp_path, cfg, nnx.state(vae)).exists()
    assert restore_autoencoder(tmp_path).cfg == cfg
