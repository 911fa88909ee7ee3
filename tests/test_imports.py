"""The library's import graph, read from the source with the standard library (nothing is imported):
no cycles, the data layer knows no transformer, and PyTorch stays out of the library."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamdit_jax"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Every module name imported anywhere in the file (functions included), except under
    ``if TYPE_CHECKING:``, which never runs."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the library modules its execution imports. Importing ``a.b.c`` runs the packages
    ``a.b`` and ``a`` too, except those the importer is already inside (Python has started them)."""
    graph = {}
    for name, path in MODULES.items():
        deps = set()
        for imported in _runtime_imports(ast.parse(path.read_text())):
            if imported in MODULES:
                deps.update(m for m in [*_ancestors(imported), imported] if m in MODULES)
        graph[name] = deps - {name, *_ancestors(name)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_library_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["streamdit_jax.config"] = graph["streamdit_jax.config"] | {"streamdit_jax.model.dit"}
    assert any({"streamdit_jax.config", "streamdit_jax.model.dit"} <= set(c) for c in cycles(graph))


def test_the_data_layer_knows_no_transformer():
    """Training data restores its VAE through the autoencoder's own restore: no data module imports the
    model package, and neither the autoencoder nor the checkpoint module reaches it. (The text encoders
    that the data layer uses share the model's Linear/LayerNorm layers; that is not the transformer.)"""
    graph = import_graph()
    for module in (m for m in MODULES if m.startswith("streamdit_jax.data")):
        assert not {m for m in graph[module] if m.startswith("streamdit_jax.model")}, module
    for module in ("streamdit_jax.autoencoder", "streamdit_jax.checkpoint"):
        assert not {m for m in reachable(graph, module) if m.startswith("streamdit_jax.model")}, module


def test_streaming_video_io_does_not_pull_in_the_encoder():
    assert "streamdit_jax.data.encode" not in reachable(import_graph(), "streamdit_jax.stream.video")


def test_config_and_model_agree_on_their_choices():
    from streamdit_jax import choices
    from streamdit_jax.model.attention import BACKENDS
    from streamdit_jax.model.dit import REMAT_POLICIES

    assert set(BACKENDS) == choices.ATTENTION_BACKENDS
    assert tuple(REMAT_POLICIES) == choices.REMAT_POLICIES


def test_pytorch_stays_out_of_the_library():
    """torch, diffusers, transformers and sentence-transformers are test-only references, except for the
    PyTorch peer of ``streamdit bench peer``."""
    banned = {"torch", "diffusers", "transformers", "sentence_transformers"}
    for name, path in MODULES.items():
        if name == "streamdit_jax.bench.peer":
            continue
        roots = {i.split(".")[0] for i in _runtime_imports(ast.parse(path.read_text()))}
        assert not roots & banned, (name, roots & banned)
