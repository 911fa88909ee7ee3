"""Streaming rollout: the jitted stream against an unjitted reference of the paper's algorithm, start-up,
prompt changes, video-to-video, restoring across meshes, flat memory, and the ``stream`` command."""

import dataclasses
import gc
import json
import logging
import os
import statistics
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import shapes_video

from streamdit_jax import checkpoint as ckpt
from streamdit_jax.cli import main
from streamdit_jax.config import ConfigError, load
from streamdit_jax.flow import Scheme, SchemeError, text_to_video
from streamdit_jax.model import apply
from streamdit_jax.stream import LOOKAHEAD, Streamer, StreamModel, StreamSettings
from streamdit_jax.stream.video import InputVideo

A, B, C = "a red circle moving left", "a blue square moving up", "a green triangle moving down"
ATOL = 1e-4  # jitted vs eager float32 on the CPU differ by ~1e-6


@pytest.fixture
def model(random_tiny_model):
    return random_tiny_model


# --- an independent, unjitted reference of the paper's streaming loop (reference/streamdit-paper.md §7)


_forward = jax.jit(apply, static_argnums=0)  # the model alone; the algorithm around it stays unjitted


def _velocity(model, prompt, guidance=1.0):
    """u(x, tau) in the paper's convention (tau = 1 is clean), as numpy: one model call (jitted), or the
    guided combination of two."""
    text, mask = model.text_encoder([prompt])
    null_text, null_mask = model.text_encoder([""])

    def net(x, sigma, text, mask):
        return _forward(model.graphdef, model.params, x, sigma, text, mask)

    def u(x, tau):
        sigma = jnp.asarray(1.0 - tau, jnp.float32)
        v = np.asarray(net(jnp.asarray(x), sigma, text, mask))
        if guidance != 1.0:
            v_null = np.asarray(net(jnp.asarray(x), sigma, null_text, null_mask))
            v = v_null + guidance * (v - v_null)
        return -v  # the model predicts noise - data; the paper's u points to the data

    return u


def _normal(key, shape):
    return np.asarray(jax.random.normal(key, shape, jnp.float32))


