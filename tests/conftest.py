"""Tests run on the CPU with 8 fake devices (before any JAX backend is created).

Where the suite's time goes is XLA:CPU compilation (docs/testing.md), so:

- compiled programs go to a persistent compilation cache for the session, shared with the subprocesses
  that tests start and with pytest-xdist workers (``JAX_COMPILATION_CACHE_DIR``): a program compiled by
  one test is loaded, not compiled, by the next. The cache is keyed by the program, so it never changes
  a result;
- XLA's CPU backend optimises at level 1 (``--xla_backend_optimization_level=1``): half the compile
  time of the default level, and the same speed for the tiny models the tests run;
- artefacts that many tests use (a saved VAE, encoded latents, the tiny demo's trained models) are
  built once per session on the shelf (``artefacts.Shelf``) and reached through the fixtures below.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="streamdit-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1"
    ).lstrip()

from pathlib import Path

import jax
import pytest
from artefacts import Shelf
from helpers import LATENT_SCENES, TINY_DEMO

jax.config.update("jax_num_cpu_devices", 8)

pytest_plugins = ["timing"]


def pytest_collection_modifyitems(config, items):
    on_gpu = jax.default_backend() == "gpu"
    for item in items:
        if "gpu" in item.keywords and not on_gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))


# --- the shelf


_SHELVES: list[Shelf] = []


def _shelf_root(basetemp: Path) -> Path:
    """One folder for the whole session: pytest-xdist workers' base temps are subfolders of the run's."""
    return (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / "shelf"


@pytest.fixture(scope="session")
def shelf(tmp_path_factory) -> Shelf:
    _SHELVES.append(Shelf(_shelf_root(tmp_path_factory.getbasetemp())))
    return _SHELVES[0]


def pytest_sessionfinish(session):
    for s in _SHELVES:  # each process writes its counts; the one that reports reads them all
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        (s.root / f"report-{name}.txt").write_text("".join(f"{line}\n" for line in s.report()))


def pytest_terminal_summary(terminalreporter, config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    root = _shelf_root(config._tmp_path_factory.getbasetemp())
    reports = sorted(root.glob("report-*.txt")) if root.is_dir() else []
    if reports:
        terminalreporter.section("shelf: artefacts built once and reused")
        for report in reports:
            for line in report.read_text().splitlines():
                terminalreporter.write_line(f"[{report.stem[7:]}] {line}")


@pytest.fixture
def minilm(shelf):
    """The MiniLM text encoder of tiny and small (one per process)."""
    from streamdit_jax.config import load
    from streamdit_jax.text import build_encoder

    return shelf.memo("minilm", lambda: build_encoder(load("tiny", num_devices=1).text))


@pytest.fixture
def tiny_vae(shelf) -> Path:
    """An untrained tiny VAE with its measured latent statistics (so latents have unit scale), saved."""

    def build(folder: Path) -> None:
        from flax import nnx

        from streamdit_jax.checkpoint import save_params
        from streamdit_jax.config import load
        from streamdit_jax.data.training import preset_vae

        cfg = load("tiny", num_devices=1)
        save_params(folder / "ckpt", cfg.autoencoder, nnx.state(preset_vae(cfg)))

    return shelf.get("tiny_vae", build) / "ckpt"


@pytest.fixture
def random_tiny_model(shelf, minilm, tiny_vae):
    """A StreamModel of tiny with every parameter random (no zero-initialised head), the shelf's
    untrained VAE and MiniLM (one per process)."""

    def make():
        import jax
        from helpers import randomize

        from streamdit_jax.autoencoder import restore_autoencoder
        from streamdit_jax.config import load
        from streamdit_jax.model import init_params, single_device_mesh
        from streamdit_jax.stream import StreamModel

        cfg = load("tiny", num_devices=1)
        graphdef, params = init_params(cfg.model, jax.random.key(0))
        params = randomize(params, scale=0.05)
        return StreamModel(cfg, graphdef, params, restore_autoencoder(tiny_vae), minilm, single_device_mesh())

    return shelf.memo("random_tiny_stream_model", make)


@pytest.fixture
def tiny_latents(shelf, tiny_vae, minilm) -> Path:
    """LATENT_SCENES shapes training scenes encoded by ``tiny_vae`` (``data.source=latents`` shards)."""

    def build(folder: Path) -> None:
        from streamdit_jax.autoencoder import restore_autoencoder
        from streamdit_jax.config import load
        from streamdit_jax.data.encode import encode_shapes

        cfg = load("tiny", num_devices=1)
        vae = restore_autoencoder(tiny_vae)
        encode_shapes(cfg, LATENT_SCENES, folder / "shards", vae, minilm, progress=False)

    return shelf.get("tiny_latents", build) / "shards"


@pytest.fixture
def tiny_demo(shelf) -> Path:
    """The work dir of the shortened demo (TINY_DEMO): autoencoder, latents, teacher, student, eval; its
    printed output in ``demo.log``. Read it; copy it before changing anything."""

    def build(folder: Path) -> None:
        import contextlib

        from streamdit_jax.cli import main

        with open(folder / "demo.log", "w") as log, contextlib.redirect_stdout(log):
            code = main(["demo", "--workdir", str(folder / "run"), *TINY_DEMO])
        assert code == 0, (folder / "demo.log").read_text()[-3000:]

    return shelf.get("tiny_demo", build) / "run"


# --- an S3-compatible server on 127.0.0.1 (moto), for work dirs in a bucket


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """The endpoint of a local S3-compatible server: the one `.ci/run` started (STREAMDIT_TEST_S3), or
    moto's server mode started here for the session. The AWS variables point this process (boto3,
    s3fs, TensorStore) and the `streamdit` subprocesses it starts at it, with dummy credentials."""
    import socket
    import subprocess
    import sys
    import time

    endpoint = os.environ.get("STREAMDIT_TEST_S3")
    server = None
    if not endpoint:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        endpoint = f"http://127.0.0.1:{port}"
    host, port = endpoint.removeprefix("http://").split(":")
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection((host, int(port)), 0.5).close()
            break
        except OSError:
            assert time.time() < deadline, f"no S3-compatible server answers at {endpoint}"
            time.sleep(0.1)
    os.environ.update(S3_ENV | {"AWS_ENDPOINT_URL": endpoint, "STREAMDIT_CACHE": tempfile.mkdtemp()})
    yield endpoint
    if server is not None:
        server.terminate()
        server.wait(10)


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


@pytest.fixture
def bucket(s3_endpoint, request) -> str:
    """A new, empty bucket on the local S3 server: its URL, ``s3://NAME``."""
    import re
    import uuid

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8]
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"
