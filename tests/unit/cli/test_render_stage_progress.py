"""The install's progress display: its opening lines (what goes where) come first, once, whether or not any
progress follows; rich is loaded only when something is shown (install starts uv before that)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from fwsetup.cli.render import StageProgress


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_header_comes_first_and_once(capsys: pytest.CaptureFixture[str]) -> None:
    made: list[int] = []

    def header() -> list[str]:
        made.append(1)
        return ["JAX 0.10.2 (cpu) → /e (venv)", "[yellow]note:[/] a note"]

    with StageProgress(header=header) as progress:
        assert not made, "nothing is shown before the first progress message"
        progress("resolve", "creating the environment")
        progress("download", "downloading 6 packages [not markup]")
    assert made == [1]
    assert _lines(capsys.readouterr().err) == [
        "JAX 0.10.2 (cpu) → /e (venv)",
        "note: a note",
        "resolve: creating the environment",
        "download: downloading 6 packages [not markup]",
    ]


def test_header_is_shown_when_no_progress_came(capsys: pytest.CaptureFixture[str]) -> None:
    # "already installed: same plan" returns before any stage: the opening line still says what was asked
    with StageProgress(header=lambda: ["JAX 0.10.2 (cpu) → /e (venv)"]):
        pass
    assert _lines(capsys.readouterr().err) == ["JAX 0.10.2 (cpu) → /e (venv)"]


def test_header_is_shown_before_an_error_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), StageProgress(header=lambda: ["JAX → /e"]):
        raise RuntimeError("boom")
    assert _lines(capsys.readouterr().err) == ["JAX → /e"]


def test_rich_is_not_loaded_until_something_is_shown() -> None:
    code = (
        "import sys\n"
        "from fwsetup.cli.render import StageProgress\n"
        "p = StageProgress(header=lambda: ['x']).__enter__()\n"
        "before = 'rich.console' in sys.modules\n"
        "p('resolve', 'y')\n"
        "print(before, 'rich.console' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"False True\s*", out), out


def test_a_long_line_stays_one_line_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    # a CI log or a pipe: a message is grepped and copied whole, not cut at 80 columns
    message = "resolving " + " ".join(f"package{i}==1.{i}" for i in range(20))
    with StageProgress() as progress:
        progress("resolve", message)
    assert _lines(capsys.readouterr().err) == [f"resolve: {message}"]
