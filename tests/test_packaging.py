"""The package's metadata: its licence file matches pyproject, and its accelerator extras name extras
that the installed jax declares."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_licence_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole licence, not a stub


def test_accelerator_extras_name_jax_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    declared = set(importlib.metadata.metadata("jax").get_all("Provides-Extra"))
    for name in ("cuda", "tpu"):
        (requirement,) = extras[name]
        jax_extra = re.fullmatch(r"jax\[([\w-]+)\].*", requirement).group(1)
        assert jax_extra in declared, (name, requirement, sorted(declared))
    assert any(r.startswith("tensorboard") for r in extras["tensorboard"])
