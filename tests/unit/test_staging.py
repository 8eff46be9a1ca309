"""Staging folder, atomic swap, lock and recovery: the "nothing half-done" guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fwsetup import envmeta, staging
from fwsetup.errors import InstallError


def _litter(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "fwsetup-staging" in p.name or "fwsetup-old" in p.name)


def _make_env(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "marker").write_text(text)


def test_commit_replaces_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "env"
    _make_env(target, "old")
    with staging.target_lock(target), staging.Staging(target) as st:
        assert st.path.parent == tmp_path and st.path.is_dir()
        (st.path / "marker").write_text("new")
        st.commit()
    assert (target / "marker").read_text() == "new"
    assert _litter(tmp_path) == []


def test_commit_into_missing_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "env"
    with staging.target_lock(target), staging.Staging(target) as st:
        (st.path / "marker").write_text("new")
        st.commit()
    assert (target / "marker").read_text() == "new"


def test_failure_leaves_target_untouched_and_keeps_log(tmp_path: Path) -> None:
    target = tmp_path / "env"
    _make_env(target, "old")
    inode = target.stat().st_ino
    st = staging.Staging(target)
    with pytest.raises(RuntimeError), staging.target_lock(target), st:
        st.meta.mkdir()
        st.log_file.write_text("resolving...\nerror: no matching distribution for foo\n")
        raise RuntimeError("boom")
    assert (target / "marker").read_text() == "old"
    assert target.stat().st_ino == inode
    assert _litter(tmp_path) == []
    assert st.failure_log is not None and st.failure_log.parent == tmp_path / staging.LOG_DIR
    assert "no matching distribution" in st.failure_log.read_text()


def test_keyboard_interrupt_cleans_staging(tmp_path: Path) -> None:
    target = tmp_path / "env"
    _make_env(target, "old")
    with pytest.raises(KeyboardInterrupt), staging.target_lock(target), staging.Staging(target) as st:
        (st.path / "partial").write_text("x")
        raise KeyboardInterrupt
    assert _litter(tmp_path) == []
    assert (target / "marker").read_text() == "old"


def test_swap_fallback_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "_exchange", lambda a, b: False)
    target = tmp_path / "env"
    _make_env(target, "old")
    with staging.target_lock(target), staging.Staging(target) as st:
        (st.path / "marker").write_text("new")
        st.commit()
    assert (target / "marker").read_text() == "new"
    assert _litter(tmp_path) == []


def test_recover_removes_stale_staging_and_restores_moved_aside_target(tmp_path: Path) -> None:
    target = tmp_path / "env"
    # A run killed between the two renames of the fallback swap: the target is aside, staging is there.
    _make_env(tmp_path / ".env.fwsetup-old-123-abc", "old")
    _make_env(tmp_path / ".env.fwsetup-staging-123-abc", "half")
    with staging.target_lock(target):
        done = staging.recover(target)
    assert len(done) == 2
    assert (target / "marker").read_text() == "old"
    assert _litter(tmp_path) == []


def test_recover_leaves_other_names_alone(tmp_path: Path) -> None:
    target = tmp_path / "env"
    _make_env(tmp_path / ".env2.fwsetup-staging-1-a", "other target's")
    with staging.target_lock(target):
        assert staging.recover(target) == []
    assert (tmp_path / ".env2.fwsetup-staging-1-a").exists()


def test_sigkilled_staging_is_cleaned_by_next_run(tmp_path: Path) -> None:
    target = tmp_path / "env"
    _make_env(target, "old")
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from fwsetup import staging
        t = Path({str(target)!r})
        with staging.target_lock(t), staging.Staging(t) as st:
            (st.path / "marker").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    assert len(_litter(tmp_path)) == 1
    with staging.target_lock(target):
        staging.recover(target)
    assert _litter(tmp_path) == []
    assert (target / "marker").read_text() == "old"


def test_lock_serialises_and_times_out(tmp_path: Path) -> None:
    target = tmp_path / "env"
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with staging.target_lock(target):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    messages: list[str] = []
    with (
        pytest.raises(InstallError, match="still installing"),
        staging.target_lock(target, timeout=0.5, on_wait=messages.append),
    ):
        pass
    assert messages and "waiting" in messages[0]
    release.set()
    t.join()
    with staging.target_lock(target, timeout=2):
        pass


def test_lock_across_processes(tmp_path: Path) -> None:
    target = tmp_path / "env"
    out = tmp_path / "order"
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from fwsetup import staging
        with staging.target_lock(Path({str(target)!r})):
            with open({str(out)!r}, "a") as f:
                f.write("start " + sys.argv[1] + "\\n"); f.flush()
                time.sleep(0.6)
                f.write("end " + sys.argv[1] + "\\n")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)]) for i in range(2)]
    for p in procs:
        assert p.wait(30) == 0
    lines = out.read_text().split()
    # Never two "start" in a row: the second waited for the first to end.
    words = lines[0::2]
    assert words == ["start", "end", "start", "end"]


def test_lock_file_roundtrip_and_digest(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    assert envmeta.read_lock_file(env) is None
    d1 = envmeta.plan_digest({"a": 1, "b": [1, 2]}, {"python": "3.11"})
    d2 = envmeta.plan_digest({"b": [1, 2], "a": 1}, {"python": "3.11"})
    assert d1 == d2 and d1.startswith("sha256:")
    assert envmeta.plan_digest({"a": 1}, {"python": "3.12"}) != envmeta.plan_digest(
        {"a": 1}, {"python": "3.11"}
    )
    envmeta.write_lock_file(env, {"plan_digest": d1, "packages": [{"name": "x", "version": "1"}]})
    data = envmeta.read_lock_file(env)
    assert (
        data is not None and data["plan_digest"] == d1 and data["lock_version"] == envmeta.LOCK_FILE_VERSION
    )
    (env / ".fwsetup" / "lock.json").write_text("{not json")
    assert envmeta.read_lock_file(env) is None


def test_check_free_space(tmp_path: Path) -> None:
    staging.check_free_space(tmp_path, 1)
    with pytest.raises(InstallError, match=r"needs ~.* in .*, .* free"):
        staging.check_free_space(tmp_path / "not" / "yet", 10**18)


def test_exchange_is_atomic_on_linux(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _make_env(a, "A")
    _make_env(b, "B")
    if not staging._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) not supported here")
    assert (a / "marker").read_text() == "B" and (b / "marker").read_text() == "A"


def test_sigterm_becomes_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "env"
    code = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from fwsetup import staging
        t = Path({str(target)!r})
        try:
            with staging.terminate_as_interrupt(), staging.target_lock(t), staging.Staging(t) as st:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        except KeyboardInterrupt:
            raise SystemExit(130)
        """
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 130 and time.monotonic() - t0 < 5
    assert _litter(tmp_path) == []
    assert not os.path.exists(target)
