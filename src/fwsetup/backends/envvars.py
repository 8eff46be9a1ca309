"""The environment carries its own settings: the plan's run-time variables (a build's `env`: THEANO_FLAGS,
KERAS_BACKEND, ...) written into a venv or conda prefix, so that whatever runs there sees them as the smoke
test did (DESIGN.md "After install, beyond the harness").

- Every interpreter of the env: `_fwsetup_env.pth` in site-packages imports `_fwsetup_env` at start-up
  (site.py runs the `import` lines of .pth files), a stdlib-only module that sets each variable with
  os.environ.setdefault: a value the user set explicitly wins. Child processes inherit them.
- Activated shells: the activation scripts venv/uv write (bin/activate for bash/zsh/sh, activate.fish,
  activate.csh, activate.ps1/Activate.ps1) export each variable the user has not set, and their `deactivate`
  removes only the ones activation set.
- `fwsetup run ENV -- CMD` reads them back (fwsetup/envrun.py, where the module's format lives).

Values are written as data: JSON in the module, each shell's own single-quoting in the scripts; a name that
is not an environment variable name, or a value with a control character, is refused (a plan may come from a
file). Writing twice replaces the earlier block: the same env never carries two sets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fwsetup import envrun
from fwsetup.errors import UsageError

if TYPE_CHECKING:
    from fwsetup.plan import Plan

MODULE, PTH, _VARS_LINE = envrun.MODULE, envrun.PTH, envrun.VARS_LINE  # the format: fwsetup/envrun.py
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_BEGIN = "# >>> fwsetup: the framework's run-time settings (the plan's env) >>>"
_END = "# <<< fwsetup <<<"

_MODULE_TEXT = '''"""fwsetup: the run-time settings this environment's framework needs (its plan's env), set at interpreter
start by {pth}. A variable already set (by you) keeps its value. Written by fwsetup; do not edit."""

import os

{vars_line}{data}

for _name, _value in VARIABLES.items():
    os.environ.setdefault(_name, _value)
del _name, _value
'''


def runtime_env(plan: Plan) -> dict[str, str]:
    """Everything the plan says the framework needs at run time: its env, and its smoke spec's (the same
    for a plan made here; a plan from a file may differ)."""
    return {**plan.env, **(plan.smoke.env if plan.smoke is not None else {})}


def check(variables: Mapping[str, str]) -> None:
    """UsageError unless every name is an environment variable name and no value holds a control character."""
    for name, value in variables.items():
        if not _NAME.fullmatch(name):
            msg = f"the plan's env name {name!r} is not an environment variable name (letters, digits and _)."
            raise UsageError(msg)
        if not value.isprintable():
            msg = f"the plan's env value of {name} holds a control character: {value!r}"
            raise UsageError(msg)


def site_packages(prefix: Path) -> Path | None:
    """The prefix's site-packages (lib/pythonX.Y/site-packages, or Lib/site-packages on Windows)."""
    found = envrun.site_packages(str(prefix))
    return Path(found) if found is not None else None


def write(prefix: Path, variables: Mapping[str, str]) -> list[str]:
    """Write `variables` into the env at `prefix` (module + .pth, activation scripts); the files written,
    relative to the prefix. With no variables, what an earlier write left is removed."""
    check(variables)
    changed: list[str] = []
    site = site_packages(prefix)
    if site is not None:
        module, pth = site / f"{MODULE}.py", site / PTH
        if variables:
            data = json.dumps(dict(sorted(variables.items())), ensure_ascii=True)
            module.write_text(_MODULE_TEXT.format(pth=PTH, vars_line=_VARS_LINE, data=data))
            pth.write_text(f"import {MODULE}\n")
            changed += [str(module.relative_to(prefix)), str(pth.relative_to(prefix))]
        else:
            for p in (module, pth):
                if p.exists():
                    p.unlink()
                    changed.append(str(p.relative_to(prefix)))
    bindir = prefix / ("Scripts" if os.name == "nt" else "bin")
    for name, shell in _SCRIPTS.items():
        script = bindir / name
        if not script.is_file() or script.is_symlink():
            continue
        text = script.read_text()
        new = _edit(_strip(text), shell, variables)
        if new != text:
            script.write_text(new)
            changed.append(str(script.relative_to(prefix)))
    return changed


def read(prefix: Path) -> dict[str, str]:
    """The variables the env at `prefix` carries ({} when none): what write() put in its module."""
    return envrun.read(str(prefix))


# -- activation scripts ------------------------------------------------------------------------------------


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _csh_quote(value: str) -> str:
    # csh expands ! (history) even inside single quotes: a backslash keeps it literal
    return "'" + value.replace("'", "'\\''").replace("!", "\\!") + "'"


def _ps_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sh(variables: Mapping[str, str]) -> tuple[list[str], list[str]]:
    setting = [
        f'if [ -z "${{{k}+x}}" ]; then {k}={_sh_quote(v)}; export {k}; _FWSETUP_SET_{k}=1; fi'
        for k, v in sorted(variables.items())
    ]
    unsetting = [
        f'    if [ -n "${{_FWSETUP_SET_{k}:-}}" ]; then unset {k} _FWSETUP_SET_{k}; fi'
        for k in sorted(variables)
    ]
    return setting, unsetting


