"""The --help of the commands added after install (envs, remove, sync, job) says what their exit codes mean: a
user scripting them reads it there, not in the README."""

from __future__ import annotations

import re

import pytest

from fwsetup.cli import main


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        ("envs", ["0"]),
        ("remove", ["0", "1", "2"]),
        ("sync", ["0", "2", "3", "5", "6", "7"]),
        ("job", ["0", "2", "3"]),
    ],
)
def test_help_names_the_exit_codes(
    command: str, codes: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code = main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0
    said = re.search(r"Exit (\d.*?)(?:\.|$)", text)
    assert said, f"`fwsetup {command} --help` names no exit code: {text[:300]}"
    for c in codes:
        assert re.search(rf"\b{c}\b", said.group(1)), (command, c, said.group(1))
