"""The environments fwsetup made (issue 23): the registry in the user's data folder (fwsetup.envs), `fwsetup envs`,
`fwsetup remove`, and `install --skip-smoke` shown as untested until `fwsetup smoke` passes.

Real installs through the real command line (uv, offline, a tiny wheel made here: backends/test_venv_staged.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from envs_world import fake, install, listed, run

from fwsetup import env_ownership, envs, staging
from fwsetup.ops.sync import check_host, read_lock_source

# `fake` is a fixture of the helper module: pytest finds it here, in this module's namespace
__all__ = ["fake"]


def test_install_registers_and_envs_lists_it(fake: dict) -> None:
    a, b = fake["tmp"] / "a", fake["tmp"] / "b"
    assert install(fake, a)[0] == 0
    assert install(fake, b)[0] == 0
    assert install(fake, b)[0] == 0  # a repeat (no-op) keeps one entry
    got = {e["path"]: e for e in listed()}
    assert set(got) == {str(a), str(b)}
    e = got[str(a)]
    assert (e["framework"], e["version"], e["variant"], e["method"], e["state"]) == (
        "fakefw",
        "1.0",
        "cpu",
        "venv",
        "ok",
    )
    assert e["smoke"]["status"] == "passed" and e["smoke"]["date"] and "loss 1 -> 0.5" in e["smoke"]["detail"]
    assert e["size_bytes"] > 10_000
    # the registry is in the data folder, one entry per env
    reg = json.loads((fake["data"] / "envs.json").read_text())
    assert reg["schema_version"] == 1 and sorted(x["path"] for x in reg["envs"]) == sorted(got)
    # the table: a human sees the same
    code, out, _err = run("envs")
    assert code == 0 and str(a) in out and "passed" in out and "fakefw" in out.lower()


def test_an_env_deleted_by_hand_is_dropped(fake: dict) -> None:
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    staging._rmtree(a)
    code, out, err = run("envs", "--json")
    assert code == 0, err
    (e,) = json.loads(out)["envs"]
    assert e["state"] == "missing"
    assert listed() == []  # dropped once reported
    # `remove` of an env deleted by hand just drops it (it was re-registered for the test)
    assert install(fake, a)[0] == 0
    staging._rmtree(a)
    code, _out, err = run("remove", str(a), "--yes")
    assert code == 0 and "no longer exists" in err
    assert listed() == []


def test_a_corrupt_registry_is_rebuilt_with_a_warning(fake: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # an env in the default place (<data dir>/envs/) is found again; the broken file is kept aside
    monkeypatch.chdir(fake["tmp"])
    t = fake["tmp"]
    code, _o, err = run("--recipes", str(t / "recipes"), "install", "fakefw", "--cpu", "--version", "1.0",
                        "--wheelhouse", str(t / "wheels"), "--offline")  # fmt: skip
    assert code == 0, err
    default = fake["data"] / "envs" / "fakefw-cpu"
    assert default.is_dir()
    for garbage in (b"{not json", b"\xff\xfe", b'{"schema_version": 99, "envs": []}', b"[]"):
        (fake["data"] / "envs.json").write_bytes(garbage)
        code, out, err = run("envs", "--json")
        assert code == 0, err
        assert "Traceback" not in err and "rebuilt" in err
        assert [e["path"] for e in json.loads(out)["envs"]] == [str(default)]
    # each broken file is kept aside, none replaced by a later one moved aside in the same second
    kept = sorted(p.read_bytes() for p in fake["data"].glob("envs.json.corrupt-*"))
    assert kept == sorted((b"{not json", b"\xff\xfe", b'{"schema_version": 99, "envs": []}', b"[]"))
    json.loads((fake["data"] / "envs.json").read_text())  # whole again


def test_a_data_folder_that_is_a_file_is_said_not_an_empty_list(
    fake: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FWSETUP_DATA_DIR naming a file: install warns that it cannot register; envs must not just say "none"
    f = fake["tmp"] / "not-a-folder"
    f.write_text("x")
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(f))
    code, _out, err = run("envs")
    assert code == 0 and "Traceback" not in err
    assert "is not a folder" in " ".join(err.split()) and "FWSETUP_DATA_DIR" in err
    assert f.read_text() == "x"


def test_concurrent_records_all_land(fake: dict, tmp_path: Path) -> None:
    # four processes registering at once (what parallel installs do): none is lost, the file stays whole
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    copies = []
    for i in range(4):  # envs fwsetup made elsewhere: record() reads each one's own files
        assert install(fake, fake["tmp"] / f"c{i}")[0] == 0
        copies.append(fake["tmp"] / f"c{i}")
    (fake["data"] / "envs.json").unlink()
    code = "import sys; from fwsetup import envs; from pathlib import Path\nfor _ in range(20): envs.record(Path(sys.argv[1]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p)]) for p in [a, *copies]]
    assert all(p.wait(60) == 0 for p in procs)
    assert sorted(e["path"] for e in listed("--no-size")) == sorted(str(p) for p in [a, *copies])


def test_remove_only_what_fwsetup_made(fake: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    # a folder fwsetup did not make: refused, untouched
    mine = fake["tmp"] / "mine"
    (mine / "bin").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    code, _out, err = run("remove", str(mine), "--yes")
    assert code == 2 and "not an environment fwsetup made" in err and (mine / "notes.txt").exists()
    # a copy of an env fwsetup made (its .fwsetup/ too): not proven by made.json, refused
    subprocess.run(["cp", "-a", str(a), str(fake["tmp"] / "copy")], check=True)
    code, _out, err = run("remove", str(fake["tmp"] / "copy"), "--yes")
    assert code == 2 and "copy" in err and (fake["tmp"] / "copy" / "bin").is_dir()
    # files of the user's at its top: refused
    (a / "notes.txt").write_text("mine")
    code, _out, err = run("remove", str(a), "--yes")
    assert code == 2 and "notes.txt" in err and a.is_dir()
    (a / "notes.txt").unlink()
    # no terminal and no --yes: refused, asks for --yes
    code, _out, err = run("remove", str(a))
    assert code == 2 and "--yes" in err and a.is_dir()
    # by the folder's name, as `fwsetup envs` shows it
    monkeypatch.chdir(fake["tmp"] / "mine")
    code, out, err = run("remove", "a", "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] is True and not a.exists()
    assert [p.name for p in a.parent.iterdir() if "fwsetup" in p.name] == []  # no staging left, no lock file
    assert listed() == []
    code, _out, err = run("remove", str(a), "--yes")
    assert code == 2 and "no such environment" in err


def test_skip_smoke_is_untested_until_smoke_passes(fake: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    a = fake["tmp"] / "a"
    code, out, err = install(fake, a, "--skip-smoke", "--json")
    assert code == 0, err
    flat = " ".join(err.split())
    assert (
        "NO SMOKE TEST" in flat
        and "UNTESTED" in flat
        and f"fwsetup smoke fakefw --python {a}/bin/python" in flat
    )
    assert json.loads(out)["smoke_status"] == "untested"
    lock = json.loads((a / ".fwsetup" / "lock.json").read_text())
    assert lock["smoke"] is None and lock["smoke_skipped"] == "--skip-smoke"
    assert env_ownership.made_problem(a) is None
    (e,) = listed()
    assert e["smoke"]["status"] == "untested" and e["smoke"]["detail"] == "--skip-smoke"
    assert envs.smoke_status(a).status == "untested"
    # a failing smoke: failed; a passing one: passed (and the env is still fwsetup's: made.json holds)
    monkeypatch.setenv("FAKE_SMOKE_FAIL", "1")
    code, _out, err = run("smoke", "fakefw", "--python", str(a / "bin" / "python"))
    assert code == 6
    assert listed()[0]["smoke"]["status"] == "failed"
    monkeypatch.delenv("FAKE_SMOKE_FAIL")
    code, _out, err = run("smoke", "fakefw", "--python", str(a / "bin" / "python"))
    assert code == 0, err
    (e,) = listed()
    assert e["smoke"]["status"] == "passed" and e["smoke"]["by"] == "smoke"
    assert env_ownership.made_problem(a) is None and envs.smoke_status(a).status == "passed"


# -- fwsetup sync: rebuild exactly from the lock ----------------------------------------------------------------


# What an installer writes about the install itself (PEP 376 INSTALLER, PEP 376/610 REQUESTED and direct_url.json,
# uv's uv_cache.json: where and when its cache got the wheel), not files of the package: left out of the comparison.
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json")


def records(env: Path) -> dict[str, list[str]]:
    """Every installed distribution's RECORD lines (file, sha256, size), by .dist-info name, sorted."""
    out = {}
    for d in env.glob("lib/python*/site-packages/*.dist-info"):
        lines = (d / "RECORD").read_text().splitlines()
        out[d.name] = sorted(ln for ln in lines if ln.split(",")[0].rsplit("/", 1)[-1] not in INSTALLER_FILES)
    return out