def _fish(variables: Mapping[str, str]) -> tuple[list[str], list[str]]:
    setting = [
        f"if not set -q {k}; set -gx {k} {_fish_quote(v)}; set -g _FWSETUP_SET_{k} 1; end"
        for k, v in sorted(variables.items())
    ]
    unsetting = [
        f"    if set -q _FWSETUP_SET_{k}; set -e {k}; set -e _FWSETUP_SET_{k}; end" for k in sorted(variables)
    ]
    return setting, unsetting


def _csh(variables: Mapping[str, str]) -> tuple[list[str], list[str]]:
    # venv's `deactivate` in csh is a one-line alias: activation sets, deactivation leaves them
    return [f"if (! $?{k}) setenv {k} {_csh_quote(v)}" for k, v in sorted(variables.items())], []


def _ps(variables: Mapping[str, str]) -> tuple[list[str], list[str]]:
    setting = [
        f"if (-not (Test-Path env:{k})) {{ $env:{k} = {_ps_quote(v)}; $env:_FWSETUP_SET_{k} = '1' }}"
        for k, v in sorted(variables.items())
    ]
    unsetting = [
        f"    if (Test-Path env:_FWSETUP_SET_{k}) {{ Remove-Item env:{k} -ErrorAction SilentlyContinue; "
        f"Remove-Item env:_FWSETUP_SET_{k} -ErrorAction SilentlyContinue }}"
        for k in sorted(variables)
    ]
    return setting, unsetting


# script name -> (how to write the lines, the first line inside `deactivate` the unsetting goes before)
_SHELLS = {
    "sh": (_sh, re.compile(r"^\s*unset VIRTUAL_ENV\s*$", re.M)),
    "fish": (_fish, re.compile(r"^\s*set -e VIRTUAL_ENV\s*$", re.M)),
    "csh": (_csh, None),
    "ps": (_ps, re.compile(r"^\s*if \((?:\$env:VIRTUAL_ENV|Test-Path -Path Env:VIRTUAL_ENV)\) \{\s*$", re.M)),
}
_SCRIPTS = {
    "activate": "sh",
    "activate.fish": "fish",
    "activate.csh": "csh",
    "activate.ps1": "ps",
    "Activate.ps1": "ps",
}


def _strip(text: str) -> str:
    """The script without what an earlier write() added."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        s = line.strip()
        if s == _BEGIN:
            skipping = True
            continue
        if skipping:
            if s == _END:
                skipping = False
            continue
        if "_FWSETUP_SET_" in line:
            continue
        out.append(line)
    return "".join(out)


def _edit(text: str, shell: str, variables: Mapping[str, str]) -> str:
    if not variables:
        return text
    make, anchor = _SHELLS[shell]
    setting, unsetting = make(variables)
    if unsetting and anchor is not None and (m := anchor.search(text)):
        text = text[: m.start()] + "".join(line + "\n" for line in unsetting) + text[m.start() :]
    if not text.endswith("\n"):
        text += "\n"
    return text + "\n".join([_BEGIN, *setting, _END]) + "\n"


# CPython's own csh activation script (Lib/venv/scripts/posix/activate.csh, 3.11-3.13), the environment's path
# and prompt filled in as csh data (quoted; ! escaped). uv writes none for a relocatable venv (astral-sh/uv
# PR #17759: csh cannot tell a sourced script's own path, so the script must name the environment's).
_CSH_ACTIVATE = """# This file must be used with "source bin/activate.csh" *from csh*.
# You cannot run it directly.
# Created by Davide Di Blasi <davidedb@gmail.com>.
# Ported to Python 3.3 venv by Andrew Svetlov <andrew.svetlov@gmail.com>
# (CPython's Lib/venv/scripts/posix/activate.csh, written by fwsetup for the environment at its final path;
# the prompt lines only where there is a prompt, so that `csh -c "source ENV/bin/activate.csh && CMD"` works)

alias deactivate 'test $?_OLD_VIRTUAL_PATH != 0 && setenv PATH "$_OLD_VIRTUAL_PATH" && unset _OLD_VIRTUAL_PATH; rehash; test $?_OLD_VIRTUAL_PROMPT != 0 && set prompt="$_OLD_VIRTUAL_PROMPT" && unset _OLD_VIRTUAL_PROMPT; unsetenv VIRTUAL_ENV; unsetenv VIRTUAL_ENV_PROMPT; test "\\!:*" != "nondestructive" && unalias deactivate'

# Unset irrelevant variables.
deactivate nondestructive

setenv VIRTUAL_ENV {path}

set _OLD_VIRTUAL_PATH="$PATH"
setenv PATH "$VIRTUAL_ENV/bin:$PATH"


if ($?prompt) then
    set _OLD_VIRTUAL_PROMPT="$prompt"
    if (! "$?VIRTUAL_ENV_DISABLE_PROMPT") then
        set prompt = {prompt}"$prompt"
        setenv VIRTUAL_ENV_PROMPT {prompt}
    endif
endif

alias pydoc python -m pydoc

rehash
"""


def write_csh_activate(prefix: Path, final: Path) -> bool:
    """bin/activate.csh for a venv that has none (uv's relocatable venvs), naming `final`, the environment's
    path once it is in place; write() then adds the settings block to it. False when there is one already,
    or the path cannot be written as csh data (a control character)."""
    script = prefix / "bin" / "activate.csh"
    if os.name == "nt" or os.path.lexists(script) or not (prefix / "bin").is_dir():
        return False
    path = str(final)
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return False
    script.write_text(_CSH_ACTIVATE.format(path=_csh_quote(path), prompt=_csh_quote(f"({final.name}) ")))
    return True
