"""Test options and markers.

Unit tests run everywhere with no network. Integration tests run when asked for:
  --run-docker   tests marked `docker` (a real engine: DOCKER_HOST, or scripts/start-docker-engine)
  --run-network  tests marked `network` (real installs from PyPI and the local wheelhouse)
  --run-gpu      tests marked `gpu` (a real NVIDIA GPU)
A test that is not run says why in the summary (-ra); an engine that was asked for but cannot be
reached is skipped with the engine's own error, printed once at the end in a banner.
"""

from __future__ import annotations

import os

import pytest

_DOCKER_ERROR: list[str] = []

# Session fixtures of a real registry (scripts/start-registry): registry, tls_registry, auth_registry, ...;
# live_env (plans that read package indexes, with a fresh cache) beside the small index of tests/simple_index.py
pytest_plugins = ["registries", "simple_index"]

# Tests must not write the user's recipe cache (~/.cache/fwsetup): one private cache for the whole run.
if "FWSETUP_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["FWSETUP_CACHE_DIR"] = tempfile.mkdtemp(prefix="fwsetup-test-cache-")
# ...nor the user's registry of environments (~/.local/share/fwsetup/envs.json) or its default env folder
if "FWSETUP_DATA_DIR" not in os.environ:
    import tempfile

    os.environ["FWSETUP_DATA_DIR"] = tempfile.mkdtemp(prefix="fwsetup-test-data-")

# Plans in tests read the registry data shipped with fwsetup, not the live indexes (the plans they assert are
# those of that data, and unit tests use no network); tests of the live data (registry/test_live*.py) unset it.
os.environ.setdefault("FWSETUP_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_cli_state():
    # The CLI keeps --recipes/--debug in a module-level state; a CliRunner test that passed --recipes must
    # not leak it into the next test.
    from fwsetup.ui import state

    saved = (state.debug, state.recipes_dir, state.quiet)
    yield
    state.debug, state.recipes_dir, state.quiet = saved


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-docker", action="store_true", help="run tests that need a Docker engine")
    parser.addoption("--run-network", action="store_true", help="run tests that install from registries")
    parser.addoption("--run-gpu", action="store_true", help="run tests that need an NVIDIA GPU")


def _docker_unreachable() -> str | None:
    """None when an engine answers, else the engine's own error."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure is the reason we report
        return f"{type(exc).__name__}: {exc}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_docker = config.getoption("--run-docker")
    run_network = config.getoption("--run-network")
    run_gpu = config.getoption("--run-gpu")
    docker_reason: str | None = None
    # By marker, not by keyword: an item's keywords hold its folders' names too (tests/unit/backends/docker/).
    if run_docker and any(item.get_closest_marker("docker") for item in items):
        err = _docker_unreachable()
        if err:
            docker_reason = (
                f"Docker engine not reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', '<unset>')}): {err}"
            )
            _DOCKER_ERROR.append(docker_reason)
    for item in items:
        if item.get_closest_marker("docker"):
            if not run_docker:
                item.add_marker(pytest.mark.skip(reason="needs a Docker engine: run with --run-docker"))
            elif docker_reason:
                item.add_marker(pytest.mark.skip(reason=docker_reason))
        if item.get_closest_marker("network") and not run_network:
            item.add_marker(pytest.mark.skip(reason="installs from registries: run with --run-network"))
        if item.get_closest_marker("gpu") and not run_gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU: run with --run-gpu"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _DOCKER_ERROR:
        terminalreporter.section("Docker tests skipped", sep="!", red=True, bold=True)
        terminalreporter.write_line(_DOCKER_ERROR[0])