def test_sync_rebuilds_from_a_copied_lock_offline(fake: dict) -> None:
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    # the lock travels alone (another machine): .fwsetup/ copied, the env itself gone
    copied = fake["tmp"] / "copied-lock"
    subprocess.run(["cp", "-a", str(a / ".fwsetup"), str(copied)], check=True)
    b = fake["tmp"] / "b"
    code, out, err = run("sync", str(b), "--from-lock", str(copied), "--wheelhouse", str(fake["tmp"] / "wheels"),
                         "--offline", "--json")  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "synced" and res["smoke"]["ok"] and res["smoke_status"] == "passed"
    assert records(b) == records(a) and records(a)  # the same files with the same hashes
    assert env_ownership.made_problem(b) is None
    assert envs.smoke_status(b).by == "sync"
    log = (b / ".fwsetup" / "install.log").read_text()
    assert "pip sync" in log and "--require-hashes" in log
    assert str(b) in [e["path"] for e in listed("--no-size")]
    # again: already in sync, nothing changes
    code, out, err = run("sync", str(b), "--wheelhouse", str(fake["tmp"] / "wheels"), "--offline", "--json")
    assert code == 0 and json.loads(out)["status"] == "unchanged", err
    # in place from its own lock (the lock is read from a private copy while the folder is replaced); a
    # package added since is named and refused unless --force
    ino = a.stat().st_ino
    code, out, err = run("sync", str(a), "--wheelhouse", str(fake["tmp"] / "wheels"), "--offline", "--json")
    assert code == 0 and json.loads(out)["status"] == "synced", err
    assert a.stat().st_ino != ino and records(a) == records(b) and env_ownership.made_problem(a) is None
    site = next(a.glob("lib/python*/site-packages"))
    (site / "helper.py").write_text("x = 1\n")
    code, _out, err = run("sync", str(a), "--wheelhouse", str(fake["tmp"] / "wheels"), "--offline", "--force")
    assert code == 0 and not (site / "helper.py").exists(), err


