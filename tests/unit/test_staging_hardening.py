"""Issue 9, items 1, 5, 7 and part of 10: what an install may replace, whether an environment is still whole,
symbolic links as targets, and a bad --env refused before any work starts (exit 2, nothing left behind).

Each test reproduces the attack first. No network: real uv, offline, on tiny wheels made here (see
backends/test_venv_staged.py); the real torch wheel (PIP_FIND_LINKS) only in the `network` test at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from env_hardening import _site, flat, fwsetup
from venv_world import (  # the staged-install tests' helpers; `world` comes from conftest.py
    installed_version,
    options_for,
    plan_for,
)

from fwsetup import env_ownership, envmeta, installed_files, staging
from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda import CondaBackend
from fwsetup.backends.conda_tools import RattlerInstaller
from fwsetup.backends.installer import find_uv
from fwsetup.backends.venv import VenvBackend
from fwsetup.detect.environment import inspect_env
from fwsetup.errors import InstallError, UsageError
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.recipes.schema import CondaSpec

needs_uv = pytest.mark.skipif(
    find_uv(dict(os.environ)) is None, reason="needs the uv binary (pip install uv)"
)


def thesis_folder(parent: Path, *, fwsetup_dir: bool = True) -> Path:
    p = parent / "P"
    (p / "src").mkdir(parents=True)
    if fwsetup_dir:
        (p / ".fwsetup").mkdir()
    (p / "src" / "thesis.tex").write_text("precious")
    return p


def nothing_left_beside(target: Path) -> list[str]:
    return sorted(n.name for n in target.parent.iterdir() if n.name.startswith(f".{target.name}.fwsetup"))


# -- item 1: only a folder whose lock file fwsetup wrote may be replaced -------------------------------------


@needs_uv
@pytest.mark.parametrize(
    ("lock_text", "found"),
    [
        (None, ".fwsetup/ folder with no lock.json"),
        ("{not json", "not valid JSON"),
        ('["a list"]', "fwsetup did not write"),
        (
            '{"lock_version": 7, "plan_digest": "sha256:' + "0" * 64 + '", "packages": []}',
            "fwsetup did not write",
        ),
        ('{"lock_version": 1, "packages": []}', "no plan digest"),
        (
            '{"lock_version": 1, "plan_digest": "sha256:' + "0" * 64 + '", "written_by": "other"}',
            "did not write",
        ),
    ],
)
def test_a_folder_with_a_fwsetup_subfolder_is_not_replaced(
    world: dict, lock_text: str | None, found: str
) -> None:
    target = thesis_folder(world["parent"])
    if lock_text is not None:
        (target / ".fwsetup" / "lock.json").write_text(lock_text)
    with pytest.raises(UsageError) as info:
        VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    msg = info.value.message
    assert "not an environment fwsetup made" in msg and found in msg and "src" in msg
    assert (target / "src" / "thesis.tex").read_text() == "precious"
    assert nothing_left_beside(target) == []  # no lock file, no staging folder


@needs_uv
def test_a_file_is_not_replaced(world: dict) -> None:
    world["parent"].mkdir(parents=True)
    target = world["parent"] / "notes.txt"
    target.write_text("precious")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    assert target.read_text() == "precious" and nothing_left_beside(target) == []


@needs_uv
def test_an_environment_fwsetup_made_is_replaced_and_an_empty_folder_is_used(world: dict) -> None:
    target = world["parent"] / "env"
    target.mkdir(parents=True)  # empty: fine
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    lock = json.loads((target / ".fwsetup" / "lock.json").read_text())
    assert lock["written_by"] == "fwsetup" and envmeta.lock_file_problem(target) is None
    assert VenvBackend().install(plan_for(world, "2.0"), options_for(world, target)).changed
    assert installed_version(target) == "2.0"


def test_the_conda_backend_refuses_a_foreign_folder_too(tmp_path: Path) -> None:
    target = thesis_folder(tmp_path)
    plan = Plan(
        status="ok",
        framework="tinytrain",
        version="0.1.0",
        variant="cpu",
        accelerator="cpu",
        method="conda",
        python="3.11",
        conda=CondaSpec(channels=["conda-forge"], packages=["tinytrain"]),
    )
    with pytest.raises(UsageError, match="not an environment fwsetup made"):
        CondaBackend(installer=None).install(plan, InstallOptions(target=target, env={"PATH": ""}))
    assert (target / "src" / "thesis.tex").read_text() == "precious" and nothing_left_beside(target) == []
    # also when the folder appears after the first check (the check under the lock)
    with pytest.raises(UsageError, match="not an environment fwsetup made"):
        env_ownership.refuse_foreign(target)


def test_cli_refuses_the_thesis_folder_with_exit_2(tmp_path: Path) -> None:
    target = thesis_folder(tmp_path)
    cp = fwsetup("install", "pytorch", "--cpu", "--version", "2.13.0", "--env", str(target))
    assert cp.returncode == 2, cp.stderr
    assert "not an environment fwsetup made" in flat(cp.stderr) and "thesis" not in cp.stdout
    assert "Traceback" not in cp.stderr
    assert (target / "src" / "thesis.tex").read_text() == "precious"
    assert nothing_left_beside(target) == []
    cp = fwsetup("install", "pytorch", "--cpu", "--method", "conda", "--env", str(target))
    assert cp.returncode == 2, cp.stderr
    assert (target / "src" / "thesis.tex").read_text() == "precious"


# -- item 10: a bad --env is refused before any work starts, and leaves nothing --------------------------------


@pytest.mark.parametrize(
    "where", ["/proc/fwsetup-env", "/sys/fwsetup-env", "/dev/fwsetup-env", "FILE/sub", "FILE"]
)
def test_cli_bad_env_is_exit_2(tmp_path: Path, where: str) -> None:
    (tmp_path / "FILE").write_text("x")
    env = where.replace("FILE", str(tmp_path / "FILE"))
    cp = fwsetup("install", "pytorch", "--cpu", "--env", env, "--dry-run")
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    err = flat(cp.stderr)
    assert "unexpected" not in err and "Traceback" not in err
    assert ("kernel filesystem" in err) if where.startswith("/") else ("a file" in err)
    assert (tmp_path / "FILE").read_text() == "x" and (where == "FILE" or not os.path.lexists(env))


def test_read_only_and_unwritable_places_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, path: str) -> None:
            self.f_flag = real_statvfs(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)
    with pytest.raises(UsageError, match="read-only filesystem"):
        env_ownership.check_target(tmp_path / "a" / "env")
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(os, "statvfs", real_statvfs)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(UsageError, match="permission denied"):
        env_ownership.check_target(tmp_path / "env")


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UsageError, match="symbolic link"):
        env_ownership.check_target(tmp_path / "a")


def test_a_lock_file_is_not_left_behind_when_nothing_was_installed(tmp_path: Path) -> None:
    target = tmp_path / "env"
    with pytest.raises(RuntimeError), staging.target_lock(target):
        raise RuntimeError("the install failed")
    assert nothing_left_beside(target) == []
    target.mkdir()
    with staging.target_lock(target):
        pass
    assert nothing_left_beside(target) == [".env.fwsetup.lock"]  # beside an environment: harmless, kept


def test_removing_the_lock_file_keeps_waiters_serialised(tmp_path: Path) -> None:
    """A waiter that locked the file a holder removed must not think it holds the lock."""
    target = tmp_path / "env"
    got = threading.Event()
    release = threading.Event()
    messages: list[str] = []

    def second() -> None:
        with staging.target_lock(target, on_wait=messages.append):
            got.set()
            release.wait(30)

    with staging.target_lock(target):
        t = threading.Thread(target=second)
        t.start()
        deadline = time.monotonic() + 10
        while not messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages  # it is waiting on the file we hold
    # we released and removed the file (no target): the waiter starts again on a new file and gets it
    assert got.wait(10)
    with pytest.raises(InstallError, match="still installing"), staging.target_lock(target, timeout=0.5):
        pass
    release.set()
    t.join(10)


# -- item 5: a damaged environment is not "already installed", and doctor does not tick it -----------------


@needs_uv
@pytest.mark.parametrize("damage", ["package-folder", "one-file", "dist-info", "big-file-truncated"])
def test_a_damaged_environment_is_repaired_not_a_no_op(world: dict, damage: str) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    site = _site(target)
    if damage == "package-folder":
        shutil.rmtree(site / "fakefw")  # the attack: rm -rf ENV/lib/python3.X/site-packages/torch
        why = "1 of"
    elif damage == "one-file":
        (site / "fakefw" / "__init__.py").unlink()
        why = "fakefw/__init__.py"
    elif damage == "dist-info":
        shutil.rmtree(site / "fakefw-1.0.dist-info")
        why = "not installed any more"
    else:
        # a big file listed with its size; truncated to another size
        lib = site / "fakefw" / "big.bin"
        lib.write_bytes(b"\0" * 1_500_000)
        record = site / "fakefw-1.0.dist-info" / "RECORD"
        record.write_text(record.read_text() + "fakefw/big.bin,,1500000\n")
        env_ownership.seal(target, target)  # as if installed so (files.json and made.json describe it)
        assert installed_files.check_installed_files(target, [{"name": "fakefw", "version": "1.0"}]) is None
        lib.write_bytes(b"\0" * 10)
        why = "fakefw/big.bin"
    stages: list[str] = []
    r = VenvBackend().install(
        plan_for(world, "1.0"), options_for(world, target), lambda s, m: stages.append(m)
    )
    assert r.changed, r.message
    assert "repaired" in r.message and why in r.message
    assert any("damaged" in m and "reinstalling" in m for m in stages)
    assert installed_version(target) == "1.0"
    again = VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    assert not again.changed and again.message.startswith("already installed: same plan")


@needs_uv
def test_force_reinstalls_an_intact_environment(world: dict) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    ino = target.stat().st_ino
    opts = InstallOptions(
        target=target,
        env=dict(os.environ),
        wheelhouse=world["wh"],
        offline=True,
        python=sys.executable,
        force=True,
    )
    r = VenvBackend().install(plan_for(world, "1.0"), opts)
    assert r.changed and target.stat().st_ino != ino


def _fake_torch_env(tmp_path: Path) -> tuple[Path, Path]:
    """A venv (no pip) with a hand-installed torch: package, version.py, dist-info with RECORD."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = installed_files.site_packages(env)
    files = {
        "torch/__init__.py": "__version__ = '2.13.0+cpu'\n",
        "torch/version.py": "__version__ = '2.13.0+cpu'\ncuda = None\n",
        "torch-2.13.0+cpu.dist-info/METADATA": "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\n",
    }
    record = []
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        record.append(f"{rel},sha256=x,{len(text)}")
    record.append("torch-2.13.0+cpu.dist-info/RECORD,,")
    (site / "torch-2.13.0+cpu.dist-info" / "RECORD").write_text("\n".join(record) + "\n")
    return env, site