def reference_stream(
    velocities, scheme, latent_shape, seed, chunks, inputs=None, strength=1.0, startup_steps=None
):
    """Chunks emitted by the paper's algorithm, step by step in numpy.

    ``velocities[j]`` is the velocity function used at stream step j (``[-1]`` at start-up). Start-up:
    denoise a buffer in uniform mode keeping every step's latents, and take chunk i at the step where
    its noise level is the scheme's. Then per step: s Euler updates x += u·dtau on every non-reference
    frame, emit the oldest chunk, let the references become the last K clean frames, push a new chunk.
    Video-to-video: the buffer and every pushed chunk are the input's latents noised to ``strength``.
    The start-up takes ``startup_steps`` (s'; default s) steps per chunk position.
    """
    k, n, c, s = dataclasses.astuple(scheme)
    s0 = startup_steps or s
    frames, total = scheme.frames, n * s0  # T = N·s' start-up steps per frame
    key, noise_key = jax.random.split(jax.random.key(seed))
    x = _normal(noise_key, (1, frames, *latent_shape))
    if inputs is not None:
        x = (1 - strength) * inputs[:, :frames] + strength * x
    # start-up: uniform mode, every frame at the same tau, from 1 - strength to 1 in T steps
    tau, dtau, cache = 1.0 - strength, strength / total, [x]
    for _ in range(total):
        x = x + velocities[-1](x, np.full((1, frames), tau)) * dtau
        tau += dtau
        cache.append(x)
    queue = np.concatenate(
        [cache[total][:, :k]]
        + [cache[(n - 1 - i) * s0][:, k + i * c : k + (i + 1) * c] for i in range(n)], axis=1
    )  # fmt: skip
    tau = np.array([1.0] * k + [1.0 - strength * (i // c + 1) / n for i in range(n * c)])
    steps = np.array([0.0] * k + [strength / (n * s)] * (n * c))
    emitted = [queue[:, :k]] if k else []
    for j in range(chunks):
        t = tau.copy()
        for _ in range(s):
            queue = queue + velocities[j](queue, t[None]) * steps[None, :, None, None, None]
            t = t + steps
        chunk = queue[:, k : k + c]
        emitted.append(chunk)
        key, noise_key = jax.random.split(key)
        new = _normal(noise_key, chunk.shape)
        if inputs is not None:
            start = frames + j * c
            new = (1 - strength) * inputs[:, start : start + c] + strength * new
        references = np.concatenate([queue[:, :k], chunk], axis=1)[:, -k:] if k else queue[:, :0]
        queue = np.concatenate([references, queue[:, k + c :], new], axis=1)
    return emitted


def _take(iterator, count):
    return [np.asarray(next(iterator)) for _ in range(count)]


@pytest.mark.parametrize(
    "scheme, guidance",
    [
        (Scheme(0, 4, 2, 1), 1.0),
        pytest.param(Scheme(0, 2, 4, 3), 1.0, marks=pytest.mark.slow),
        pytest.param(Scheme(2, 3, 2, 2), 1.0, marks=pytest.mark.slow),
        (Scheme(1, 7, 1, 2), 3.0),  # K > 0, s > 1 and CFG: the fast lane's second case
    ],
    ids=str,
)
def test_stream_equals_the_unjitted_reference(model, scheme, guidance):
    streamer = Streamer(model, A, StreamSettings(scheme=scheme, guidance=guidance, seed=3))
    chunks = 4 + (scheme.reference > 0)
    got = _take(streamer.latent_chunks(), chunks)
    u = _velocity(model, A, guidance)
    want = reference_stream([u] * 5, scheme, streamer.latent_shape, seed=3, chunks=4)
    assert [g.shape[1] for g in got] == [w.shape[1] for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)
    assert np.abs(got[-1] - got[-2]).max() > 0.1  # chunks differ: the model does something
    assert streamer.rollout.traces <= 2  # start-up and step, once each (the model shares its rollouts)


def test_a_guided_start_up_with_more_steps_equals_the_reference_and_steps_stay_unguided(model):
    """The start-up's own micro-steps and guidance scale (rollout.startup_*): the first buffer is the guided
    3-steps-per-position denoise, every later step one unguided pass."""
    scheme = Scheme(0, 4, 2, 1)
    streamer = Streamer(model, A, StreamSettings(scheme=scheme, guidance=1.0, startup_micro_steps=3,
                                                 startup_guidance=3.0, seed=5))  # fmt: skip
    assert streamer.forward_passes_per_chunk == 1 and streamer.startup_forward_passes == 3 * 3 * 2
    got = _take(streamer.latent_chunks(), 3)
    u, guided = _velocity(model, A), _velocity(model, A, 3.0)
    want = reference_stream(
        [u, u, u, guided], scheme, streamer.latent_shape, seed=5, chunks=3, startup_steps=3
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)
    plain = _take(Streamer(model, A, StreamSettings(scheme=scheme, seed=5)).latent_chunks(), 1)[0]
    assert np.abs(plain - got[0]).max() > 0.01  # the start-up settings change the stream
    cfg = dataclasses.replace(model.cfg, rollout=dataclasses.replace(model.cfg.rollout, startup_micro_steps=3,
                                                                     startup_guidance=3.0))  # fmt: skip
    from_config = Streamer(dataclasses.replace(model, cfg=cfg), A,
                           StreamSettings(scheme=scheme, guidance=1.0, seed=5))  # fmt: skip
    np.testing.assert_allclose(_take(from_config.latent_chunks(), 1)[0], got[0], atol=ATOL)
    for bad, message in (
        ({"startup_micro_steps": 0}, "start-up micro-steps 0"),
        ({"startup_guidance": -2.0}, "start-up guidance scale -2.0 is negative"),
    ):
        with pytest.raises(ConfigError, match=message):
            Streamer(model, A, StreamSettings(scheme=scheme, **bad))


def test_start_up_noise_levels_are_the_schemes(model):
    scheme = Scheme(2, 3, 2, 2)
    streamer = Streamer(model, A, StreamSettings(scheme=scheme))
    state = streamer.start()
    want = [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1]
    np.testing.assert_allclose(np.asarray(state.sigma[0]), want, atol=1e-7)
    assert int(state.index) == 0
    # the newest chunk is the start-up's pure noise, untouched
    _, noise_key = jax.random.split(jax.random.key(0))
    noise = _normal(noise_key, (1, 8, *streamer.latent_shape))
    np.testing.assert_array_equal(np.asarray(state.latents[:, 6:]), noise[:, 6:])


@pytest.mark.parametrize("steps", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_uniform_scheme_is_plain_text_to_video(model, steps):
    """c = B, N = 1: the first emitted chunk is the whole buffer sampled from the start-up noise."""
    streamer = Streamer(model, A, StreamSettings(scheme=Scheme(0, 1, 8, steps), seed=5))
    chunk = next(streamer.latent_chunks())
    net = nnx.merge(model.graphdef, model.params)
    text, mask = model.text_encoder([A])
    _, noise_key = jax.random.split(jax.random.key(5))
    noise = jax.random.normal(noise_key, (1, 8, *streamer.latent_shape))
    want = text_to_video(lambda x, sigma: net(x, sigma, text, mask), noise, steps)
    np.testing.assert_allclose(np.asarray(chunk), np.asarray(want), atol=ATOL)


def test_set_prompt_switches_at_the_next_step_without_retracing(model):
    scheme = Scheme(0, 4, 2, 1)
    only_a = _take(Streamer(model, A, StreamSettings(scheme=scheme)).latent_chunks(), 6)
    streamer = Streamer(model, A, StreamSettings(scheme=scheme))
    stream = streamer.latent_chunks()
    got = _take(stream, 3)
    traces = streamer.rollout.traces
    streamer.set_prompt(B)
    got += _take(stream, 3)
    assert streamer.rollout.traces == traces <= 2
    assert streamer.prompt_log == [(0, A), (3, B)]
    for before, unchanged in zip(got[:3], only_a[:3], strict=True):
        np.testing.assert_array_equal(before, unchanged)
    u_a, u_b = _velocity(model, A), _velocity(model, B)
    want = reference_stream([u_a] * 3 + [u_b] * 3 + [u_a], scheme, streamer.latent_shape, seed=0, chunks=6)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)
    assert np.abs(got[3] - only_a[3]).max() > 1e-3  # the new prompt's embedding changed the computation


def test_prompt_schedule_switches_at_the_frame_it_names(model):
    # c = 2: chunk j starts at frame 0, 5, 13, 21, ...; at 8 fps frame 13 is 1.625 s
    streamer = Streamer(model, A, StreamSettings(scheme=Scheme(0, 4, 2, 1), schedule=[(1.6, B), (0.0, A)]))
    _take(streamer.latent_chunks(), 4)
    assert streamer.prompt_log == [(0, A), (2, B)]


def test_a_live_prompt_holds_until_the_next_scheduled_entry(model):
    # c = 2 at 8 fps: step j emits from frame 0, 5, 13, 21, 29 (3.625 s); the entry at 3 s takes step 4
    streamer = Streamer(model, A, StreamSettings(scheme=Scheme(0, 4, 2, 1), schedule=[(0.0, A), (3.0, C)]))
    stream = streamer.latent_chunks()
    _take(stream, 1)
    streamer.set_prompt(B)
    _take(stream, 4)
    assert streamer.prompt_log == [(0, A), (1, B), (4, C)]


@pytest.mark.slow
def test_commands_restart_and_close_on_the_owner_thread(model):
    """A restart with a seed is a fresh stream of that seed; pause holds the owner between steps; close
    ends its thread and frees the stream's arrays (a second stream leaves the counts where the first
    left them)."""
    scheme = Scheme(0, 4, 2, 1)
    fresh = [c.frames for c in _records(Streamer(model, A, StreamSettings(scheme=scheme, seed=7)), 2)]

    def stream_restart_pause_close():
        with Streamer(model, A, StreamSettings(scheme=scheme, seed=1, lookahead=0)) as streamer:
            first = streamer.next_chunk()
            streamer.restart(seed=7)
            chunks = [streamer.next_chunk() for _ in range(4)]
            streamer.pause()
            while streamer.next_chunk(timeout=0.5) is not None:  # what was in flight
                pass
            held = streamer.steps
            time.sleep(0.3)
            assert streamer.steps == held and streamer.paused
            streamer.resume()
            assert streamer.next_chunk(timeout=30) is not None
        with pytest.raises(RuntimeError, match="closed"):
            streamer.set_prompt(B)
        return first.run, [c.run for c in chunks], [c.frames for c in chunks if c.run == 1][:2]

    first_run, runs, restarted = stream_restart_pause_close()
    assert first_run == 0 and runs[-1] == 1 and runs == sorted(runs)
    for got, want in zip(restarted, fresh, strict=True):
        np.testing.assert_array_equal(got, want)
    del restarted, fresh  # frames on the CPU may be views of device buffers
    gc.collect()
    threads, arrays = set(threading.enumerate()), len(jax.live_arrays())
    stream_restart_pause_close()
    gc.collect()
    assert not set(threading.enumerate()) - threads  # (an earlier test's threads may end meanwhile)
    assert len(jax.live_arrays()) <= arrays


def _records(streamer, count):
    with streamer:
        return [streamer.next_chunk() for _ in range(count)]


@pytest.mark.slow
def test_video_to_video_equals_the_reference_and_ends_with_the_input(model, tmp_path):
    scheme, strength = Scheme(0, 4, 2, 1), 0.6
    shapes_video(tmp_path / "in.mp4", frames=1 + 4 * 13, fps=8)  # 14 latent frames: 8 + 3 chunks of 2
    settings = StreamSettings(scheme=scheme, input_video=tmp_path / "in.mp4", strength=strength, seed=2)
    streamer = Streamer(model, B, settings)
    got = [np.asarray(c) for c in streamer.latent_chunks()]
    assert len(got) == 7  # every input latent frame comes out once, then the stream ends
    frames = InputVideo(tmp_path / "in.mp4", model.cfg).take(100)
    assert len(frames) == 53
    inputs = np.asarray(jax.jit(model.autoencoder.encode)(jnp.asarray(frames[None])))
    padded = np.concatenate([inputs] + [inputs[:, -2:]] * 4, axis=1)  # the stream's flush: last chunk again
    want = reference_stream([_velocity(model, B)] * 8, scheme, streamer.latent_shape, 2, 7, padded, strength)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)


@pytest.mark.slow
def test_decoded_stream_is_the_whole_decode(model):
    """Chunks decoded on the decoder thread, concatenated, equal decoding all emitted latents at once."""
    streamer = Streamer(model, A, StreamSettings(scheme=Scheme(1, 7, 1, 1)))
    frames = [c for _, c in zip(range(5), streamer.chunks(), strict=False)]
    latents = _take(Streamer(model, A, StreamSettings(scheme=Scheme(1, 7, 1, 1))).latent_chunks(), 5)
    whole = jax.jit(model.autoencoder.decode)(jnp.asarray(np.concatenate(latents, axis=1)))
    want = np.round((np.asarray(whole[0]) + 1) * 127.5).clip(0, 255).astype(np.uint8)
    assert [len(f) for f in frames] == [1, 4, 4, 4, 4]
    assert np.abs(np.concatenate(frames).astype(int) - want).max() <= 1


@pytest.fixture
def saved(model, shelf):
    """The random tiny model and its VAE as checkpoints (no run config: streamed with a preset)."""

    def build(root):
        ckpt.save_params(root / "dit", model.cfg.model, model.params)
        ckpt.save_params(root / "vae", model.autoencoder.cfg, nnx.state(model.autoencoder))

    return shelf.get("random_tiny_checkpoints", build)


@pytest.mark.slow
def test_restored_on_other_meshes_streams_the_same(saved):
    chunks = {}
    for mesh in [(1, 1, 1, 1), (1, 1, 2, 2), (1, 1, 1, 4)]:
        restored = StreamModel.restore(saved / "dit", load("tiny", num_devices=1), saved / "vae", mesh)
        assert {len(p.sharding.device_set) for p in jax.tree.leaves(restored.params)} == {np.prod(mesh)}
        chunks[mesh] = _take(Streamer(restored, A, StreamSettings(seed=1)).latent_chunks(), 3)
    for mesh, got in chunks.items():
        for g, w in zip(got, chunks[(1, 1, 1, 1)], strict=True):
            np.testing.assert_allclose(g, w, atol=ATOL, err_msg=str(mesh))


@pytest.mark.slow
def test_two_thousand_chunks_in_flat_memory_and_one_trace(model):
    """Decoded frames of 2,000 chunks: over the second thousand, resident host memory grows by less than
    32 MiB (keeping one chunk's frames per chunk would add ~95 MiB; the first chunks fill the owner and
    decoder threads' malloc arenas, in steps) and the live device arrays do not grow (one array leaked
    per 62 chunks would pass the margin of 16); each jitted function was traced once."""
    page = os.sysconf("SC_PAGE_SIZE")
    # CFG would double the step's batch, not its state
    streamer = Streamer(model, A, StreamSettings(guidance=1.0))
    rss, arrays = {"mid": [], "late": []}, {"mid": [], "late": []}
    gc.collect()
    # The arrays of earlier tests (fixtures, other streamers) are held here and not counted, so that
    # their coming and going cannot move the count; holding them also keeps their ids from being reused.
    before = jax.live_arrays()
    earlier = {id(a) for a in before}
    for i, _ in enumerate(streamer.chunks()):
        window = "mid" if 989 <= i <= 999 else "late" if i >= 1989 else None
        if window:
            # Live arrays at eleven chunks, compared by their median: at any one the decoder thread may be
            # mid-step (old and new caches alive: more) or between a donated step's inputs and outputs
            # (fewer; CI once read 3 among 28-34). Unreachable cycles are garbage, not live state.
            gc.collect()
            arrays[window].append(sum(id(a) not in earlier for a in jax.live_arrays()))
            # Resident memory now, not the process's peak (which an earlier test may have set).
            rss[window].append(int(Path("/proc/self/statm").read_text().split()[1]) * page / 2**20)
        if i == 1999:
            break
    del before
    assert min(rss["late"]) - min(rss["mid"]) < 32, rss
    assert statistics.median(arrays["late"]) < statistics.median(arrays["mid"]) + 16, arrays
    # The owner thread runs at most LOOKAHEAD steps ahead, plus the LOOKAHEAD decoded chunks waiting.
    assert streamer.rollout.traces == 2 and streamer.steps <= 2000 + 2 * LOOKAHEAD


# --- the stream command


def _stream(*args):
    return main(["stream", *map(str, args)])


@pytest.mark.slow
def test_stream_writes_an_mp4_of_the_requested_length(tiny_demo, tmp_path, capsys):
    """From a training checkpoint alone (the tiny demo's teacher, trained on a (2, 2, 1, 2) mesh): its
    run config gives the preset, the VAE and the frame rate."""
    import imageio.v3 as iio

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"at": at, "prompt": p}) + "\n" for at, p in [(0, A), (1.0, B)]))
    out = tmp_path / "out.mp4"
    code = _stream(
        "--checkpoint", tiny_demo / "teacher", "--prompts", prompts, "--seconds", 2.5, "--out", out,
        "--frames-dir", tmp_path / "png", "--cfg", 2,
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert iio.improps(out, plugin="pyav").n_images == 20  # 2.5 s at the preset's 8 fps
    assert iio.immeta(out, plugin="pyav")["fps"] == 8
    assert len(list((tmp_path / "png").glob("frame_*.png"))) == 20
    assert "frames written: 20" in printed and "forward passes per chunk: 4" in printed
    assert "frames per second" in printed and B in printed


def _no_compilation(caplog, *args):
    caplog.clear()
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG):
            code = _stream(*args)
    finally:
        jax.config.update("jax_log_compiles", False)
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]
    return code