def test_sync_refuses_a_file_that_is_not_the_locked_one(fake: dict) -> None:
    # a wheelhouse whose fakefw 1.0 differs from the locked one (same name and version): hash mismatch, exit 5
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    from support import make_wheel

    other = fake["tmp"] / "other-wheels"
    make_wheel(other, "1.0", generator="someone-else")
    b = fake["tmp"] / "b"
    code, _out, err = run("sync", str(b), "--from-lock", str(a), "--wheelhouse", str(other), "--offline")
    assert code == 5, err
    assert "hash" in err.lower() and not b.exists()
    assert "Traceback" not in err


def test_sync_in_place_needs_an_env_fwsetup_made(fake: dict) -> None:
    mine = fake["tmp"] / "mine"
    mine.mkdir()
    (mine / "x.txt").write_text("x")
    code, _out, err = run("sync", str(mine))
    assert code == 2 and "not an environment fwsetup made" in err
    code, _out, err = run("sync", str(fake["tmp"] / "new"), "--from-lock", str(mine))
    assert code == 2 and "no pylock.toml" in err


FIXTURES = Path(__file__).parent.parent / "fixtures"
TORCH_LOCK = """lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.12"

[[packages]]
name = "torch"
version = "2.15.0+cu130"
wheels = [{{ url = "https://download.pytorch.org/whl/cu130/{wheel}", hashes = {{ sha256 = "{sha}" }} }}]
"""


@pytest.fixture()
def h100_lock(tmp_path: Path) -> Path:
    """The lock of a PyTorch cu130 env made on an H100 with driver 580 (plan.json + pylock.toml), copied here."""
    code, out, err = run(
        "plan", "pytorch", "--gpu", "--host-profile", str(FIXTURES / "datacenter-h100.json"), "--json"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["variant"], plan["min_driver"], plan["python"]) == ("cu130", "580.65.06", "3.12")
    lock = tmp_path / "lock"
    lock.mkdir()
    (lock / "plan.json").write_text(out)
    wheel = "torch-2.15.0%2Bcu130-cp312-cp312-manylinux_2_28_x86_64.whl"
    (lock / "pylock.toml").write_text(TORCH_LOCK.format(wheel=wheel, sha="ab" * 32))
    return lock


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("driver-cuda129.json", "needs NVIDIA driver >= 580.65.06; this machine has 575.57.08"),
        ("no-gpu.json", "needs an NVIDIA GPU; this machine has no NVIDIA GPU"),
        ("kepler.json", "needs NVIDIA driver >= 580.65.06; this machine has 470.256.02"),
        ("centos7-glibc217.json", "glibc"),  # the locked wheel is manylinux_2_28
        ("linux-aarch64.json", "torch 2.15.0+cu130 cannot be installed here"),  # an x86_64 wheel
    ],
)
def test_sync_refuses_a_lock_this_machine_cannot_run(
    h100_lock: Path, tmp_path: Path, profile: str, expected: str
) -> None:
    target = tmp_path / "new"
    code, out, err = run(
        "sync", str(target), "--from-lock", str(h100_lock), "--host-profile", str(FIXTURES / profile)
    )
    flat = " ".join(err.split())
    assert code == 3, err
    assert "this machine cannot run the environment locked in" in flat and expected in flat, flat
    assert "Nothing was built" in flat and not target.exists() and "Traceback" not in err and out == ""
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".new")] == []