def test_envscript_reads_the_record(tmp_path: Path) -> None:
    env, site = _fake_torch_env(tmp_path)
    _, fws = inspect_env(str(env / "bin" / "python"))
    (torch,) = fws
    assert torch.files is not None and (torch.files.checked, torch.files.missing) == (4, 0)  # RECORD too
    (site / "torch" / "version.py").write_text("__version__ = '2.13.0+cpu'\n")  # another size
    shutil.rmtree(site / "torch" / "__pycache__", ignore_errors=True)
    (site / "torch" / "__init__.py").unlink()
    _, (torch,) = inspect_env(str(env / "bin" / "python"))
    assert torch.files is not None and torch.files.missing == 2
    assert set(torch.files.examples) == {"torch/__init__.py", "torch/version.py"}


def test_doctor_does_not_tick_a_framework_whose_files_are_missing(tmp_path: Path) -> None:
    env, site = _fake_torch_env(tmp_path)
    profile = Path(__file__).resolve().parents[1] / "fixtures"
    host = next(iter(sorted(profile.glob("*cpu*.json"))), None) or next(iter(sorted(profile.glob("*.json"))))
    ok = fwsetup("doctor", "--python", str(env / "bin" / "python"), "--host-profile", str(host), "--json")
    doc = json.loads(ok.stdout)
    assert not [f for f in doc["findings"] if f["id"].endswith("files-missing")]
    shutil.rmtree(site / "torch")  # the attack
    cp = fwsetup("doctor", "--python", str(env / "bin" / "python"), "--host-profile", str(host), "--json")
    assert cp.returncode == 1, cp.stderr
    doc = json.loads(cp.stdout)
    (finding,) = [f for f in doc["findings"] if f["id"] == "framework.torch.files-missing"]
    assert finding["severity"] == "error" and "2 of 4" in finding["title"]
    assert "pip install" in finding["remedy"] and "torch==2.13.0+cpu" in finding["remedy"]
    text = fwsetup(
        "doctor",
        "--python",
        os.path.relpath(env / "bin" / "python", tmp_path),
        "--host-profile",
        str(host),
        cwd=tmp_path,
    )
    line = next(
        ln for ln in text.stdout.splitlines() if ln.strip().startswith(("✘ torch", "✓ torch", "torch"))
    )
    assert "✘" in line and "damaged" in line and "✓" not in line


