"""`fwsetup install` as a command, without network: refusals, --dry-run, --method, and the plan's own index
(unreachable here) replaced by local wheels, or a clear NetworkError."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fwsetup.backends import installer, pylock, venv_paths, wheel_sources
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.engine import EngineInfo
from fwsetup.cli import main
from fwsetup.errors import NetworkError, UsageError
from fwsetup.ops import build as ops_build
from fwsetup.ops.build import BuildRequest, prepare_build
from fwsetup.ops.install import default_env_dir
from fwsetup.plan import Plan, build_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def no_pip_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    wheel_sources.probe_index.cache_clear()


@pytest.fixture()
def unreachable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    probed: list[str] = []

    def probe(url: str, cafile: str | None = None, timeout: float = 10.0) -> str | None:
        probed.append(url)
        return "dns error: failed to lookup address information"

    monkeypatch.setattr(wheel_sources, "probe_index", probe)
    return probed


def test_refused_plan_exits_3_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unreachable: list[str]
) -> None:
    target = tmp_path / "env"
    rc = main(
        [
            "install",
            "mxnet",
            "--python",
            "3.13",
            "--env",
            str(target),
            "--host-profile",
            str(FIXTURES / "this-machine-cpu.json"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 3
    assert "refused" in out and "Python 3.11" in out  # names the Python that would work
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] in ([], ["cache"])
    assert unreachable == []  # nothing contacted


def test_refused_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["install", "theano", "--python", "3.13", "--json", "--env", str(tmp_path / "e")])
    plan = json.loads(capsys.readouterr().out)
    assert rc == 3 and plan["status"] == "refused" and plan["reasons"]


def test_docker_method_points_to_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "jax", "--method", "docker"]) == 2
    assert "fwsetup build jax" in " ".join(capsys.readouterr().err.split())


def test_dry_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "env"
    rc = main(["install", "jax", "--cpu", "--python", "3.11", "--env", str(target), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "uv" in out and "venv" in out and "jax==" in out and "train_jax.py" in out
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] in ([], ["cache"])


def test_unreachable_plan_index_uses_a_local_wheel_of_another_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unreachable: list[str]
) -> None:
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "torch-2.13.0+cpu-py3-none-any.whl").write_bytes(b"")
    rc = main(
        [
            "install",
            "pytorch",
            "--cpu",
            "--python",
            "3.11",
            "--env",
            str(tmp_path / "env"),
            "--wheelhouse",
            str(wh),
            "--dry-run",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["plan"]["version"] == "2.13.0"
    assert "cannot be reached" in doc["notes"][0] and "2.13.0" in doc["notes"][0]
    commands = [ln for ln in doc["commands"].splitlines() if not ln.startswith("#")]
    assert commands and not any("download.pytorch.org" in ln for ln in commands)
    # the wheel folder is read as an index with the wheels' hashes (pipconfig.wheel_index)
    assert "wheel-index" in doc["commands"] or "--find-links " + str(wh) in doc["commands"]
    assert not (tmp_path / "env").exists()


def test_unreachable_plan_index_without_local_wheel_is_a_network_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unreachable: list[str]
) -> None:
    rc = main(["install", "pytorch", "--cpu", "--python", "3.11", "--env", str(tmp_path / "env")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 7
    assert "cannot reach https://download.pytorch.org/whl/cpu" in err
    assert "use --wheelhouse DIR with the torch wheel" in err
    assert not (tmp_path / "env").exists()


def _plan(**kw: object) -> Plan:
    base = dict(
        status="ok",
        framework="pytorch",
        version="2.13.0",
        variant="cpu",
        python="3.11",
        requirements=["torch==2.13.0"],
        index_urls=["https://download.pytorch.org/whl/cpu"],
    )
    base.update(kw)
    return Plan(**base)  # type: ignore[arg-type]


def test_check_sources(tmp_path: Path, unreachable: list[str]) -> None:
    wh = tmp_path / "wh"
    wh.mkdir()
    opts = InstallOptions(target=tmp_path / "e", env={"PIP_CONFIG_FILE": os.devnull}, wheelhouse=wh)
    # no local wheel, index down: the error names the index and what to do
    with pytest.raises(wheel_sources.IndexUnreachable, match="use --wheelhouse DIR with the torch wheel"):
        wheel_sources.check_sources(_plan(), opts)
    # a wheel of another version is reported as a hint, not used
    (wh / "torch-2.12.0+cpu-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(wheel_sources.IndexUnreachable) as info:
        wheel_sources.check_sources(_plan(), opts)
    assert info.value.local == {"torch": ["2.12.0+cpu"]}
    # the pinned release locally: the plan's index is dropped and never contacted
    (wh / "torch-2.13.0+cpu-py3-none-any.whl").write_bytes(b"")
    unreachable.clear()
    src = wheel_sources.check_sources(_plan(), opts)
    assert src.plan_indexes == () and unreachable == []
    assert "not contacting https://download.pytorch.org/whl/cpu" in src.notes[0]
    # a wheel for another Python does not count
    (wh / "torch-2.13.0+cpu-py3-none-any.whl").unlink()
    (wh / "torch-2.13.0+cpu-cp39-cp39-manylinux_2_28_x86_64.whl").write_bytes(b"")
    with pytest.raises(wheel_sources.IndexUnreachable):
        wheel_sources.check_sources(_plan(), opts)
    # --offline: no index at all
    off = InstallOptions(target=tmp_path / "e", env={"PIP_CONFIG_FILE": os.devnull}, offline=True)
    assert wheel_sources.check_sources(_plan(), off).plan_indexes == ()
    # find-links from the pip configuration count as local wheels
    conf = tmp_path / "pip.conf"
    good = tmp_path / "fl"
    good.mkdir()
    (good / "torch-2.13.0+cpu-py3-none-any.whl").write_bytes(b"")
    conf.write_text(f"[global]\nfind-links = {good}\n")
    via_conf = InstallOptions(
        target=tmp_path / "e", env={"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    )
    assert wheel_sources.check_sources(_plan(), via_conf).local == {
        "torch==2.13.0": str(good / "torch-2.13.0+cpu-py3-none-any.whl")
    }


def test_reachable_plan_index_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheel_sources, "probe_index", lambda url, cafile=None, timeout=10.0: None)
    opts = InstallOptions(target=tmp_path / "e", env={"PIP_CONFIG_FILE": os.devnull})
    assert wheel_sources.check_sources(_plan(), opts).plan_indexes == (
        "https://download.pytorch.org/whl/cpu",
    )


def test_read_pylock_and_pip_report(tmp_path: Path) -> None:
    whl = tmp_path / "w-1.0-py3-none-any.whl"
    whl.write_bytes(b"x" * 10)
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n\n[[packages]]\nname = "a"\nversion = "1.0"\n'
        'wheels = [{ url = "https://files.example/a-1.0-py3-none-any.whl", size = 123, hashes = { sha256 = "ab" } }]\n\n'
        f'[[packages]]\nname = "w"\nversion = "1.0"\nwheels = [{{ url = "{whl.as_uri()}", hashes = {{ sha256 = "cd" }} }}]\n\n'
        '[[packages]]\nname = "s"\nversion = "2"\nsdist = { url = "https://files.example/s-2.tar.gz", hashes = { sha256 = "ef" } }\n'
    )
    pkgs = pylock.read_pylock(lock)
    assert pkgs[0] == {
        "name": "a",
        "version": "1.0",
        "url": "https://files.example/a-1.0-py3-none-any.whl",
        "sha256": "ab",
        "size": 123,
    }
    assert pkgs[1]["size"] == 10  # a local wheel: its file size
    assert pkgs[2]["sdist"] is True and pkgs[2]["sha256"] == "ef"
    report = tmp_path / "r.json"
    report.write_text(
        json.dumps(
            {
                "install": [
                    {
                        "metadata": {"name": "a", "version": "1"},
                        "download_info": {"url": "u", "archive_info": {"hashes": {"sha256": "00"}}},
                    }
                ]
            }
        )
    )
    assert pylock.read_pip_report(report) == [{"name": "a", "version": "1", "url": "u", "sha256": "00"}]


def test_fix_paths(tmp_path: Path) -> None:
    old, new = tmp_path / ".e.fwsetup-staging-1-x", tmp_path / "e"
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "tool").write_text(f"#!{old}/bin/python\nprint(1)\n")
    (old / "bin" / "tool").chmod(0o755)
    (old / "bin" / "binary").write_bytes(b"\x7fELF\0\0" + str(old).encode())
    (old / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = /usr/bin/python3 -m venv {old}\n")
    changed = venv_paths.fix_paths(old, old, new)
    assert sorted(changed) == ["pyvenv.cfg", "tool"]
    assert (old / "bin" / "tool").read_text().startswith(f"#!{new}/bin/python")
    assert os.access(old / "bin" / "tool", os.X_OK)
    assert str(old).encode() in (old / "bin" / "binary").read_bytes()  # binaries untouched


def test_find_installer_honours_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert installer.find_installer({"FWSETUP_INSTALLER": "pip", "PATH": ""}).kind == "pip"

    with pytest.raises(UsageError):
        installer.find_installer({"FWSETUP_INSTALLER": "conda"})
    if installer.find_uv(dict(os.environ)):
        assert installer.find_installer(dict(os.environ)).kind == "uv"


def test_default_env_dir() -> None:

    assert default_env_dir("pytorch", "cu126", {"HOME": "/h"}) == Path(
        "/h/.local/share/fwsetup/envs/pytorch-cu126"
    )
    assert default_env_dir("jax", "cpu", {"HOME": "/h", "XDG_DATA_HOME": "/d"}) == Path(
        "/d/fwsetup/envs/jax-cpu"
    )
    # FWSETUP_DATA_DIR wins (the registry of environments lives there too); a relative XDG_DATA_HOME is ignored
    assert default_env_dir(
        "jax", "cpu", {"HOME": "/h", "XDG_DATA_HOME": "/d", "FWSETUP_DATA_DIR": "/x"}
    ) == Path("/x/envs/jax-cpu")
    assert default_env_dir("jax", "cpu", {"HOME": "/h", "XDG_DATA_HOME": "rel"}) == Path(
        "/h/.local/share/fwsetup/envs/jax-cpu"
    )


def test_build_falls_back_to_local_wheels_as_install_does(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    unreachable: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`build --wheelhouse DIR` with the framework's index out of reach: the same final plan as `install`
    (ops.install.resolve_sources), not exit 7 asking for the --wheelhouse that was given."""

    class Engine:  # the engine's answer to the version check; nothing is built
        def __init__(self, env: object = None) -> None:
            pass

        def check(self) -> EngineInfo:
            return EngineInfo(server_version="20.10.24", api_version="1.41", buildkit=True)

        def image_digests(self, ref: str) -> None:  # no such base here (the plan keeps its tag)
            return None

        def registry_digest(self, ref: str) -> None:  # and no registry to ask
            return None

    monkeypatch.setattr(ops_build, "DockerEngine", Engine)  # where build makes its engine
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "torch-2.13.0+cpu-py3-none-any.whl").write_bytes(b"")
    request = build_request("pytorch", cpu=True, python="3.11", method="docker")
    env = {"PIP_CONFIG_FILE": os.devnull, "PATH": os.environ.get("PATH", "")}
    built = prepare_build(BuildRequest(request=request, wheelhouse=wh, environ=env)).plan
    rc = main(["install", "pytorch", "--cpu", "--python", "3.11", "--env", str(tmp_path / "env"),
               "--wheelhouse", str(wh), "--dry-run", "--json"])  # fmt: skip
    installed = json.loads(capsys.readouterr().out)["plan"]
    assert rc == 0
    assert built.version == installed["version"] == "2.13.0"
    assert built.reasons[-1] == installed["reasons"][-1] and "cannot be reached" in built.reasons[-1]
    assert built.method == "docker" and built.image is not None
    # without a local wheel: exit 7, as install
    with pytest.raises(NetworkError) as err:
        prepare_build(BuildRequest(request=request, environ=env))
    assert err.value.exit_code == 7
