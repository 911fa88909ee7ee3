"""The shelf (tests/artefacts.py): an artefact is built once per session, also across processes (the
pytest-xdist workers), and a half-built one is built again rather than used."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from artefacts import BUILT, Shelf


def test_a_second_use_reuses_the_first_build(tmp_path):
    shelf, calls = Shelf(tmp_path), []

    def build(folder):
        calls.append(folder)
        (folder / "weights").write_text("trained")

    first = shelf.get("model", build)
    second = shelf.get("model", build)
    assert first == second and len(calls) == 1 and (second / "weights").read_text() == "trained"
    assert shelf.builds["model"] == 1 and shelf.reuses["model"] == 1
    assert shelf.memo("encoder", object) is shelf.memo("encoder", object)
    assert "model: built 1x, reused 1x by this process" in shelf.report()


def test_a_build_that_died_half_way_is_built_again(tmp_path):
    shelf = Shelf(tmp_path)

    def crash(folder):
        (folder / "partial").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        shelf.get("model", crash)
    assert not (tmp_path / "model" / BUILT).exists()
    folder = shelf.get("model", lambda f: (f / "weights").write_text("whole"))
    assert sorted(p.name for p in folder.iterdir()) == [BUILT, "weights"]


def test_processes_sharing_a_shelf_build_once(tmp_path):
    """Two processes ask for the same artefact at the same time (as two xdist workers do): one builds
    (slowly), the other waits for it and reuses its folder."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from artefacts import Shelf

        def build(folder):
            with open({str(tmp_path / "builds.log")!r}, "a") as log:
                log.write("built\\n")
            time.sleep(1.0)
            (folder / "weights").write_text("trained")

        folder = Shelf(__import__("pathlib").Path({str(tmp_path / "shelf")!r})).get("model", build)
        print((folder / "weights").read_text())
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=60)[0].strip() for w in workers]
    assert [w.returncode for w in workers] == [0, 0] and outputs == ["trained", "trained"]
    assert (tmp_path / "builds.log").read_text().splitlines() == ["built"]


def test_the_session_reuses_a_real_artefact(shelf, tiny_vae):
    """The second use of the session's tiny VAE is a hit: asking for it again never calls a build."""
    again = shelf.get("tiny_vae", lambda folder: pytest.fail("tiny_vae was built a second time"))
    assert again / "ckpt" == tiny_vae and shelf.reuses["tiny_vae"] >= 1
