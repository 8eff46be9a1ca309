"""Issue 9, items 3 and 8: probes that must not take fwsetup down or hold it up.

3. A driver library whose nvmlInit crashes (SIGSEGV) or never returns: a real `libnvidia-ml.so.1` built
   here with gcc, put on LD_LIBRARY_PATH, and the real CLI run as a subprocess.
8. A Docker engine that accepts connections and never answers: a real unix socket served by a thread that
   accepts and stays silent, DOCKER_HOST pointing at it, the real CLI run as a subprocess.

Each case is the attack first (it hung or died with signal 11 before the fix), then what must hold: the
command ends in bounded time, with its exit code, one clear message or finding, and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwsetup import detect
from fwsetup.backends.docker.engine import DockerEngine
from fwsetup.detect import nvidia, tools
from fwsetup.errors import EngineError
from fwsetup.profile import DockerInfo

# -- helpers ---------------------------------------------------------------------------------------------


def fwsetup(args: list[str], env: dict[str, str], *, timeout: float = 60) -> tuple[int, str, str, float]:
    """Run the real CLI in a fresh process: (exit code, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    cp = subprocess.run(
        [sys.executable, "-m", "fwsetup", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t0


def no_traceback(out: str, err: str) -> None:
    assert "Traceback" not in out + err, err[-2000:]


_EMPTY_DATA_DIR = tempfile.mkdtemp(prefix="fwsetup-probes-data-")


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "FWSETUP_", "LD_LIBRARY_PATH"))
    }
    env.update(extra)
    env["COLUMNS"] = "200"  # one finding per line in the rendered output
    # no FWSETUP_* of the session, but not this machine's own data folder either: doctor would import every
    # environment fwsetup made on it (its registry), which is not what these timings measure
    env["FWSETUP_DATA_DIR"] = _EMPTY_DATA_DIR
    return env


