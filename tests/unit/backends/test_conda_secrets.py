"""Issue 9, item 4: index credentials never reach the files the conda backend writes (environment.yml, its
pip: section) or its error messages."""

from __future__ import annotations

from pathlib import Path

from index_secrets import EXTRA, TOKEN, clean_pip_env

from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda import CondaBackend, _credentials_to_env
from fwsetup.backends.conda_env import CondaEnv
from fwsetup.backends.conda_tools import explain
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.recipes.schema import CondaSpec

# `clean_pip_env` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["clean_pip_env"]


def test_conda_render_and_pip_section_hold_no_token(tmp_path: Path) -> None:

    channel = f"https://conda.anaconda.org/t/{TOKEN}/private"
    plan = Plan(
        status="ok",
        framework="tensorflow",
        version="2.10.1",
        variant="cpu",
        accelerator="cpu",
        method="conda",
        python="3.11",
        requirements=["tensorflow==2.10.1"],
        index_urls=[EXTRA],
        conda=CondaSpec(channels=["conda-forge", channel], packages=["numpy=1.26"]),
        smoke=SmokeSpec(script="tensorflow"),
    )
    text = CondaBackend().render(plan, InstallOptions(target=tmp_path / "env", env={}))
    assert TOKEN not in text and "/t/***/private" in text and "https://***@extra.example/simple" in text
    argv, env = _credentials_to_env(
        [
            "uv",
            "pip",
            "install",
            "--extra-index-url",
            EXTRA,
            "-f",
            "/wheels",
            "--index-url=https://plain.example/simple",
            "tensorflow==2.10.1",
        ]
    )
    assert not any(TOKEN in a for a in argv) and env == {"UV_EXTRA_INDEX_URL": EXTRA}
    assert argv[argv.index("--find-links") + 1] == "/wheels"
    assert argv[argv.index("--index-url") + 1] == "https://plain.example/simple"


def test_conda_errors_hold_no_channel_token() -> None:

    channel = f"https://conda.anaconda.org/t/{TOKEN}/private"
    env = CondaEnv(name="e", channels=(channel,), specs=("numpy",))
    exc = explain(
        f"CondaHTTPError: HTTP 000 CONNECTION FAILED for url <{channel}/linux-64/repodata.json>",
        env,
        tool="conda",
    )
    assert TOKEN not in str(exc) and TOKEN not in repr(exc.args)
