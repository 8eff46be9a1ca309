"""The environments fwsetup made (issue 23): the registry in the user's data folder (fwsetup.envs), `fwsetup envs`,
`fwsetup remove`, and `install --skip-smoke` shown as untested until `fwsetup smoke` passes.

Real installs through the real command line (uv, offline, a tiny wheel made here: test_install_staged.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwsetup import envs, staging
from fwsetup.cli import main
from fwsetup.ui import state


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    from support import make_wheel
    from test_install_staged import RECIPE, SMOKE

    from fwsetup.backends.venv import find_uv

    if find_uv(dict(os.environ)) is None:
        pytest.skip("needs the uv binary (pip install uv)")
    make_wheel(tmp_path / "wheels", "1.0")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "fakefw.toml").write_text(RECIPE)
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "train_fakefw.py").write_text(SMOKE)
    monkeypatch.setenv("FWSETUP_SMOKE_DIR", str(tmp_path / "smoke"))
    monkeypatch.setenv("FWSETUP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "VIRTUAL_ENV", "FAKE_SMOKE_FAIL"):
        monkeypatch.delenv(var, raising=False)
    yield {"tmp": tmp_path, "data": tmp_path / "data"}
    state.install_target = state.committed_target = state.staging_inode = None


def install(w: dict, target: Path, *extra: str) -> tuple[int, str, str]:
    t = w["tmp"]
    return run("--recipes", str(t / "recipes"), "install", "fakefw", "--cpu", "--version", "1.0",
               "--env", str(target), "--wheelhouse", str(t / "wheels"), "--offline", *extra)  # fmt: skip


def listed(*extra: str) -> list[dict]:
    code, out, err = run("envs", "--json", *extra)
    assert code == 0, err
    return json.loads(out)["envs"]


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
    assert len(list(fake["data"].glob("envs.json.corrupt-*"))) >= 1
    json.loads((fake["data"] / "envs.json").read_text())  # whole again


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
    assert staging.made_problem(a) is None
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
    assert staging.made_problem(a) is None and envs.smoke_status(a).status == "passed"
