"""uv's own words (fwsetup.backends.uv_messages): one test per form the adapter reads, each with a message uv
printed, named by where it was seen."""

from __future__ import annotations

import pytest

from fwsetup.backends import uv_messages

# astral-sh/uv#6034 (uv's resolver report on a terminal: "╰─▶ Because ...", continued over indented lines)
TERMINAL_REPORT = """  × No solution found when resolving dependencies:
  ╰─▶ Because only typing-extensions{python_version < '3.13'}<4.10.0 is available and altair==5.4.0 depends on
      typing-extensions{python_version < '3.13'}>=4.10.0, we can conclude that altair==5.4.0 cannot be used.
      And because only altair<=5.4.0 is available and you require altair>=5.4.0, we can conclude that the requirements
      are unsatisfiable.
"""
# astral-sh/uv#12511 (the report stops at uv's "hint:")
REPORT_WITH_HINT = """  × No solution found when resolving dependencies:
  ╰─▶ Because only the following versions of python-nvd3 are available:
          python-nvd3<=0.15.0
          python-nvd3==0.16.0
      and python-nvd3>=0.15.0 has no usable wheels, we can conclude that python-nvd3>=0.15.0 cannot be used.
      And because you require python-nvd3>=0.15.0, we can conclude that your requirements are unsatisfiable.

      hint: Wheels are required for `python-nvd3` because building from source is disabled for all packages (i.e., with `--no-build`)
"""
# botingw/rulebook-ai#61 (a name no index has)
NOT_IN_REGISTRY = """  × No solution found when resolving tool dependencies:
  ╰─▶ Because rulebook-ai was not found in the package registry and you require rulebook-ai, we can conclude that your requirements are
      unsatisfiable.
"""
# astral-sh/uv#16103 (uv's test pip_install.rs: --no-index with --find-links)
NOT_IN_LOCATIONS = """  × No solution found when resolving dependencies:
  ╰─▶ Because first-local was not found in the provided package locations and second-local==0.1.0 depends on first-local, we can conclude that second-local==0.1.0 cannot be used.
"""
# mvilanova/intervals-mcp-server#23 (a download that timed out: reqwest's chain under uv's report)
TIMED_OUT = """Resolved 37 packages in 6ms
  × Failed to download `certifi==2025.4.26`
  ├─▶ Failed to fetch: `https://pypi.netflix.net/packages/18638484694/certifi-2025.4.26-py3-none-any.whl`
  ├─▶ Request failed after 3 retries
  ├─▶ error sending request for url (https://pypi.netflix.net/packages/18638484694/certifi-2025.4.26-py3-none-any.whl)
  ╰─▶ operation timed out
  help: `certifi` (v2025.4.26) was included because `intervals-mcp-server` (v0.1.0) depends on `httpx` (v0.28.1) which depends on `certifi`
"""
# astral-sh/uv#8450 (a name the resolver could not look up)
DNS = """error: Failed to fetch: `https://gitlab.tmloc.com/api/v4/groups/7/-/packages/pypi/simple/alembic/`
  Caused by: client error (Connect)
  Caused by: dns error: failed to lookup address information: Name does not resolve
  Caused by: failed to lookup address information: Name does not resolve
"""
# astral-sh/uv#9243 (a TLS-intercepting proxy uv does not trust)
TLS = """error: Request failed after 3 retries
  Caused by: error sending request for url (https://pypi.org/simple/seaborn/)
  Caused by: client error (Connect)
  Caused by: invalid peer certificate: UnknownIssuer
"""


def test_a_terminal_report_is_no_solution_with_the_whole_sentence() -> None:
    got = uv_messages.read_failure(TERMINAL_REPORT)
    assert got.code == "no_solution"
    assert got.detail.startswith("Because only typing-extensions")
    assert got.detail.endswith("we can conclude that the requirements are unsatisfiable.")


def test_the_sentence_stops_at_uvs_hint() -> None:
    got = uv_messages.read_failure(REPORT_WITH_HINT)
    assert got.code == "no_solution"
    assert got.detail.endswith("we can conclude that your requirements are unsatisfiable.")
    assert "hint" not in got.detail


def test_a_cause_line_off_a_terminal_is_no_solution() -> None:
    # uv's report written to a file or a pipe: "cause:" where a terminal shows the arrow (fwsetup's own log)
    text = (
        "error: No solution found when resolving dependencies\n  cause: Because there is no version of torch==9.9 and you\n"
        "  require torch==9.9, we can conclude that your requirements are unsatisfiable.\n"
    )
    got = uv_messages.read_failure(text)
    assert got == uv_messages.UvFailure(
        "no_solution",
        "Because there is no version of torch==9.9 and you require torch==9.9, we can conclude that your "
        "requirements are unsatisfiable.",
    )


@pytest.mark.parametrize("text", [NOT_IN_REGISTRY, NOT_IN_LOCATIONS], ids=["registry", "find-links"])
def test_a_name_no_index_has_is_no_solution(text: str) -> None:
    got = uv_messages.read_failure(text)
    assert got.code == "no_solution" and "was not found in the" in got.detail


def test_a_timed_out_download_is_network_and_names_the_url() -> None:
    got = uv_messages.read_failure(TIMED_OUT)
    assert got.code == "network"
    assert got.url == "https://pypi.netflix.net/packages/18638484694/certifi-2025.4.26-py3-none-any.whl"


@pytest.mark.parametrize(("text", "phrase"), [(DNS, "dns error"), (TLS, "error sending request")])
def test_dns_and_tls_failures_are_network(text: str, phrase: str) -> None:
    got = uv_messages.read_failure(text)
    assert got.code == "network" and got.detail == phrase and got.url is not None


def test_another_error_is_uvs_error_line() -> None:
    # uv's "error: ..." for an I/O failure (here the disk), with nothing else to go by
    got = uv_messages.read_failure(
        "Resolved 3 packages in 1ms\nerror: Failed to write to the distribution cache\n"
    )
    assert got == uv_messages.UvFailure("error", "error: Failed to write to the distribution cache")


def test_no_output_is_unknown() -> None:
    assert uv_messages.read_failure("") == uv_messages.UvFailure("unknown", "no output")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # astral-sh/uv#6072: the python-build-standalone download, behind a proxy uv does not trust
        (
            "error: Failed to install cpython-3.12.4-macos-aarch64-none\n  Caused by: Request failed after 3 retries\n"
            "  Caused by: error sending request for url (https://github.com/indygreg/python-build-standalone/releases/"
            "download/20240726/cpython-3.12.4%2B20240726-aarch64-apple-darwin-install_only_stripped.tar.gz)\n"
            "  Caused by: invalid peer certificate: UnknownIssuer\n",
            "interpreter_download",
        ),
        # uv-python's discovery error (crates/uv-python/src/discovery.rs: "No interpreter found for ...")
        (
            "error: No interpreter found for Python 3.99 in virtual environments, managed installations, or search path\n",
            "interpreter_missing",
        ),
        ("error: failed to create directory `/x/env`: Permission denied (os error 13)\n", "other"),
    ],
    ids=["download", "missing", "other"],
)
def test_why_uv_venv_failed(text: str, code: str) -> None:
    assert uv_messages.venv_failure(text) == code


def test_uvs_prepared_line_starts_the_install() -> None:
    # uv pip install's progress: "Prepared 3 packages in 10.66s" (Cactusinhand/mcp_server_notify#2)
    assert uv_messages.is_prepared_line("Prepared 3 packages in 10.66s")
    assert not uv_messages.is_prepared_line("Resolved 37 packages in 4.10s")