# -- item 7: a symbolic link as --env --------------------------------------------------------------------------


@needs_uv
def test_a_symlinked_target_updates_the_environment_it_points_to(world: dict) -> None:
    real = world["parent"] / "real"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, real))
    link = world["tmp"] / "link"
    link.symlink_to(real)
    assert env_ownership.check_target(link) == real
    same = VenvBackend().install(plan_for(world, "1.0"), options_for(world, link))
    assert not same.changed and same.target == real  # the same environment: one lock file, one no-op
    r = VenvBackend().install(plan_for(world, "2.0"), options_for(world, link))
    assert r.changed and r.target == real
    assert link.is_symlink() and link.resolve() == real  # the link is still a link
    assert installed_version(real) == "2.0"  # and the environment it names is the new one
    assert nothing_left_beside(link) == []  # no lock file of its own


@needs_uv
def test_a_link_and_its_folder_lock_as_one(world: dict) -> None:
    real = world["parent"] / "real"
    link = world["tmp"] / "link"
    link.symlink_to(real)  # dangling: the environment will be made where it points
    waited: list[str] = []
    out: dict = {}

    def via_link() -> None:
        out["r"] = VenvBackend().install(
            plan_for(world, "1.0"), options_for(world, link), lambda s, m: waited.append(m)
        )

    with staging.target_lock(real):
        t = threading.Thread(target=via_link)
        t.start()
        deadline = time.monotonic() + 30
        while not any("waiting" in m for m in waited) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("waiting" in m for m in waited)
    t.join(120)
    assert out["r"].changed and real.is_dir() and link.is_symlink() and installed_version(link) == "1.0"


