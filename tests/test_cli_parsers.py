"""Every ``streamdit`` command line the docs show parses with today's parser: the examples are read from
README.md and docs/*.md at test time (lines that start with ``streamdit``, continuations joined, ``# ...``
comments dropped), so a renamed or removed option fails here before a reader meets it. Nothing runs:
only ``cli.parse_args``, the parser ``main`` uses."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from streamdit_jax import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = ("streamdit", ".venv/bin/streamdit")  # how a command line in the docs starts
# Placeholders the docs put where a number goes ("--guidance X  # X = 1, 3, 5", "[--cfg S]"): a sample value.
PLACEHOLDERS = {"X": "1", "S": "3"}


def _lines(path: Path) -> list[tuple[str, str]]:
    """(where, text) of each line of ``path`` that starts a ``streamdit`` command, its backslash
    continuations joined."""
    found, pending = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        elif line.lstrip().startswith(tuple(p + " " for p in PROGRAMS)):
            pending = (f"{path.name}:{number}", line.strip())
        if pending is not None and not pending[1].endswith("\\"):
            found.append(pending)
            pending = None
        elif pending is not None:
            pending = (pending[0], pending[1][:-1])
    return found


def _arguments(text: str) -> list[list[str]]:
    """The argument lists of the ``streamdit`` commands in ``text`` (``a && b`` is two). Optional parts
    in brackets are kept (``[--resume]`` -> ``--resume``); a group's closing ``...]`` (more of the same)
    and a whole-word shell variable (``$S``: overrides the docs set above) are dropped; placeholders get
    a sample value."""
    commands, tokens = [], []
    for token in [*shlex.split(text, comments=True), "&&"]:
        if token == "&&":
            if tokens and tokens[0] in PROGRAMS:
                commands.append(tokens[1:])
            tokens = []
            continue
        if token == "...]" or (token.startswith("$") and token[1:].isidentifier()):
            continue
        token = token.removeprefix("[").removesuffix("]")
        tokens.append(PLACEHOLDERS.get(token, token))
    return commands


EXAMPLES = [
    pytest.param(arguments, id=f"{where} {' '.join(arguments[:1])}")
    for path in DOCS
    for where, text in _lines(path)
    for arguments in _arguments(text)
]


def test_the_docs_have_examples_to_check():
    assert len(EXAMPLES) > 50, len(EXAMPLES)


def test_every_subcommand_has_a_documented_example():
    documented = {param.values[0][0] for param in EXAMPLES}
    assert {name for name, _ in cli.COMMANDS} - documented == set()
    assert documented - {name for name, _ in cli.COMMANDS} == set()  # no example of a removed command


@pytest.mark.parametrize("arguments", EXAMPLES)
def test_the_documented_command_line_parses(arguments):
    try:
        args, overrides = cli.parse_args(arguments)
    except SystemExit as e:
        pytest.fail(f"streamdit {shlex.join(arguments)}: the parser exits ({e.code}); see stderr above")
    assert args.command == arguments[0]
    assert all("=" in o for o in overrides), overrides
    assert callable(args.fn)


def test_the_readme_examples_are_checked():
    """README's CLI block is the first place a reader looks: each of its lines is among the examples."""
    readme = [arguments for _, text in _lines(ROOT / "README.md") for arguments in _arguments(text)]
    assert len(readme) >= 25
    assert {a[0] for a in readme} == {name for name, _ in cli.COMMANDS}


def test_optional_parts_and_comments_are_read_as_the_docs_mean_them():
    assert _arguments("streamdit eval --checkpoint c [--seconds 60] [--videos]   # shapes metrics") == [
        ["eval", "--checkpoint", "c", "--seconds", "60", "--videos"]
    ]
    assert _arguments(
        'streamdit demo --config small:ae=patch $S && .venv/bin/streamdit serve --port "7860"'
    ) == [
        ["demo", "--config", "small:ae=patch"],
        ["serve", "--port", "7860"],
    ]
    assert _arguments("python3 -m venv .venv && streamdit demo [--config.seed=1 ...]") == [
        ["demo", "--config.seed=1"]
    ]
    assert _arguments('streamdit stream --prompt "..."') == [["stream", "--prompt", "..."]]


@pytest.mark.parametrize("command", ["stream", "eval", "bench"])
def test_cfg_is_a_deprecated_alias_of_guidance(command, capsys):
    first = ["bench", "rollout", "--config", "tiny"] if command == "bench" else [command, "--checkpoint", "c"]
    args, _ = cli.parse_args([*first, "--cfg", "2"])
    assert args.guidance == 2.0
    assert "note: --cfg is deprecated and goes in the next release; use --guidance" in capsys.readouterr().err
    args, _ = cli.parse_args([*first, "--guidance", "2"])
    assert args.guidance == 2.0
    assert capsys.readouterr().err == ""


def test_an_override_with_a_space_is_a_usage_error_with_a_hint(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse_args(["train", "--config", "tiny", "--workdir", "w", "--config.train.steps", "5"])
    assert e.value.code == 2
    assert "(write overrides as --config.train.steps=VALUE)" in capsys.readouterr().err


def test_every_command_module_has_the_command_interface():
    for name, module in cli.COMMANDS:
        assert module.__doc__ and isinstance(module.HELP, str), name
        assert callable(module.add_arguments) and callable(module.run), name


@pytest.mark.parametrize("command", ["stream", "eval"])
def test_startup_cfg_is_a_deprecated_alias_of_startup_guidance(command, capsys):
    args, _ = cli.parse_args([command, "--checkpoint", "c", "--startup-cfg", "3"])
    assert args.startup_guidance == 3.0
    assert "note: --startup-cfg is deprecated and goes in the next release; use --startup-guidance" in (
        capsys.readouterr().err
    )