def test_stream_errors_are_clear_and_come_before_compilation(saved, tmp_path, capsys, caplog):
    base = ["--config", "tiny", "--vae", saved / "vae", "--prompt", A, "--seconds", 1]
    base += ["--out", tmp_path / "x.mp4"]
    assert _no_compilation(caplog, "--checkpoint", tmp_path / "nowhere", *base) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _no_compilation(caplog, "--checkpoint", saved / "dit", *base, "--scheme", "0,3,2,1") == 2
    err = capsys.readouterr().err
    assert "fills 6 frames" in err and "holds 8" in err
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert _no_compilation(caplog, "--checkpoint", saved / "dit", *base, "--input-video", bad) == 2
    assert "cannot read input video" in capsys.readouterr().err
    with pytest.raises(SchemeError, match="expected four integers"):
        Scheme.parse("0,4,2")


@pytest.mark.slow
def test_eval_of_a_checkpoint_gives_the_same_numbers_on_any_mesh(tiny_demo, tmp_path, capsys):
    """The tiny demo's teacher, trained on a (2, 2, 1, 2) mesh, evaluated on one device and on a
    (1, 1, 2, 2) mesh."""
    summaries = []
    for mesh in ["1,1,1,1", "1,1,2,2"]:
        out = tmp_path / mesh.replace(",", "")
        args = ["--checkpoint", tiny_demo / "teacher", "--seconds", 3, "--count", 2, "--out", out]
        args += ["--mesh", mesh]
        assert main(["eval", *map(str, args)]) == 0
        report = json.loads((out / "eval.json").read_text())
        assert len(report["streams"]) == 2
        assert all((out / f).is_file() for f in ["eval.md", "adherence.png", "seams.png", "strips.png"])
        summaries.append(report["summary"])
    assert "colour_adherence" in capsys.readouterr().out
    assert np.isfinite(summaries[0]["seam_ratio"]) and np.isfinite(summaries[0]["presence"])
    assert summaries[0]["forward_passes_per_chunk"] == 2 and summaries[0]["seconds_per_chunk"] > 0  # s = 2
    assert summaries[0]["startup_seconds"] > 0
    for key, value in summaries[0].items():
        if key not in ("seconds_per_chunk", "startup_seconds"):  # wall times: a mesh may change them
            assert summaries[1][key] == pytest.approx(value, abs=1e-3, nan_ok=True), key