def test_cli_says_where_a_link_leads(tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real)
    cp = fwsetup(
        "install", "pytorch", "--cpu", "--version", "2.13.0", "--env", str(link), "--dry-run", "--json"
    )
    if cp.returncode != 0:
        pytest.skip(f"the plan is refused on this machine: {cp.stderr[-300:]}")
    doc = json.loads(cp.stdout)
    assert doc["target"] == str(real) and any("symbolic link" in n for n in doc["notes"])


# -- the real thing: torch 2.13.0 from the wheelhouse -----------------------------------------------------------


def test_conda_env_with_a_file_removed_is_repaired(tmp_path: Path) -> None:
    pytest.importorskip("rattler", reason="py-rattler builds and solves the test channel")
    pytest.importorskip("conda_package_handling", reason="conda-package-handling builds the test channel")
    from conda_channel.build import SMOKE_SCRIPT, build_channel

    channel = build_channel(tmp_path / "channel")
    backend = CondaBackend(RattlerInstaller.load(cache_dir=tmp_path / "pkgs"))
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    plan = Plan(
        status="ok",
        framework="tinytrain",
        version="0.1.0",
        variant="cpu",
        accelerator="cpu",
        method="conda",
        python=py,
        conda=CondaSpec(channels=[str(channel)], packages=["tinytrain=0.1.0"]),
        smoke=SmokeSpec(script=str(SMOKE_SCRIPT), device="cpu"),
    )
    target = tmp_path / "tt"
    opts = InstallOptions(target=target, env={"PATH": os.environ.get("PATH", "")})
    assert backend.install(plan, opts).changed
    assert not backend.install(plan, opts).changed
    record = json.loads(next((target / "conda-meta").glob("tinytrain-*.json")).read_text())
    victim = next(f for f in record["files"] if f.endswith(".py"))
    (target / victim).unlink()  # conda-meta still lists it: the old check said "same plan"
    said: list[str] = []
    r = backend.install(plan, opts, lambda s, m: said.append(m))
    assert r.changed and any("damaged" in m and victim in m for m in said)
    assert (target / victim).is_file()
    assert not backend.install(plan, InstallOptions(target=target, env=opts.env)).changed
    assert backend.install(plan, InstallOptions(target=target, env=opts.env, force=True)).changed


