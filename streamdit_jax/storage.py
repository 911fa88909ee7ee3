"""Where runs live: one path type for local folders and object stores (``gs://``, ``s3://``).

:func:`workpath` turns what a user typed into an ``etils.epath.Path``: URLs stay URLs (never
``Path.resolve()``, which would make ``gs://b/run`` a local ``./gs:/b/run``), local paths become absolute.
Orbax, TensorBoard and every JSON or text file the project writes go through it.

Two things object stores lack, handled here:
- Appending: :func:`append_text` rewrites the object (logs are small).
- Local-file libraries: ArrayRecord and PyAV read and write local files, so :func:`local_copy` fetches
  a bucket folder's files into a local cache once, and :func:`upload` sends a finished local file up.

Orbax 0.12 writes arrays to ``gs://`` natively but routes ``s3://`` to its local ``file`` driver;
:func:`orbax_options` points those specs at TensorStore's ``s3`` driver (endpoint from
``AWS_ENDPOINT_URL``, as boto3 reads it) and commits steps with a marker file, since S3 cannot rename
a folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from etils import epath

from streamdit_jax.config import ConfigError

URL_SCHEMES = ("gs", "s3")
CACHE_ENV = "STREAMDIT_CACHE"  # where bucket files that need a local copy are kept


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def workpath(path: str | os.PathLike) -> epath.Path:
    """A local path (made absolute, symlinks kept) or a ``gs://`` / ``s3://`` URL, as an epath.Path."""
    text = os.fspath(path) if not isinstance(path, epath.Path) else str(path)
    if is_url(text):
        scheme = text.split("://", 1)[0]
        if scheme not in URL_SCHEMES:
            raise ValueError(
                f"{text}: {scheme}:// is not a supported location; use a local folder, gs://bucket/... "
                "or s3://bucket/..."
            )
        if not urlparse(text).netloc:
            raise ValueError(f"{text}: the URL names no bucket (expected {scheme}://bucket/folder)")
        _check_backend(scheme)
        _fresh_listings()
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def local_input(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a local Path; a ConfigError naming ``what`` for a bucket URL (read by PyAV, which
    reads local files: raw videos, a video-to-video input)."""
    if is_url(path):
        raise ConfigError(
            f"{what} {path}: videos are read from local disk. Fix: copy them to a local folder, or encode "
            "them into shards with `streamdit encode` (data.source=latents reads a bucket)"
        )
    return Path(path)


def append_text(path: epath.Path, text: str) -> None:
    """Appends ``text`` to a file; on an object store the object is rewritten whole."""
    if is_url(path):
        path.write_text((path.read_text() if path.exists() else "") + text)
    else:
        with open(path, "a") as f:
            f.write(text)


def write_with(path: epath.Path, save: Callable[[io.BytesIO], Any]) -> None:
    """Writes what ``save(buffer)`` puts in a buffer to ``path`` (figures, images: any location)."""
    buffer = io.BytesIO()
    save(buffer)
    path.write_bytes(buffer.getvalue())


def upload(local: str | os.PathLike, target: epath.Path) -> None:
    """Copies a finished local file to ``target`` (any location), streaming, then removes the local one."""
    with open(local, "rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 16 << 20)
    os.remove(local)


def local_copy(folder: epath.Path) -> Path:
    """``folder`` itself when local; for a bucket folder, a local cache holding exactly its files (each
    fetched once: a file of the same size is not fetched again; encode never rewrites a finished shard)."""
    if not is_url(folder):
        return Path(folder)
    root = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "streamdit"))
    cache = root / "buckets" / hashlib.sha1(str(folder).encode()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    remote_files = [p for p in folder.iterdir() if not p.is_dir()]
    for stale in set(p.name for p in cache.iterdir()) - {p.name for p in remote_files}:
        (cache / stale).unlink()  # gone from the bucket
    for remote in remote_files:
        local = cache / remote.name
        if local.exists() and local.stat().st_size == remote.stat().length:
            continue
        with remote.open("rb") as src, tempfile.NamedTemporaryFile(dir=cache, delete=False) as dst:
            shutil.copyfileobj(src, dst, 16 << 20)
        os.replace(dst.name, local)
    return cache


BACKENDS = {"gs": ("gcsfs", "tensorflow"), "s3": ("s3fs",)}  # epath reads a scheme through either


@functools.cache
def _check_backend(scheme: str) -> None:
    if not any(importlib.util.find_spec(name) for name in BACKENDS[scheme]):
        raise ImportError(
            f"{scheme}:// paths are read and written through {BACKENDS[scheme][0]}, which is not installed. "
            "Fix: pip install 'streamdit-jax[cloud]'"
        )


@functools.cache
def _fresh_listings() -> None:
    """fsspec's object-store file systems cache folder listings, which miss what other processes and
    TensorStore write (a step another worker saved): every listing here asks the store."""
    import fsspec.config

    for scheme in URL_SCHEMES:
        fsspec.config.conf.setdefault(scheme, {}).setdefault("use_listings_cache", False)


def orbax_options(directory: epath.Path) -> dict[str, Any]:
    """Extra ``CheckpointManagerOptions`` for ``directory``: on ``s3://``, commit-file atomicity."""
    if not str(directory).startswith("s3://"):
        return {}
    return {"atomicity_options": _orbax_s3()}


@functools.cache
def _orbax_s3() -> Any:
    """Teaches Orbax's TensorStore specs the ``s3://`` scheme (Orbax 0.12 knows only ``gs://``); returns
    the commit-file AtomicityOptions."""
    try:
        from orbax.checkpoint import options
        from orbax.checkpoint._src.path import gcs_utils
        from orbax.checkpoint._src.serialization import tensorstore_utils as ts_utils

        normalize, use_remote, gcs_spec = (
            ts_utils._normalize_path, ts_utils._use_gcs_driver, gcs_utils.get_kvstore_for_gcs
        )  # fmt: skip
        atomicity = options.AtomicityOptions(mode=options.AtomicityMode.COMMIT_FILE)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(
            "s3:// work dirs rely on orbax-checkpoint 0.12's TensorStore spec builders, which this Orbax "
            f"version lacks ({e}); use a gs:// or local (or mounted) folder, or orbax-checkpoint 0.12.x"
        ) from e

    def spec(path: str) -> dict[str, Any]:
        if not path.startswith("s3://"):
            return gcs_spec(path)
        url = urlparse(path)
        out = {"driver": "s3", "bucket": url.netloc, "path": url.path.lstrip("/")}
        if os.environ.get("AWS_ENDPOINT_URL"):
            out["endpoint"] = os.environ["AWS_ENDPOINT_URL"]
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            out["aws_region"] = region
        return out

    def normalized(path: str) -> str:
        out = normalize(path)
        return "s3://" + out.removeprefix("s3:/") if out.startswith("s3:/") else out

    ts_utils._normalize_path = normalized
    ts_utils._use_gcs_driver = lambda directory: directory.startswith("s3://") or use_remote(directory)
    gcs_utils.get_kvstore_for_gcs = spec
    return atomicity
