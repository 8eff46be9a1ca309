"""conda backend, end to end, offline: a local channel of real conda packages (tests/conda_channel/build.py),
solved and linked by py-rattler or by a micromamba/conda command line (a stand-in that drives rattler,
tests/conda_channel/fake_tool.py), through CondaBackend.install with a Plan — the code path of
`fwsetup install NAME --method conda`.

Real here: the package archives (.conda and .tar.bz2), the channel index, the solver (with the `__cuda`
virtual package), download (file:// and http:// on loopback) with sha256 checks, linking with prefix
replacement and noarch: python entry points, the staging folder and atomic swap, the lock file, the smoke
run inside the new environment. Stand-ins: the `python` package (a venv-style launcher onto this machine's
interpreter) and, in the CLI tests, the micromamba/conda program. conda-forge and the nvidia channel are
not reachable from these machines.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest

pytest.importorskip(
    "rattler", reason="py-rattler (fwsetup[conda]) is needed to build and use the test channel"
)
pytest.importorskip(
    "conda_package_handling", reason="conda-package-handling builds the test channel's packages"
)

from conda_channel.build import SMOKE_SCRIPT, build_channel
from conda_channel.fake_tool import install_fake_tool
from support import FACTS

from fwsetup import staging
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda import CondaBackend, _marker, _recover_in_place
from fwsetup.backends.conda_env import conda_env_for
from fwsetup.backends.conda_tools import CliInstaller, RattlerInstaller, find_installer
from fwsetup.errors import InstallError, NetworkError, SmokeError, UsageError
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.recipes.schema import CondaSpec

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(tmp_path_factory.mktemp("conda") / "channel")


@pytest.fixture(scope="session")
def pkgs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pkgs")


def make_plan(
    channel: str | Path,
    packages: list[str],
    *,
    cuda_driver: str | None = None,
    cuda_version: str | None = None,
    accelerator: str = "cpu",
    version: str = "0.1.0",
    smoke: str | Path | None = SMOKE_SCRIPT,
    env: dict[str, str] | None = None,
) -> Plan:
    return Plan(
        status="ok",
        framework="tinytrain",
        version=version,
        variant="cpu" if accelerator == "cpu" else "cu128",
        accelerator=accelerator,  # type: ignore[arg-type]
        method="conda",
        python=PY,
        env=env or {},
        conda=CondaSpec(
            channels=[str(channel)], packages=packages, cuda_driver=cuda_driver, cuda_version=cuda_version
        ),
        smoke=SmokeSpec(script=str(smoke), device="cpu") if smoke else None,
    )


def options(target: Path, **env: str) -> InstallOptions:
    return InstallOptions(target=target, env={"PATH": os.environ.get("PATH", ""), **env})


def rattler_backend(pkgs_dir: Path) -> CondaBackend:
    return CondaBackend(RattlerInstaller.load(cache_dir=pkgs_dir))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env)


def assert_works_in_place(target: Path) -> None:
    """The environment works at its final path: python finds its own prefix and packages, the entry point
    script's shebang and the prefix-replaced text file name the final path (not the staging folder)."""
    out = _run(
        [
            target / "bin" / "python",
            "-c",
            "import sys, tinytrain; print(sys.prefix); print(tinytrain.__file__)",
        ]
    )
    assert out.returncode == 0, out.stderr
    prefix, module = out.stdout.split()
    assert Path(prefix) == target
    assert Path(module).is_relative_to(target)
    script = target / "bin" / "tinytrain-info"
    assert script.read_text().startswith(f"#!{target}/bin/python")
    out = _run([script])
    assert out.returncode == 0, out.stderr
    assert f"prefix={target}" in out.stdout
    standin = (target / "etc" / "fwsetup-python-standin.txt").read_text()
    assert f"prefix={target}\n" in standin
    assert "fwsetup-staging" not in standin and "anaconda1anaconda2" not in standin


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if "staging" in p.name or "-old-" in p.name)


# -- py-rattler ---------------------------------------------------------------------------------------------