# -- issue 21: a file overwritten in place (same size) is damage; a repair never re-links uv's cache ---------


def _overwrite_8_bytes(path: Path) -> None:
    """What `dd conv=notrunc` does: 8 bytes changed in place, same size, same inode (so the same file as
    uv's cache entry where uv hard-linked it)."""
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(b"XXXXXXXX")


def _cached_options(world: dict, target: Path, **kw: object) -> InstallOptions:
    env = {**os.environ, "UV_CACHE_DIR": str(world["tmp"] / "uv-cache")}
    env.pop("UV_LINK_MODE", None)
    return InstallOptions(
        target=target, env=env, wheelhouse=world["wh"], offline=True, python=sys.executable, **kw
    )  # type: ignore[arg-type]


@needs_uv
def test_a_same_size_overwrite_is_repaired_and_the_cache_is_not_relinked(world: dict) -> None:
    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, target))
    module = _site(target) / "fakefw" / "__init__.py"
    size, linked = module.stat().st_size, module.stat().st_nlink > 1  # uv hard-links from its cache
    _overwrite_8_bytes(module)
    assert module.stat().st_size == size
    why = installed_files.check_installed_files(target, [{"name": "fakefw", "version": "1.0"}])
    assert why is not None and "fakefw/__init__.py" in why
    stages: list[str] = []
    r = VenvBackend().install(
        plan_for(world, "1.0"), _cached_options(world, target), lambda s, m: stages.append(m)
    )
    assert r.changed and "repaired" in r.message and "fakefw/__init__.py" in r.message, r.message
    assert any("uv's cache" in m for m in stages)
    # the repaired file is the wheel's (its smoke test imported it), and a new environment from the same
    # cache is intact too: the damaged cache entry was not linked again
    assert installed_version(target) == "1.0" and not module.read_bytes().startswith(b"XXXXXXXX")
    other = world["parent"] / "other"
    VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, other))
    assert installed_version(other) == "1.0"
    again = VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, target))
    assert not again.changed, again.message
    assert (
        linked or module.stat().st_nlink == 1
    )  # (hard links where uv made them; the check holds either way)


