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


def _package(module: str) -> str:
    """The package a module's relative imports start from: itself for a package's ``__init__``."""
    return module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]


def _runtime_imports(tree: ast.Module, module: str = "") -> list[str]:
    """Every module name imported anywhere in the file (functions included), except under
    ``if TYPE_CHECKING:``, which never runs. ``from x import y`` names ``x`` and ``x.y`` (``y`` may be a
    submodule); relative imports are resolved against ``module``'s package."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(module).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
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
        for imported in _runtime_imports(ast.parse(path.read_text()), name):
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


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the strongly connected ``component``: its first module, the modules it imports
    on the way round (shortest first), and the first again."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    raise AssertionError(f"{component} is not a cycle")


def test_the_library_has_no_import_cycle():
    """Every import counts, the ones inside functions too (they run when the function does), and the
    packages an import runs on the way (their ``__init__`` re-exports)."""
    graph = import_graph()
    found = [" -> ".join(cycle_path(graph, c)) for c in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_import_reader_resolves_relative_and_submodule_imports():
    tree = ast.parse(
        "from . import plan\nfrom .trainer import Trainer\nfrom .. import config\n"
        "def f():\n    from streamdit_jax.eval import run\n"
    )
    names = set(_runtime_imports(tree, "streamdit_jax.train.flow_task"))
    assert {"streamdit_jax.train.plan", "streamdit_jax.train.trainer", "streamdit_jax.config"} <= names
    assert "streamdit_jax.eval.run" in names
    assert "streamdit_jax.train.plan" in set(
        _runtime_imports(ast.parse("from . import plan"), "streamdit_jax.train")
    )
    graph = import_graph()
    assert "streamdit_jax.commands.plan" in graph["streamdit_jax.cli"]
    assert "streamdit_jax.train.plan" in graph["streamdit_jax.commands.plan"]  # imported inside run()
    assert cycle_path({"a": {"b"}, "b": {"c"}, "c": {"a", "b"}}, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def _is_command_line(module: str) -> bool:
    """The command-line layer: ``streamdit_jax.cli`` and the subcommands it lists."""
    top = ".".join(module.split(".")[:2])
    return top in ("streamdit_jax.cli", "streamdit_jax.commands")


def test_only_the_cli_imports_the_commands():
    """The commands call the library; the library never calls back into them (nor into cli.py)."""
    for name, path in MODULES.items():
        if _is_command_line(name):
            continue
        imported = _runtime_imports(ast.parse(path.read_text()), name)
        assert not [m for m in imported if _is_command_line(m)], name


def test_argument_parsing_stays_in_the_command_line_layer():
    """Library functions take values, not ``argparse.Namespace``s: only cli.py and commands/ use argparse."""
    users = {
        name
        for name, path in MODULES.items()
        if "argparse" in {i.split(".")[0] for i in _runtime_imports(ast.parse(path.read_text()), name)}
    }
    assert {m for m in users if not _is_command_line(m)} == set()
    assert "streamdit_jax.cli" in users  # the check sees argparse where it is


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


# The layers of docs/architecture.md, top (imported by all) to bottom: a module belongs to the layer of the
# longest prefix listed, and imports only from its own layer and the ones before it.
LAYERS = (
    ("core", ("choices", "config", "sharding", "storage", "distributed", "checkpoint")),
    ("components", ("model", "flow", "autoencoder", "text", "convert", "data")),
    ("jobs", ("train", "distill", "stream", "eval", "bench", "summary",
              "autoencoder.training", "autoencoder.decoder_training", "data.training")),
    ("applications", ("studio", "demo")),
    ("command line", ("cli", "commands")),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of ``module``'s layer (the longest listed prefix wins)."""
    best, rank = "", None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            full = f"streamdit_jax.{prefix}"
            if (module == full or module.startswith(full + ".")) and len(full) > len(best):
                best, rank = full, i
    if rank is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a layer below its own, as 'importer (layer) -> imported (layer)'."""
    return [
        f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})"
        for m in sorted(graph) if m != "streamdit_jax"
        for d in sorted(graph[m]) if d != "streamdit_jax" and layer_of(d) > layer_of(m)
    ]  # fmt: skip


def test_layers_import_only_downwards():
    upward = upward_imports(import_graph())
    assert not upward, "imports against the layers of docs/architecture.md:\n" + "\n".join(upward)
    assert layer_of("streamdit_jax.autoencoder.training") > layer_of("streamdit_jax.autoencoder.vae")


def test_the_layer_check_sees_an_upward_import():
    graph = import_graph()
    graph["streamdit_jax.model.dit"] = graph["streamdit_jax.model.dit"] | {"streamdit_jax.stream.streamer"}
    assert upward_imports(graph) == [
        "streamdit_jax.model.dit (components) -> streamdit_jax.stream.streamer (jobs)"
    ]