def test_create_smoke_swap_and_lock_file(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "envs" / "tt"
    stages: list[str] = []
    result = rattler_backend(pkgs_dir).install(
        make_plan(channel, ["tinytrain=0.1.0"]), options(target), progress=lambda s, m: stages.append(s)
    )
    assert result.changed
    assert result.packages == {"python": sys.version.split()[0], "tinytrain": "0.1.0"}
    # The smoke test trained inside the staged environment, before it was put in place.
    assert result.smoke and result.smoke["ok"] and result.smoke["loss_after"] < result.smoke["loss_before"]
    assert ".tt.fwsetup-staging-" in result.smoke["prefix"]
    assert stages.index("smoke") < stages.index("swap")
    assert_works_in_place(target)
    assert leftovers(target) == []

    lock = json.loads(result.lock_file.read_text())
    assert lock["method"] == "conda" and lock["installer"].startswith("rattler")
    assert lock["virtual_packages"]["__cuda"] is None
    rows = {p["name"]: p for p in lock["packages"]}
    assert set(rows) == {"python", "tinytrain"}
    tt = rows["tinytrain"]
    archive = channel / "noarch" / "tinytrain-0.1.0-py_0.tar.bz2"
    assert (tt["version"], tt["build"], tt["subdir"]) == ("0.1.0", "py_0", "noarch")
    assert tt["channel"] == channel.as_uri()
    assert tt["sha256"] == _sha256(archive)
    assert tt["md5"] == hashlib.md5(archive.read_bytes()).hexdigest()
    assert rows["python"]["build"] == "0_fwsetup_standin"
    # The environment.yml it was made from travels with it.
    assert "tinytrain=0.1.0" in (target / ".fwsetup" / "environment.yml").read_text()


def test_same_plan_again_is_a_no_op(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "tt"
    backend = rattler_backend(pkgs_dir)
    plan = make_plan(channel, ["tinytrain=0.1.0"])
    first = backend.install(plan, options(target))
    inode = target.stat().st_ino
    again = backend.install(plan, options(target))
    assert first.changed and not again.changed
    assert "already installed" in again.message
    assert target.stat().st_ino == inode  # not rebuilt
    # Someone changed the environment behind fwsetup's back: not the same any more, so it is rebuilt.
    (target / "conda-meta" / "tinytrain-0.1.0-py_0.json").unlink()
    fixed = backend.install(plan, options(target))
    assert fixed.changed and target.stat().st_ino != inode
    assert_works_in_place(target)


def test_a_new_plan_replaces_the_environment(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "tt"
    backend = rattler_backend(pkgs_dir)
    backend.install(make_plan(channel, ["tinytrain=0.1.0"]), options(target))
    gpu = make_plan(
        channel,
        ["tinytrain=0.2.0"],
        cuda_driver="12.8",
        cuda_version="12.8",
        accelerator="cuda",
        version="0.2.0",
    )
    result = backend.install(gpu, options(target))
    assert result.changed and result.packages["tinytrain"] == "0.2.0"
    assert result.packages["cuda-version"] == "12.8"  # the pin from the recipe's cuda_version
    lock = json.loads(result.lock_file.read_text())
    assert lock["virtual_packages"] == {"__cuda": "12.8", "source": "the host profile's NVIDIA driver"}
    assert "cuda-version=12.8" in lock["specs"]
    assert_works_in_place(target)
    assert leftovers(target) == []


def test_driver_too_old_names_the_package_and_the_constraint(
    channel: Path, pkgs_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "tt"
    backend = rattler_backend(pkgs_dir)
    backend.install(make_plan(channel, ["tinytrain=0.1.0"]), options(target))
    before = sorted(p.name for p in target.rglob("*"))
    plan = make_plan(channel, ["tinytrain=0.2.0"], cuda_driver="12.4", accelerator="cuda", version="0.2.0")
    with pytest.raises(InstallError) as err:
        backend.install(plan, options(target))
    msg = str(err.value)
    assert "tinytrain 0.2.0" in msg and "__cuda >=12.8" in msg and "CUDA 12.4" in msg
    assert "Cannot solve" not in msg and "└─" not in msg  # one sentence, not the solver's tree
    # Nothing was touched.
    assert sorted(p.name for p in target.rglob("*")) == before
    assert leftovers(target) == []


def test_conda_override_cuda_wins_over_the_profile(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    plan = make_plan(channel, ["tinytrain=0.2.0"], cuda_driver="12.4", accelerator="cuda", version="0.2.0")
    result = rattler_backend(pkgs_dir).install(plan, options(tmp_path / "tt", CONDA_OVERRIDE_CUDA="12.9"))
    assert result.packages["tinytrain"] == "0.2.0"
    with pytest.raises(InstallError, match=r"there is no CUDA driver.*CONDA_OVERRIDE_CUDA"):
        rattler_backend(pkgs_dir).install(plan, options(tmp_path / "tt2", CONDA_OVERRIDE_CUDA=""))


def test_unsatisfiable_and_missing_packages(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    backend = rattler_backend(pkgs_dir)
    with pytest.raises(InstallError) as err:
        backend.install(make_plan(channel, ["legacy-only"]), options(tmp_path / "a"))
    assert "cannot be installed together" in str(err.value)
    assert "legacy-only" in str(err.value) and "python" in str(err.value)
    with pytest.raises(InstallError, match=r"no package in conda channel\(s\) .* matches tinytrain >=9"):
        backend.install(make_plan(channel, ["tinytrain >=9"]), options(tmp_path / "b"))
    with pytest.raises(InstallError, match=r"no package .* matches no-such-package"):
        backend.install(make_plan(channel, ["no-such-package"]), options(tmp_path / "c"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unknown_channel(pkgs_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-channel-here"
    with pytest.raises(InstallError) as err:
        rattler_backend(pkgs_dir).install(make_plan(missing, ["tinytrain"]), options(tmp_path / "tt"))
    assert f"conda channel {missing}" in str(err.value) and "does not exist" in str(err.value)


@contextlib.contextmanager
def serve(directory: Path):
    """The channel over HTTP on 127.0.0.1 (a loopback port of our own), as a mirror would serve it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_channel_and_unknown_http_channel(channel: Path, tmp_path: Path) -> None:
    with serve(channel.parent) as url:
        result = CondaBackend(RattlerInstaller.load(cache_dir=tmp_path / "pkgs")).install(
            make_plan(f"{url}/channel", ["tinytrain=0.1.0"]), options(tmp_path / "tt")
        )
        assert result.changed
        lock = json.loads(result.lock_file.read_text())
        assert all(p["url"].startswith(f"{url}/channel/") for p in lock["packages"])
        assert_works_in_place(tmp_path / "tt")
        with pytest.raises(InstallError) as err:
            rattler_backend(tmp_path / "pkgs").install(
                make_plan(f"{url}/nope", ["tinytrain"]), options(tmp_path / "x")
            )
        assert f"conda channel {url}/nope" in str(err.value)


def test_smoke_failure_leaves_the_old_environment(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "tt"
    backend = rattler_backend(pkgs_dir)
    backend.install(make_plan(channel, ["tinytrain=0.1.0"]), options(target))
    lock_before = (target / ".fwsetup" / "lock.json").read_text()
    bad = tmp_path / "train_bad.py"
    bad.write_text(
        'import json, sys\nprint(json.dumps({"ok": False, "error": "the loss did not fall"}))\nsys.exit(1)\n'
    )
    plan = make_plan(channel, ["tinytrain=0.1.0"], smoke=bad, env={"TINYTRAIN_FLAG": "1"})
    with pytest.raises(SmokeError, match="the loss did not fall") as err:
        backend.install(plan, options(target))
    assert "Log: " in str(err.value)
    assert (target / ".fwsetup" / "lock.json").read_text() == lock_before
    assert_works_in_place(target)
    assert leftovers(target) == []


def test_plan_env_reaches_the_smoke_test_and_conda_activate(
    channel: Path, pkgs_dir: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "train_env.py"
    probe.write_text(
        "import json, os\n"
        'print(json.dumps({"ok": os.environ.get("KERAS_BACKEND") == "torch", "error": "KERAS_BACKEND not set"}))\n'
    )
    target = tmp_path / "tt"
    result = rattler_backend(pkgs_dir).install(
        make_plan(channel, ["tinytrain"], smoke=probe, env={"KERAS_BACKEND": "torch"}), options(target)
    )
    assert result.smoke and result.smoke["ok"]
    state = json.loads((target / "conda-meta" / "state").read_text())
    assert state["env_vars"] == {"KERAS_BACKEND": "torch"}


def test_dry_run_touches_nothing(channel: Path, tmp_path: Path) -> None:
    target = tmp_path / "tt"
    opts = InstallOptions(target=target, env={}, dry_run=True)
    result = CondaBackend().install(make_plan(channel, ["tinytrain"]), opts)
    assert not result.changed and "dependencies:" in result.message
    assert not tmp_path.joinpath("tt").exists() and list(tmp_path.iterdir()) == []


def test_interrupted_staging_is_cleaned_up_next_time(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "tt"
    stale = tmp_path / ".tt.fwsetup-staging-99999-abcdef"
    (stale / "conda-meta").mkdir(parents=True)
    rattler_backend(pkgs_dir).install(make_plan(channel, ["tinytrain"]), options(target))
    assert not stale.exists()
    assert_works_in_place(target)


# -- micromamba / conda command lines (stand-ins that drive rattler) ---------------------------------------


def _tool_env(tmp_path: Path, pkgs_dir: Path, bin_dir: Path) -> dict[str, str]:
    return {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "FAKE_TOOL_LOG": str(tmp_path / "tool.log"),
        "FAKE_TOOL_PKGS": str(pkgs_dir),
        "TMPDIR": str(tmp_path),
    }


def _calls(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "tool.log").read_text().splitlines()]


def test_micromamba_builds_in_staging_with_relocate_prefix(
    channel: Path, pkgs_dir: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    install_fake_tool(bin_dir, "micromamba", relocate=True)
    env = _tool_env(tmp_path, pkgs_dir, bin_dir)
    installer = find_installer(env)
    assert isinstance(installer, CliInstaller) and installer.kind == "micromamba" and installer.relocates
    target = tmp_path / "envs" / "tt"
    plan = make_plan(channel, ["tinytrain=0.2.0"], cuda_driver="12.8", accelerator="cuda", version="0.2.0")
    result = CondaBackend().install(plan, InstallOptions(target=target, env=env))
    assert result.changed and result.smoke and ".tt.fwsetup-staging-" in result.smoke["prefix"]
    assert_works_in_place(target)
    creates = [c for c in _calls(tmp_path) if c["argv"][:1] == ["create"] and "--help" not in c["argv"]]
    solve, create = creates
    assert "--dry-run" in solve["argv"]
    argv = create["argv"]
    assert argv[argv.index("--relocate-prefix") + 1] == str(target)
    assert ".tt.fwsetup-staging-" in argv[argv.index("--prefix") + 1]
    assert argv[argv.index("--channel") + 1] == str(channel) and argv[-2:] == [
        f"python={PY}",
        "tinytrain=0.2.0",
    ]
    assert {c["CONDA_OVERRIDE_CUDA"] for c in creates} == {"12.8"}
    lock = json.loads(result.lock_file.read_text())
    assert lock["installer"] == "micromamba 2.0.5"
    assert {p["name"] for p in lock["packages"]} == {"python", "tinytrain", "cuda-version"}
    assert all(len(p["sha256"]) == 64 for p in lock["packages"])


def test_micromamba_solver_problem_is_one_message(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install_fake_tool(bin_dir, "micromamba", relocate=True)
    env = _tool_env(tmp_path, pkgs_dir, bin_dir)
    plan = make_plan(channel, ["tinytrain=0.2.0"], cuda_driver="12.4", accelerator="cuda", version="0.2.0")
    with pytest.raises(InstallError) as err:
        CondaBackend().install(plan, InstallOptions(target=tmp_path / "tt", env=env))
    assert "tinytrain 0.2.0 needs a driver that supports CUDA >=12.8" in str(err.value)
    assert "CUDA 12.4" in str(err.value)


def test_conda_builds_in_place_and_restores_the_old_env_on_failure(
    channel: Path, pkgs_dir: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    install_fake_tool(bin_dir, "conda", relocate=False)
    env = _tool_env(tmp_path, pkgs_dir, bin_dir)
    installer = find_installer(env)
    assert installer.kind == "conda" and not installer.relocates
    target = tmp_path / "tt"
    first = CondaBackend().install(
        make_plan(channel, ["tinytrain=0.1.0"]), InstallOptions(target=target, env=env)
    )
    # Built at the final path: the smoke test ran there, no staging folder involved.
    assert first.smoke and first.smoke["prefix"] == str(target)
    assert_works_in_place(target)
    create = [c for c in _calls(tmp_path) if c["argv"][:1] == ["create"] and "--dry-run" not in c["argv"]][-1]
    assert "--relocate-prefix" not in create["argv"]
    assert create["argv"][create["argv"].index("--prefix") + 1] == str(target)

    lock_before = (target / ".fwsetup" / "lock.json").read_text()
    gpu = make_plan(channel, ["tinytrain=0.2.0"], cuda_driver="12.8", accelerator="cuda", version="0.2.0")
    with pytest.raises(InstallError):
        CondaBackend().install(
            gpu, InstallOptions(target=target, env={**env, "FAKE_TOOL_BREAK_AFTER_CREATE": "1"})
        )
    assert (target / ".fwsetup" / "lock.json").read_text() == lock_before  # the old environment is back
    assert_works_in_place(target)
    assert leftovers(target) == [] and not _marker(target).exists()

    second = CondaBackend().install(gpu, InstallOptions(target=target, env=env))
    assert second.changed and second.packages["tinytrain"] == "0.2.0"
    assert_works_in_place(target)
    assert leftovers(target) == [] and not _marker(target).exists()


def test_in_place_build_killed_half_way_is_undone(tmp_path: Path) -> None:
    target = tmp_path / "tt"
    aside = tmp_path / ".tt.fwsetup-old-123-abcdef"
    (aside / "conda-meta").mkdir(parents=True)
    (aside / "old-marker").write_text("the old environment")
    (target / "conda-meta").mkdir(parents=True)  # the half-made new one
    _marker(target).write_text(json.dumps({"aside": str(aside), "pid": 123}))
    with staging.target_lock(target):
        done = _recover_in_place(target)
    assert len(done) == 2
    assert (target / "old-marker").read_text() == "the old environment"
    assert not aside.exists() and not _marker(target).exists()


def test_no_installer_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rattler" else real(name, *a)
    )
    with pytest.raises(InstallError, match=r"install fwsetup\[conda\] or micromamba"):
        find_installer({"PATH": str(tmp_path)})


def test_unknown_tool_choice(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="FWSETUP_CONDA_TOOL=mamba"):
        find_installer({"PATH": str(tmp_path), "FWSETUP_CONDA_TOOL": "mamba"})


def test_network_errors_are_network_errors(pkgs_dir: Path, tmp_path: Path) -> None:
    # A port on loopback with nothing listening: the same failure as an unreachable mirror.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError, match="cannot reach conda channel"):
        rattler_backend(pkgs_dir).install(
            make_plan(f"http://127.0.0.1:{port}/ch", ["x"]), options(tmp_path / "t")
        )


def test_pip_section_goes_into_the_conda_env(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    from conda_channel.build import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    plan = make_plan(channel, ["tinytrain=0.1.0"])
    plan = Plan(
        **{
            **{f: getattr(plan, f) for f in plan.__struct_fields__},
            "conda": CondaSpec(
                channels=[str(channel)], packages=["tinytrain=0.1.0"], pip=["tinyextra==0.1.0"]
            ),
        }
    )
    target = tmp_path / "tt"
    opts = InstallOptions(
        target=target, env={"PATH": os.environ.get("PATH", "")}, wheelhouse=wheels, offline=True
    )
    result = rattler_backend(pkgs_dir).install(plan, opts)
    assert result.changed and "pip" in result.packages  # the conda `pip` package the pip: section needs
    lock = json.loads(result.lock_file.read_text())
    assert {"name": "tinyextra", "version": "0.1.0"} in lock["pip_packages"]
    assert lock["pip"] == ["tinyextra==0.1.0"]
    # uv wrote the console script while the environment sat in staging; after the swap it names the final path.
    script = target / "bin" / "tinyextra"
    assert script.read_text().startswith(f"#!{target}/")
    out = _run([script])
    assert out.returncode == 0 and str(target) in out.stdout, out.stderr
    assert_works_in_place(target)


# -- the command a user types -----------------------------------------------------------------------------

RECIPE = (
    """
name = "tinytrain"
title = "tinytrain"
import_name = "tinytrain"

"""
    + FACTS
    + """
[build_defaults]
python = ">=3.10"
arch = ["{arch}"]
multi_gpu = false

[[builds]]
version = "0.1.0"
variant = "cpu"
conda = {{ channels = ["{channel}"], packages = ["tinytrain=0.1.0"] }}

[[builds]]
version = "0.2.0"
variant = "cu128"
accelerator = "cuda"
cuda = "12.8"
conda = {{ channels = ["{channel}"], packages = ["tinytrain=0.2.0"], cuda_version = "12.8" }}
"""
)


def gpu_profile(path: Path, cuda_driver: str, driver: str) -> Path:
    import platform

    profile = {
        "schema_version": 1,
        "os": {"system": "linux", "libc": "glibc", "libc_version": "2.36"},
        "cpu": {"arch": platform.machine(), "cores": 2, "features": ["avx", "avx2", "fma"]},
        "python": {"version": platform.python_version(), "implementation": "cpython"},
        "nvidia": {
            "nvml": "ok",
            "driver_version": driver,
            "cuda_driver_version": cuda_driver,
            "gpus": [
                {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "mig": False}
            ],
        },
    }
    path.write_text(json.dumps(profile))
    return path


def fwsetup(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("FWSETUP_CONDA_TOOL", "CONDA_OVERRIDE_CUDA")},
            "COLUMNS": "200",
            **(env or {}),
        },
    )


@pytest.fixture()
def recipes(channel: Path, tmp_path: Path) -> Path:
    import platform

    d = tmp_path / "recipes"
    d.mkdir()
    (d / "tinytrain.toml").write_text(RECIPE.format(channel=channel, arch=platform.machine()))
    return d


def test_cli_install_method_conda(recipes: Path, tmp_path: Path) -> None:
    target = tmp_path / "envs" / "tt"
    common = (
        "--recipes",
        recipes,
        "install",
        "tinytrain",
        "--version",
        "0.1.0",
        "--method",
        "conda",
        "--env",
        target,
    )
    dry = fwsetup(*common, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "tinytrain=0.1.0" in dry.stdout and "channels:" in dry.stdout
    assert not target.parent.exists()

    first = fwsetup(*common, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["changed"] and report["packages"]["tinytrain"] == "0.1.0"
    assert_works_in_place(target)
    again = fwsetup(*common, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False


def test_cli_gpu_plan_and_the_driver_conda_sees(recipes: Path, tmp_path: Path) -> None:
    # The planner accepts a CUDA 12.8 build on a 12.4 driver (CUDA minor-version compatibility), but the
    # conda package itself depends on __cuda >=12.8: the solver refuses, in one sentence, with exit 5.
    old = fwsetup(
        "--recipes",
        recipes,
        "install",
        "tinytrain",
        "--method",
        "conda",
        "--env",
        tmp_path / "a",
        "--host-profile",
        gpu_profile(tmp_path / "p124.json", "12.4", "550.54.15"),
    )
    assert old.returncode == 5, old.stdout + old.stderr
    text = " ".join(old.stderr.split())
    assert "tinytrain 0.2.0 needs a driver that supports CUDA >=12.8" in text and "supports CUDA 12.4" in text
    assert not (tmp_path / "a").exists()

    new = fwsetup(
        "--recipes",
        recipes,
        "install",
        "tinytrain",
        "--method",
        "conda",
        "--env",
        tmp_path / "b",
        "--host-profile",
        gpu_profile(tmp_path / "p128.json", "12.8", "570.86.10"),
        "--json",
    )
    assert new.returncode == 0, new.stdout + new.stderr
    lock = json.loads((tmp_path / "b" / ".fwsetup" / "lock.json").read_text())
    assert lock["virtual_packages"]["__cuda"] == "12.8"
    assert {p["name"]: p["version"] for p in lock["packages"]}["cuda-version"] == "12.8"


# ---- __cuda_arch (conda CEP 46; issue 22) ----------------------------------------------------------------


def test_cuda_arch_reaches_the_solver(channel: Path, pkgs_dir: Path) -> None:
    """The plan's lowest compute capability goes to the solver as `__cuda_arch` (CEP 46), so a package built
    only for newer GPUs (here one that depends on `__cuda_arch >=8.0`) is refused on a Turing card (7.5) and
    solved on an Ada card (8.9); the user's CONDA_OVERRIDE_CUDA_ARCH wins, and without `__cuda` there is no
    `__cuda_arch` (CEP 46). py-rattler does not detect `__cuda_arch` itself: fwsetup passes it."""

    backend = rattler_backend(pkgs_dir)

    def plan_for(arch: str | None, driver: str | None = "12.8") -> Plan:
        p = make_plan(channel, ["sm80-only"], cuda_driver=driver, accelerator="cuda", version="1.0")
        return msgspec.structs.replace(p, conda=msgspec.structs.replace(p.conda, cuda_arch=arch))

    def solve(p: Plan, **env: str) -> list[str]:
        installer = backend._installer
        assert installer is not None
        conda_env = conda_env_for(p, options(Path("/nonexistent"), **env).env, name="x")
        return [str(p["name"]) for p in installer.solve(conda_env).packages]

    assert "sm80-only" in solve(plan_for("8.9"))
    with pytest.raises(InstallError, match="__cuda_arch"):
        solve(plan_for("7.5"))
    assert "sm80-only" in solve(plan_for("7.5"), CONDA_OVERRIDE_CUDA_ARCH="9.0")
    with pytest.raises(InstallError):
        solve(plan_for("8.9", driver=None))  # no __cuda, so no __cuda_arch either
    env = conda_env_for(plan_for("8.9"), {}, name="x")
    assert env.solver_env() == {"CONDA_OVERRIDE_CUDA": "12.8", "CONDA_OVERRIDE_CUDA_ARCH": "8.9"}
    assert "CONDA_OVERRIDE_CUDA_ARCH=8.9" in env.header[1]
    none = conda_env_for(plan_for("8.9", driver=None), {}, name="x")
    assert none.solver_env() == {"CONDA_OVERRIDE_CUDA": ""} and none.cuda_arch is None


def test_conda_activation_sets_the_plan_env(channel: Path, pkgs_dir: Path, tmp_path: Path) -> None:
    """Issue 23: a conda env carries the plan's variables by conda's own mechanism (`conda env config vars`:
    conda-meta/state), so `conda activate` and `conda run` set them. Checked with rattler's activation (the one
    pixi uses), which reads the same file: the script it makes for bash exports KERAS_BACKEND in the shell (not
    only in the env's interpreters, which the .pth of backends/envvars covers), and the env's python sees it."""
    from rattler.shell import ActivationVariables, Shell, activate

    target = tmp_path / "tt"
    rattler_backend(pkgs_dir).install(
        make_plan(channel, ["tinytrain"], env={"KERAS_BACKEND": "jax"}), options(target)
    )
    state = json.loads((target / "conda-meta" / "state").read_text())
    assert state["env_vars"] == {"KERAS_BACKEND": "jax"}
    script = activate(target, ActivationVariables(None, []), Shell.bash).script
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no fwsetup variable, no other env
    probe = 'import os; print(os.environ.get("KERAS_BACKEND"))'
    cp = subprocess.run(
        ["bash", "-c", f'{script}\npython -c \'{probe}\'\necho "shell=${{KERAS_BACKEND:-unset}} $CONDA_PREFIX"'],
        env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["jax", "shell=jax", str(target)]