@needs_uv
def test_doctor_reports_a_same_size_overwrite_with_the_repair_command(world: dict) -> None:
    from support import make_wheel

    make_wheel(world["wh"], "2.13.0", name="torch")
    plan = Plan(
        status="ok", framework="pytorch", title="PyTorch", version="2.13.0", variant="cpu", accelerator="cpu",
        python=f"{sys.version_info[0]}.{sys.version_info[1]}", requirements=["torch==2.13.0", "fakefw==1.0"],
        smoke=SmokeSpec(script=str(world["smoke"])),
    )  # fmt: skip
    target = world["parent"] / "torch-env"
    VenvBackend().install(plan, _cached_options(world, target))
    python = str(target / "bin" / "python")
    cp = fwsetup("doctor", "--python", python, "--json")
    torch = next(f for f in json.loads(cp.stdout)["frameworks"] if f["name"] == "torch")
    assert torch["files"]["missing"] == 0, torch
    _overwrite_8_bytes(_site(target) / "torch" / "__init__.py")
    cp = fwsetup("doctor", "--python", python, "--json")
    assert cp.returncode == 1, cp.stderr
    doc = json.loads(cp.stdout)
    torch = next(f for f in doc["frameworks"] if f["name"] == "torch")
    assert torch["files"]["missing"] == 1 and "torch/__init__.py" in torch["files"]["examples"]
    finding = next(f for f in doc["findings"] if f["id"] == "framework.torch.files-missing")
    assert f"fwsetup install pytorch --env {target} --force" in finding["remedy"]


# -- issue 21: "fwsetup made this folder" is proven by a record a copy cannot carry ----------------------------


def _project_with_a_copy_of(env: Path, project: Path, *, whole: bool) -> None:
    """A git repository that committed an environment's .fwsetup/ (or a copy of the whole environment)."""
    if whole:
        shutil.copytree(env, project, symlinks=True)
    else:
        project.mkdir(parents=True)
        shutil.copytree(env / ".fwsetup", project / ".fwsetup")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "train.py").write_text("precious code\n")


@needs_uv
@pytest.mark.parametrize("whole", [False, True], ids=["fwsetup-folder-committed", "whole-env-copied"])
def test_a_repository_holding_a_copy_of_an_envs_record_is_never_replaced(world: dict, whole: bool) -> None:
    env = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, env))
    project = world["parent"] / "project"
    _project_with_a_copy_of(env, project, whole=whole)
    for version in ("1.0", "2.0"):  # same plan (not "already installed") and another one (not replaced)
        with pytest.raises(UsageError, match="not an environment fwsetup made") as err:
            VenvBackend().install(plan_for(world, version), options_for(world, project))
        assert ".git" in str(err.value) and "train.py" in str(err.value)
    assert (project / "train.py").read_text() == "precious code\n" and (project / ".git" / "HEAD").is_file()
    assert nothing_left_beside(project) == []
    # the environment fwsetup made is still its own
    assert VenvBackend().install(plan_for(world, "2.0"), options_for(world, env)).changed


@needs_uv
def test_cli_refuses_a_repository_with_a_committed_fwsetup_folder_with_exit_2(world: dict) -> None:
    env = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, env))
    project = world["parent"] / "project"
    _project_with_a_copy_of(env, project, whole=False)
    cp = fwsetup("install", "pytorch", "--cpu", "--version", "2.13.0", "--env", ".", cwd=project)
    assert cp.returncode == 2, cp.stderr
    assert "not an environment fwsetup made" in flat(cp.stderr) and ".git" in flat(cp.stderr)
    assert (project / "train.py").is_file() and "Traceback" not in cp.stderr


