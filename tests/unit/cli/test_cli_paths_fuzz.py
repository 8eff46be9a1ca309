"""Issue 21: "29 inputs gave a wrong exit code and 14 the catch-all 'unexpected …' line". A fuzz pass over every
option and argument of every command found the class left: a value the operating system cannot take as a path
(a NUL character: ValueError; a name longer than the file system allows: ENAMETOOLONG, which Path.exists and
is_dir raise instead of answering) reached code that asked the system about it.

The rule, checked over the whole command line (enumerated from the typer app, so a new option is covered):
any option or argument given such a value ends with one clear line and a documented exit code (2 for bad input),
never "unexpected …", never a traceback.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command

from fwsetup.cli import app, main

NEEDS_NAME = {"plan", "install", "build", "smoke"}
SAFE = {"install": ["--dry-run"], "build": ["--dry-run"]}
VALUES = {"nul": "a\0b", "too-long": "x" * 5000, "long-name": "/tmp/" + "y" * 300 + "/z"}


def _commands() -> Iterator[tuple[list[str], Any]]:
    root: Any = get_command(app)  # typer's own click: duck-typed
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            for sub, subcmd in cmd.commands.items():
                yield [name, sub], subcmd
        else:
            yield [name], cmd


def _cases() -> Iterator[tuple[str, list[str]]]:
    for words, cmd in _commands():
        base = [*words, *(["pytorch"] if words[0] in NEEDS_NAME else [])]
        for param in cmd.params:
            kind = param.param_type_name
            if kind == "option" and not param.is_flag and not param.count and param.opts[0].startswith("--"):
                for vname, value in VALUES.items():
                    extra = (
                        ["--python", "/nonexistent/python"]
                        if words[0] == "smoke" and param.opts[0] != "--python"
                        else []
                    )
                    yield (
                        f"{' '.join(words)} {param.opts[0]} {vname}",
                        [*base, param.opts[0], value, *extra, *SAFE.get(words[0], [])],
                    )
            elif kind == "argument" and param.name not in ("name",):
                for vname, value in VALUES.items():
                    yield f"{' '.join(words)} {param.name} {vname}", [*words, value]
    for vname, value in VALUES.items():
        yield f"--recipes {vname}", ["--recipes", value, "plan", "pytorch"]


CASES = list(_cases())


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_a_value_that_is_no_path_is_bad_input_never_unexpected(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    text = out.getvalue() + err.getvalue()
    assert "unexpected" not in text and "Traceback" not in text, text[-600:]
    assert code in (0, 1, 2, 3, 4, 5, 6, 7), (code, text[-600:])
    if code != 0:
        assert "rror" in err.getvalue(), text[-600:]  # "error: …" or click's "Error: Invalid value …"


def test_the_enumeration_covers_the_path_options() -> None:
    names = {c[0].rsplit(" ", 1)[0] for c in CASES}
    for expected in ("install --env", "install --wheelhouse", "build --wheelhouse", "plan --host-profile",
                     "doctor --fleet", "matrix --out-dir", "profile --output", "recipes validate directory"):  # fmt: skip
        assert expected in names, sorted(names)
