"""`fwsetup run ENV [--] CMD [ARG...]`: run a command in an environment fwsetup made, with its settings, as an
activated shell would: ENV/bin first on PATH, VIRTUAL_ENV (a venv) or CONDA_PREFIX (a conda env), no
PYTHONHOME, and the variables the env carries (the plan's run-time env, written by backends/envvars.py;
a variable you set yourself keeps your value). The command replaces this process (exec), so its exit
status, signals and stdio are the command's own.

Also where the env's settings file format lives (read by `run`, written by backends/envvars): this module
imports the standard library only, and fwsetup.__main__ calls main() before typer, rich or the planner are
loaded, so `run` costs about one bare Python start-up (benchmarks/bench_run.py).
"""

from __future__ import annotations

import json
import os
import sys

MODULE = "_fwsetup_env"  # site-packages/_fwsetup_env.py, imported at start-up by _fwsetup_env.pth
PTH = f"{MODULE}.pth"
VARS_LINE = "VARIABLES = "  # the module's line that holds the variables, as one JSON object

USAGE = """usage: fwsetup run ENV [--] CMD [ARG...]

Run CMD in the environment ENV (made by `fwsetup install`) with its settings: ENV/bin first on PATH,
VIRTUAL_ENV (or CONDA_PREFIX), and the run-time variables the framework needs (the plan's env, which
ENV carries itself; a variable you set keeps your value). Exits with CMD's exit status.
Example: fwsetup run ./th -- python -c "import theano"
"""


def bin_dir(prefix: str) -> str:
    return os.path.join(prefix, "Scripts" if os.name == "nt" else "bin")


def site_packages(prefix: str) -> str | None:
    """The prefix's site-packages (lib/pythonX.Y/site-packages, or Lib/site-packages on Windows), or None."""
    lib = os.path.join(prefix, "lib")
    try:
        names = sorted(n for n in os.listdir(lib) if n.startswith("python3"))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(lib, name, "site-packages")
        if os.path.isdir(path):
            return path
    path = os.path.join(prefix, "Lib", "site-packages")
    return path if os.path.isdir(path) else None


def read(prefix: str) -> dict[str, str]:
    """The variables the env at `prefix` carries ({} when none)."""
    site = site_packages(prefix)
    if site is None:
        return {}
    try:
        with open(os.path.join(site, f"{MODULE}.py"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in lines:
        if line.startswith(VARS_LINE):
            try:
                data = json.loads(line[len(VARS_LINE) :])
            except ValueError:
                return {}
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
    return {}


def environment(prefix: str, base: dict[str, str]) -> dict[str, str]:
    """The environment a command in `prefix` runs with (what its activation would give)."""
    env = dict(base)
    env.pop("PYTHONHOME", None)
    env["PATH"] = bin_dir(prefix) + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    if os.path.isdir(os.path.join(prefix, "conda-meta")):
        env["CONDA_PREFIX"] = prefix
        env.pop("VIRTUAL_ENV", None)
    else:
        env["VIRTUAL_ENV"] = prefix
        env.pop("CONDA_PREFIX", None)
    for name, value in read(prefix).items():
        env.setdefault(name, value)
    return env


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def main(argv: list[str]) -> int:
    """Exec the command; returns only when it cannot (2 bad input, 126 not executable, 127 not found)."""
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(USAGE)
        return 0 if argv else 2
    target, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        return _fail(f"no command to run in {target} (fwsetup run ENV -- CMD [ARG...]).", 2)
    prefix = os.path.abspath(target)
    python = os.path.join(bin_dir(prefix), "python.exe" if os.name == "nt" else "python")
    if not os.path.isdir(prefix) or not os.path.exists(python):
        return _fail(f"{target} is not a Python environment (no {python}): make one with fwsetup install.", 2)
    env = environment(prefix, dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(rest[0], rest, env)
    except FileNotFoundError:
        return _fail(f"{rest[0]}: command not found in {target} or on PATH.", 127)
    except OSError as exc:
        return _fail(f"{rest[0]}: cannot run it: {exc.strerror or exc}.", 126)
    return 0  # not reached: exec does not return