@needs_uv
def test_files_of_yours_in_an_env_fwsetup_made_are_named_and_never_replaced(world: dict) -> None:
    env = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, env))
    (env / "notes.txt").write_text("mine\n")
    (env / "myproject").mkdir()
    # the same plan again touches nothing: a no-op, files of yours or not
    assert not VenvBackend().install(plan_for(world, "1.0"), options_for(world, env)).changed
    for force in (False, True):
        opts = InstallOptions(target=env, env=dict(os.environ), wheelhouse=world["wh"], offline=True,
                              python=sys.executable, force=force)  # fmt: skip
        with pytest.raises(UsageError, match="holds files of yours") as err:
            VenvBackend().install(plan_for(world, "2.0"), opts)
        assert "myproject" in str(err.value) and "notes.txt" in str(err.value)
    assert (env / "notes.txt").read_text() == "mine\n" and installed_version(env) == "1.0"


# -- issue 21: what a user added to an environment is named before a swap would drop it -----------------------


@needs_uv
def test_packages_and_files_you_added_are_named_and_kept_unless_force(world: dict) -> None:
    from support import make_wheel

    target = world["parent"] / "fake"
    VenvBackend().install(plan_for(world, "1.0"), options_for(world, target))
    make_wheel(world["tmp"] / "mine", "0.3", name="userpkg")
    uv = find_uv(dict(os.environ))
    assert uv is not None
    subprocess.run(
        [uv, "pip", "install", "--python", str(target / "bin" / "python"), "--offline", "--no-index",
         "--find-links", str(world["tmp"] / "mine"), "userpkg==0.3"],
        check=True, capture_output=True,
    )  # fmt: skip
    (_site(target) / "notebook_helper.py").write_text("x = 1\n")
    # a repeat of the same plan is still a no-op: nothing is dropped
    assert not VenvBackend().install(plan_for(world, "1.0"), options_for(world, target)).changed
    with pytest.raises(UsageError, match="fwsetup did not install") as err:
        VenvBackend().install(plan_for(world, "2.0"), options_for(world, target))
    assert "userpkg 0.3" in str(err.value) and "site-packages/notebook_helper.py" in str(err.value)
    assert "--force" in (err.value.hint or "")
    assert installed_version(target) == "1.0" and (_site(target) / "userpkg").is_dir()
    assert [n for n in nothing_left_beside(target) if "staging" in n or "-old-" in n] == []
    stages: list[str] = []
    opts = InstallOptions(target=target, env=dict(os.environ), wheelhouse=world["wh"], offline=True,
                          python=sys.executable, force=True)  # fmt: skip
    r = VenvBackend().install(plan_for(world, "2.0"), opts, lambda s, m: stages.append(m))
    assert r.changed and installed_version(target) == "2.0"
    assert any("dropping" in m and "userpkg 0.3" in m for m in stages)
    assert not (_site(target) / "userpkg").exists()


@needs_uv
def test_a_new_environment_never_takes_a_file_damaged_in_uvs_cache(world: dict) -> None:
    """A file changed in place in one environment is uv's cache entry too (hard links): a new environment
    linked from it is refused before the swap (its files are checked against their RECORD while the smoke
    test runs), the damaged package leaves uv's cache, and the next run is intact. Here the change keeps the
    module valid Python, so the smoke test alone would have passed."""
    first = world["parent"] / "first"
    VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, first))
    module = _site(first) / "fakefw" / "__init__.py"
    if module.stat().st_nlink < 2:
        pytest.skip("uv copied instead of hard-linking here (cache on another filesystem): nothing is shared")
    text = module.read_text()
    module.write_text(text.replace('"1.0"', '"6.6"'))  # same size, in place: the cache's file too
    new = world["parent"] / "new"
    with pytest.raises(InstallError, match="differ from its RECORD") as err:
        VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, new))
    assert "removed from uv's cache" in str(err.value) and not new.exists()
    VenvBackend().install(plan_for(world, "1.0"), _cached_options(world, new))
    assert installed_version(new) == "1.0"
