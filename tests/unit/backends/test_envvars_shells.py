"""Activation in every shell venv/uv write a script for (issue 23: `source ENV/bin/activate` is how a person gets a
shell with the env's settings, so fwsetup has no `shell` command): fish's activate.fish and csh's activate.csh are
sourced by the real shells where they are installed (CI installs fish and tcsh), with a value holding quotes, `$`
and `!`; PowerShell (not packaged by Debian) is checked by its script's text.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from env_settings import CLEAN, VALUE, installed, needs_uv

from fwsetup.plan import Plan

__all__ = ["installed"]

SHOW = "import os; print(os.environ.get('FAKEFW_FLAGS'))"


def _shell(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"no {name} here (apt-get install {name}; CI installs it)")
    return exe


@needs_uv
def test_fish_activation_sets_and_deactivate_unsets(installed: tuple[Path, Plan, dict]) -> None:
    target = installed[0]
    fish = _shell("fish")
    script = (
        f'source {target}/bin/activate.fish; and printf \'%s\\n\' "$FAKEFW_FLAGS"; and python -c "{SHOW}"; '
        "and deactivate; and if set -q FAKEFW_FLAGS; echo after:set; else; echo after:unset; end"
    )
    out = subprocess.run(
        [fish, "--no-config", "-c", script], env=CLEAN, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.splitlines() == [VALUE, VALUE, "after:unset"], out.stderr
    mine = subprocess.run([fish, "--no-config", "-c", script], env={**CLEAN, "FAKEFW_FLAGS": "mine"},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert mine.stdout.splitlines() == ["mine", "mine", "after:set"], mine.stderr


@needs_uv
def test_csh_activation_sets_the_value_as_written(installed: tuple[Path, Plan, dict]) -> None:
    target = installed[0]
    tcsh = _shell("tcsh")
    script = f'source {target}/bin/activate.csh && printenv FAKEFW_FLAGS && python -c "{SHOW}"'
    out = subprocess.run([tcsh, "-f", "-c", script], env=CLEAN, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == [VALUE, VALUE], out.stderr
    mine = subprocess.run([tcsh, "-f", "-c", script], env={**CLEAN, "FAKEFW_FLAGS": "mine"},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert mine.stdout.splitlines() == ["mine", "mine"], mine.stderr
    # uv writes no activate.csh for a relocatable venv: fwsetup's names the env's final path (never the staging
    # folder), sets the prompt where there is one, and deactivate puts PATH back
    lines = ['set prompt="% "', 'set before="$PATH"', f"source {target}/bin/activate.csh", "printenv VIRTUAL_ENV",
             'echo "$prompt"', "deactivate", 'if ("$PATH" == "$before") echo restored']  # fmt: skip
    script = (
        target.parent / "check.csh"
    )  # a file: csh expands an alias defined on the same line of -c only later
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run([tcsh, "-f", str(script)], env=CLEAN, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == [str(target), f"({target.name}) % ", "restored"], out.stderr


@needs_uv
def test_powershell_activation_carries_the_block(installed: tuple[Path, Plan, dict]) -> None:
    target = installed[0]
    scripts = [p for p in (target / "bin").iterdir() if p.name.lower() == "activate.ps1"]
    assert scripts, sorted(p.name for p in (target / "bin").iterdir())
    for ps in scripts:
        text = ps.read_text()
        assert (
            "if (-not (Test-Path env:FAKEFW_FLAGS)) { $env:FAKEFW_FLAGS = 'blas.ldflags= it''s $HOME!'"
            in text
        )
        assert "Remove-Item env:FAKEFW_FLAGS" in text  # deactivate removes only what activation set
