"""The shelf: artefacts that many tests use (a saved VAE, encoded latents, the tiny demo's trained
models), each built once per test session and then read through its path.

``Shelf.get(name, build)`` returns the folder of artefact ``name``, calling ``build(folder)`` only the
first time. Under pytest-xdist every worker uses the same shelf: a file lock lets the first worker build
while the others wait, then they reuse its folder. A folder counts as built once ``build`` returned (a
marker file is written last), so a build that died half-way is started again, never half-used.
``Shelf.memo(name, make)`` does the same for an object held in memory (one per process, e.g. the MiniLM
encoder). The artefact fixtures call these at every use, so the shelf counts builds and reuses;
``pytest`` prints them at the end of the session.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BUILT = ".built"  # written last: the folder is complete


class Shelf:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.builds: collections.Counter[str] = collections.Counter()  # by this process
        self.reuses: collections.Counter[str] = collections.Counter()
        self.objects: dict[str, Any] = {}

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if the build raises
            yield

    def get(self, name: str, build: Callable[[Path], None]) -> Path:
        """The folder of ``name``, built by ``build(folder)`` if no process of this session has yet."""
        folder = self.root / name
        with self._locked(name):
            if (folder / BUILT).exists():
                self.reuses[name] += 1
                return folder
            shutil.rmtree(folder, ignore_errors=True)  # a build that died half-way
            folder.mkdir()
            build(folder)
            (folder / BUILT).touch()
            self.builds[name] += 1
        return folder

    def memo(self, name: str, make: Callable[[], Any]) -> Any:
        """The object ``name`` of this process, made by ``make()`` on first use."""
        if name in self.objects:
            self.reuses[name] += 1
        else:
            self.objects[name] = make()
            self.builds[name] += 1
        return self.objects[name]

    def report(self) -> list[str]:
        names = sorted(set(self.builds) | set(self.reuses))
        return [f"{n}: built {self.builds[n]}x, reused {self.reuses[n]}x by this process" for n in names]