class SilentEngine(threading.Thread):
    """A unix socket that accepts every connection and never sends a byte (a hung engine, or a socket that
    is not an engine at all). `accepted` counts the connections made to it."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(64)
        self.server.settimeout(0.2)
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)  # held open, never answered

    def close(self) -> None:
        self.stop.set()
        self.join(2)
        for c in self.conns:
            c.close()
        self.server.close()


@pytest.fixture
def silent_engine() -> Iterator[SilentEngine]:
    # A short folder: unix socket paths are limited to ~107 bytes, and pytest's tmp_path can be longer.
    folder = tempfile.mkdtemp(prefix="fws-silent-", dir="/tmp")
    engine = SilentEngine(os.path.join(folder, "docker.sock"))
    engine.start()
    try:
        yield engine
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)


# -- 3. a driver library that crashes or hangs ----------------------------------------------------------------

FAKE_NVML = {
    # nvmlInitWithFlags is what nvidia-ml-py calls; the older entry points for other clients.
    "segv": "#include <signal.h>\nstatic int boom(void) { raise(SIGSEGV); return 0; }\n",
    "hang": "#include <unistd.h>\nstatic int boom(void) { for (;;) pause(); return 0; }\n",
    "garbage": '#include <unistd.h>\nstatic int boom(void) { write(1, "}{ not json\\n", 12); _exit(3); }\n',
    "garbage0": '#include <unistd.h>\nstatic int boom(void) { write(1, "[1, 2]\\n", 7); _exit(0); }\n',
}
INIT = (
    "int nvmlInitWithFlags(unsigned int flags) { (void)flags; return boom(); }\n"
    "int nvmlInit_v2(void) { return boom(); }\nint nvmlInit(void) { return boom(); }\n"
)


@pytest.fixture(scope="module")
def fake_nvml_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{variant: folder holding a libnvidia-ml.so.1 whose nvmlInit does that}, built with gcc."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None or not sys.platform.startswith("linux"):
        reason = "gcc not found: cannot build a fake libnvidia-ml.so.1 (issue 9 item 3 untested here)"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("fake-nvml")
    out = {}
    for variant, body in FAKE_NVML.items():
        folder = root / variant
        folder.mkdir()
        (folder / "nvml.c").write_text(body + INIT)
        subprocess.run(
            [gcc, "-shared", "-fPIC", "-o", str(folder / "libnvidia-ml.so.1"), str(folder / "nvml.c")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        out[variant] = folder
    return out


def test_the_fake_library_really_crashes(fake_nvml_libs: dict[str, Path]) -> None:
    # The attack itself: loading it in-process, as fwsetup did, kills the interpreter with SIGSEGV.
    env = base_env(LD_LIBRARY_PATH=str(fake_nvml_libs["segv"]))
    cp = subprocess.run([sys.executable, "-c", "import pynvml; pynvml.nvmlInit()"], env=env, capture_output=True,
                        timeout=60, check=False)  # fmt: skip
    assert cp.returncode == -11


@pytest.mark.parametrize(
    ("variant", "says", "title"),
    [("segv", "crashed (SIGSEGV)", "crashed"), ("hang", "did not answer within 2 s", "hung")],
)
def test_a_broken_driver_library_is_a_finding(
    fake_nvml_libs: dict[str, Path], variant: str, says: str, title: str
) -> None:
    env = base_env(LD_LIBRARY_PATH=str(fake_nvml_libs[variant]), FWSETUP_NVML_TIMEOUT="2")
    library = str(fake_nvml_libs[variant] / "libnvidia-ml.so.1")

    code, out, err, seconds = fwsetup(["profile"], env)
    no_traceback(out, err)
    assert code == 0 and seconds < 20, (code, seconds, err)  # exit 139, no output at all
    nvidia = json.loads(out)["nvidia"]
    nvml = nvidia["nvml"]
    assert nvml == f"library-{title}" and says in nvidia["nvml_detail"] and library in nvidia["nvml_detail"]

    code, out, err, seconds = fwsetup(["doctor", "--json"], env)
    no_traceback(out, err)
    assert code == 1 and seconds < 30, (code, seconds, err)  # an error finding: exit 1 (DESIGN)
    data = json.loads(out)
    assert data["host"]["nvidia"]["nvml"] == nvml
    finding = next(f for f in data["findings"] if f["id"] == "nvidia.driver-not-working")
    assert finding["severity"] == "error" and title in finding["title"]
    assert (
        says in finding["detail"]
        and "nvidia-smi" in finding["remedy"]
        and "LD_LIBRARY_PATH" in finding["remedy"]
    )

    code, out, err, seconds = fwsetup(["plan", "pytorch", "--cpu", "--json"], env)
    no_traceback(out, err)
    assert code == 0 and seconds < 20, (code, seconds, err)
    plan = json.loads(out)
    assert plan["status"] == "ok" and plan["accelerator"] == "cpu"


def test_install_dry_run_survives_a_crashing_driver(fake_nvml_libs: dict[str, Path], tmp_path: Path) -> None:
    env = base_env(LD_LIBRARY_PATH=str(fake_nvml_libs["segv"]))
    code, out, err, _ = fwsetup(
        ["install", "pytorch", "--cpu", "--dry-run", "--env", str(tmp_path / "env")], env
    )
    no_traceback(out, err)
    assert code >= 0, err  # it died with SIGSEGV (139 from a shell)


@pytest.mark.parametrize(
    ("variant", "says"),
    [
        ("garbage", "the NVML probe failed (exit 3): }{ not json"),
        ("garbage0", "the NVML probe failed (no readable answer): [1, 2]"),
    ],
)
def test_garbage_from_the_probe_is_a_finding(
    fake_nvml_libs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, variant: str, says: str
) -> None:

    monkeypatch.delitem(sys.modules, "pynvml", raising=False)  # no in-process fake: the real child path
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_libs[variant]))
    notes: list[str] = []
    info = nvidia.probe_nvidia(notes, env={}, pci_root="/nonexistent")
    assert (info.nvml, info.nvml_detail) == ("probe-failed", says)
    assert info.gpus == () and info.driver_version is None


def test_find_nvml_library_without_loading_it(tmp_path: Path) -> None:

    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "libnvidia-ml.so.1"
    lib.write_bytes(b"not even an ELF file: it is never loaded")
    nothing = str(tmp_path / "no-ld.so.cache")
    assert nvidia.find_nvml_library(
        {"LD_LIBRARY_PATH": f"/nonexistent:{lib.parent}"}, ld_cache=nothing
    ) == str(lib)
    cache = tmp_path / "ld.so.cache"
    cache.write_bytes(b"glibc-ld.so.cache1.1\0libc.so.6\0/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1\0")
    assert nvidia.find_nvml_library({}, ld_cache=str(cache)) == "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"


def test_no_library_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    # The start-up budget: without the library nothing is spawned (and nothing loaded).
    import subprocess as sp

    if nvidia.find_nvml_library() is not None:
        pytest.skip("this machine has an NVML library")

    def no_child(*a: object, **k: object) -> None:
        raise AssertionError("spawned an NVML child without a library")

    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.setattr(sp, "Popen", no_child)
    assert nvidia.probe_nvidia([], env={}).nvml == "missing"


# -- 8. an engine that never answers ------------------------------------------------------------------------


def test_ping_tells_silent_from_unreachable(silent_engine: SilentEngine, tmp_path: Path) -> None:
    t0 = time.monotonic()
    answer = tools.ping_engine(f"unix://{silent_engine.path}", 0.5)
    assert answer.state == "silent" and "sent nothing back within 0.5 s" in answer.detail
    assert time.monotonic() - t0 < 3
    gone = tools.ping_engine(f"unix://{tmp_path}/none.sock", 0.5)
    assert gone.state == "unreachable"
    assert tools.ping_engine("ssh://me@host", 0.5).state == "unknown"


def test_probe_docker_says_not_answering_in_seconds(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}")
    t0 = time.monotonic()
    info = tools.probe_docker([], env=env)
    assert (
        time.monotonic() - t0 < tools.ENGINE_PING_TIMEOUT + 3
    )  # was 10 s: `docker info`, then `docker version`
    assert info.server is None and info.host == env["DOCKER_HOST"]
    assert info.engine == "not-answering" and "sent nothing back" in (info.error or "")
    if shutil.which("docker"):
        assert info.client  # from `docker --version`: the client is there (it used to read "not installed")
    # With no client at all, fwsetup asks the socket itself: the same answer.
    info2 = tools.probe_docker([], env=dict(env, PATH=os.path.dirname(sys.executable)))
    assert (
        info2.client is None
        and info2.engine == "not-answering"
        and "sent nothing back" in (info2.error or "")
    )


def test_doctor_says_engine_not_answering(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}")
    code, out, err, seconds = fwsetup(["doctor", "--json"], env)
    no_traceback(out, err)
    assert seconds < 10, seconds  # was 10 s of probes alone
    data = json.loads(out)
    findings = {f["id"]: f for f in data["findings"]}
    assert "docker.client-missing" not in findings  # it said "Docker not installed"
    f = findings["docker.engine-not-answering"]
    assert "not answering" in f["title"] and silent_engine.path in f["title"]
    assert "sent nothing back" in f["detail"] and "DOCKER_HOST" in f["remedy"]
    assert code in (0, 1)
    code, out, err, _ = fwsetup(["doctor"], env)
    no_traceback(out, err)
    assert "engine not answering" in out


def test_plan_cpu_does_not_ask_the_engine(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}")
    code, out, err, _ = fwsetup(["plan", "pytorch", "--cpu", "--json"], env)
    no_traceback(out, err)
    assert code == 0 and json.loads(out)["status"] == "ok"
    # It never even connected, so there is nothing to wait for (it used to wait 10 s for the engine). Asserted by
    # the connection count, not by wall time: a loaded CI machine took 5 s for the whole command once.
    assert silent_engine.accepted == 0


def test_profile_reports_the_silent_engine(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}", FWSETUP_ENGINE_TIMEOUT="1")
    code, out, err, seconds = fwsetup(["profile"], env)
    no_traceback(out, err)
    assert code == 0 and seconds < 10
    docker = json.loads(out)["tools"]["docker"]
    assert (
        docker["server"] is None
        and docker["engine"] == "not-answering"
        and "sent nothing back" in docker["error"]
    )


def test_build_gives_up_in_seconds_with_exit_4(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}", FWSETUP_ENGINE_TIMEOUT="1")
    code, out, err, seconds = fwsetup(["build", "pytorch", "--cpu"], env, timeout=120)
    no_traceback(out, err)
    assert code == 4, err  # exit 4 came only after 610 s
    assert seconds < 15, seconds
    assert "not answering" in err or "sent nothing back" in err
    assert "DOCKER_HOST" in err  # what to do


def test_smoke_image_gives_up_in_seconds_with_exit_4(silent_engine: SilentEngine) -> None:
    env = base_env(DOCKER_HOST=f"unix://{silent_engine.path}", FWSETUP_ENGINE_TIMEOUT="1")
    code, out, err, seconds = fwsetup(
        ["smoke", "pytorch", "--image", "fwsetup/pytorch:any"], env, timeout=120
    )
    no_traceback(out, err)
    assert code == 4, err  # it hung
    assert seconds < 15, seconds
    assert "sent nothing back" in err


def test_engine_adapter_fails_fast(silent_engine: SilentEngine) -> None:

    engine = DockerEngine(
        env=base_env(DOCKER_HOST=f"unix://{silent_engine.path}", FWSETUP_ENGINE_TIMEOUT="0.5")
    )
    t0 = time.monotonic()
    with pytest.raises(EngineError) as exc:
        engine.check()
    assert time.monotonic() - t0 < 5
    assert exc.value.exit_code == 4 and "sent nothing back within 0.5 s" in exc.value.message


def test_detection_without_docker_then_with_it(
    silent_engine: SilentEngine, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("DOCKER_HOST", f"unix://{silent_engine.path}")
    monkeypatch.setenv("FWSETUP_ENGINE_TIMEOUT", "0.5")
    tools._silent_hosts.clear()
    detect.clear_cache()
    try:
        host = detect.detect_host(docker=False)
        assert host.tools.docker == DockerInfo() and silent_engine.accepted == 0  # unknown, never asked
        assert detect.detect_host(docker=False) is host  # cached
        full = detect.detect_host()  # a command that needs the engine asks it then, once
        assert full.tools.docker.engine == "not-answering"
        assert full.os == host.os and detect.detect_host() is full
    finally:
        detect.clear_cache()
        tools._silent_hosts.clear()