def test_the_lock_check_passes_on_the_machine_it_was_made_for(h100_lock: Path) -> None:

    src = read_lock_source(h100_lock)
    assert [p.files for p in src.packages] == [("torch-2.15.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl",)]
    verdict = check_host(src, str(FIXTURES / "datacenter-h100.json"))
    assert verdict.ok, verdict.reasons
    kinds = {c["kind"] for c in check_host(src, str(FIXTURES / "kepler.json")).codes}
    assert "locked_driver_too_old" in kinds


def test_listing_with_nothing_registered_makes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(tmp_path / "data"))
    code, out, err = run("envs", "--json")
    assert code == 0 and json.loads(out)["envs"] == [] and not (tmp_path / "data").exists(), err
    code, _out, err = run("envs")
    assert code == 0 and "no environments made by fwsetup" in err


def test_a_lock_sync_cannot_use_is_refused_with_the_reason(h100_lock: Path, tmp_path: Path) -> None:
    target = str(tmp_path / "new")
    pylock = h100_lock / "pylock.toml"
    good = pylock.read_text()
    for text, expected in [
        ("lock-version = [", "not a valid pylock.toml"),
        ('lock-version = "1.0"\n', "not a pylock.toml"),
        (
            good.replace('hashes = { sha256 = "' + "ab" * 32 + '" }', "hashes = {}"),
            "has no sha256 in the lock",
        ),
    ]:
        pylock.write_text(text)
        code, _out, err = run("sync", target, "--from-lock", str(pylock))
        assert code == 2 and expected in " ".join(err.split()), err
    pylock.write_text(good)
    plan = json.loads((h100_lock / "plan.json").read_text())
    (h100_lock / "plan.json").write_text(json.dumps({**plan, "method": "conda"}))
    code, _out, err = run("sync", target, "--from-lock", str(h100_lock))
    assert code == 2 and "fwsetup sync rebuilds venv environments" in " ".join(err.split())
    (h100_lock / "plan.json").unlink()
    code, _out, err = run("sync", target, "--from-lock", str(pylock))
    assert code == 2 and "no plan for" in err
    assert not Path(target).exists()


def test_registry_trouble_never_fails_an_install(fake: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    before = (fake["data"] / "envs.json").read_bytes()
    # a write that dies before the rename (a crash, a full disk): the old registry is whole, no temp file left
    real = os.replace

    def boom(src: object, dst: object) -> None:
        if str(dst).endswith("envs.json"):
            raise OSError(28, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", boom)
    code, _out, err = install(fake, fake["tmp"] / "b")
    assert code == 0 and "could not update the registry" in " ".join(err.split()), err
    assert (fake["data"] / "envs.json").read_bytes() == before
    assert [p.name for p in fake["data"].iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(os, "replace", real)
    # a data folder that cannot hold the registry at all: a warning, the install stands
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(a / "pyvenv.cfg"))
    code, _out, err = install(fake, fake["tmp"] / "c")
    assert code == 0 and "warning" in err and "Traceback" not in err


def test_sync_names_its_target_as_sync_takes_it(fake: dict) -> None:
    # `fwsetup sync ENV` has no --env: a bad target is named ENV, in the message and in what to do
    a = fake["tmp"] / "a"
    assert install(fake, a)[0] == 0
    afile = fake["tmp"] / "afile"
    afile.write_text("x")
    mine = fake["tmp"] / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years")
    for target, why in ((afile, "is a file"), (mine, "not an environment fwsetup made")):
        code, _out, err = run(
            "--recipes", str(fake["tmp"] / "recipes"), "sync", str(target), "--from-lock", str(a)
        )
        flat = " ".join(err.split())
        assert code == 2 and why in flat, flat
        assert "--env" not in flat and "ENV" in flat, flat
    assert afile.read_text() == "x" and (mine / "thesis.tex").read_text() == "years"
    # install still names its own flag
    code, _out, err = install(fake, afile)
    assert code == 2 and "--env" in err
