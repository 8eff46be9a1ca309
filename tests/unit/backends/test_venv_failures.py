"""backends/venv_failures.py: why a venv install failed, in one sentence of fwsetup's (the installer's words are
read by its own adapter, uv_messages / pip_messages), and the error raised for a failed installer run."""

from __future__ import annotations

import pytest

from fwsetup import proc
from fwsetup.backends.venv_failures import failure_reason, raise_for
from fwsetup.errors import InstallError, NetworkError


@pytest.mark.parametrize(
    ("kind", "output", "expected", "network"),
    [
        (
            "uv",
            "error: No solution found when resolving dependencies\n  cause: Because there is no version of torch==9.9 and you\n"
            "  require torch==9.9, we can conclude that your requirements are unsatisfiable.\n",
            "no matching distribution: Because there is no version of torch==9.9 and you require torch==9.9, we can "
            "conclude that your requirements are unsatisfiable.",
            False,
        ),
        (
            "uv",
            "  × No solution found when resolving dependencies:\n  ╰─▶ Because foo was not found in the package registry and\n"
            "      you require foo, we can conclude that your requirements are unsatisfiable.\n",
            "no matching distribution: Because foo was not found in the package registry and you require foo, we can "
            "conclude that your requirements are unsatisfiable.",
            False,
        ),
        (
            "pip",
            "ERROR: Could not find a version that satisfies the requirement foo==1\nERROR: No matching distribution found for foo==1\n",
            "no matching distribution for foo==1",
            False,
        ),
        (
            "uv",
            "error: Failed to fetch: `https://download.pytorch.org/whl/cpu/torch/`\n  Caused by: dns error: failed to lookup address\n",
            "could not reach the package index (https://download.pytorch.org/whl/cpu/torch/): dns error",
            True,
        ),
        (
            "uv",
            "something\nerror: disk quota exceeded\n",
            "installing failed: error: disk quota exceeded",
            False,
        ),
        (
            "pip",
            "something\nERROR: disk quota exceeded\n",
            "installing failed: ERROR: disk quota exceeded",
            False,
        ),
    ],
)
def test_failure_reason(kind: str, output: str, expected: str, network: bool) -> None:
    # the installer's words are read by its own adapter (uv_messages, pip_messages); the sentence is fwsetup's
    assert failure_reason(kind, output, "installing") == (expected, network)


def test_a_failed_run_raises_network_error_only_when_an_index_was_out_of_reach() -> None:
    ok = proc.Result(argv=("uv",), returncode=0, stdout="", stderr="")
    raise_for(ok, "installing", "uv")  # nothing raised
    offline = proc.Result(
        argv=("uv",), returncode=2, stdout="",
        stderr="error: Failed to fetch: `https://pypi.org/simple/foo/`\n  Caused by: dns error: failed to lookup address\n",
    )  # fmt: skip
    with pytest.raises(NetworkError, match="could not reach the package index"):
        raise_for(offline, "installing", "uv")
    full = proc.Result(argv=("pip",), returncode=1, stdout="", stderr="ERROR: disk quota exceeded\n")
    with pytest.raises(InstallError, match="installing failed: ERROR: disk quota exceeded") as caught:
        raise_for(full, "installing", "pip")
    assert not isinstance(caught.value, NetworkError)
