#!/usr/bin/env python3
"""The adversarial battery of issue 9, re-run as a hostile user would: every case is a real subprocess of
the `fwsetup` console script, with its own folders, environment variables and (for some) a signal.

    .venv/bin/python tests/battery/run_battery.py            # default tier: under ~2 minutes
    .venv/bin/python tests/battery/run_battery.py --full     # also the slow cases (uv retrying a download...)
    .venv/bin/python tests/battery/run_battery.py -k nvml -v # some cases, with their output

It counts: inputs tried, tracebacks ("Traceback" on stderr), wrong exit codes (each case says which codes
are right), envs broken (a folder or environment that existed before was modified or deleted), secrets
found (the token of a credentialed index in a file written, in the output, or in /proc/*/cmdline sampled
while the case runs) and injected lines (recipe text that became a line of a rendered file). It prints
the counts as a table and exits 1 when any count but the first is not zero. It also counts hangs (a case still
running after 60 s), processes left behind (a fake driver's helper still alive after fwsetup ended) and, for
each flood case (an NVML library, a smoke step or an input file that sends without end), the bytes fwsetup
held at its peak (VmHWM of the fwsetup process; flood cases run under a 4 GiB address-space limit).

Real installs use a tiny recipe of our own (--recipes), a tiny wheel made here (--wheelhouse --offline) and
its smoke script (FWSETUP_SMOKE_DIR), so no network and no torch are needed; the crashing NVML library is
compiled here with gcc (its cases are skipped, and say so, without gcc).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: support.py
from support import FACTS, make_wheel

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TOKEN = "s3cr3tTOKENb4ttery"  # the secret of the credentialed index: must appear nowhere
COUNTS = (
    "inputs tried",
    "tracebacks",
    "wrong exit codes",
    "envs broken",
    "secrets found",
    "injected lines",
    "hangs over 60 s",
    "processes left",
    "wrong messages",
)
HANG_SECONDS = 60.0  # a case still running after this long is a hang (the hang-prone cases wait 65 s)
FLOOD_RLIMIT_AS = (
    4 << 30
)  # the address-space limit of a flood case's fwsetup: a flood cannot take the machine


def fwsetup_exe() -> str:
    here = Path(sys.executable).parent / "fwsetup"
    return str(here) if here.exists() else shutil.which("fwsetup") or "fwsetup"


# -- the world: tiny wheels, recipes, smoke script -----------------------------------------------------------

SMOKE = """
import json, os, sys, time
import fakefw
marker = os.environ.get("FAKE_SMOKE_STARTED")
if marker:
    open(marker, "w").write(str(os.getpid()))
time.sleep(float(os.environ.get("FAKE_SMOKE_SLEEP", "0")))
print(json.dumps({"ok": True, "framework": "fakefw", "version": fakefw.__version__, "device": "cpu", "steps": 1,
                  "loss_before": 1.0, "loss_after": 0.5}))
"""


def recipe(
    name: str = "fakefw", *, head: str = "", build: str = "", versions: tuple[str, ...] = ("1.0", "2.0")
) -> str:
    text = f'name = "{name}"\ntitle = "FakeFW"\nsmoke = "fakefw"\nimport_name = "fakefw"\ndistribution = "fakefw"\n'
    text += head + FACTS
    for v in versions:
        text += (
            f'\n[[builds]]\nversion = "{v}"\nvariant = "cpu"\npython = ">=3.8"\nos = ["linux"]\n'
            f'arch = ["x86_64", "aarch64"]\nrequirements = ["fakefw=={v}"]\n{build}'
        )
    return text


REPORT = (
    'print(json.dumps({"ok": True, "framework": "fakefw", "version": "1.0", "device": "cpu", "steps": 1, '
    '"loss_before": 1.0, "loss_after": 0.5}), flush=True)'
)
FLOOD_SMOKE = {
    # prints lines without end (the smoke step never finishes: its timeout ends it)
    "endless": "import sys\nline = 'x' * 999 + '\\n'\nwhile True:\n    sys.stdout.write(line)\n",
    # 400 MB of lines, then the report
    "then-report": "import json, sys\nline = 'y' * 999 + '\\n'\nfor _ in range(400_000):\n    sys.stdout.write(line)\n"
    + REPORT
    + "\n",
    # 400 MB in one line on stderr, then the report
    "one-line": "import json, sys\nchunk = 'z' * 1_000_000\nfor _ in range(400):\n    sys.stderr.write(chunk)\n"
    + REPORT
    + "\n",
}

NVML_C = {
    "segv": "#include <signal.h>\nint nvmlInit_v2(void){raise(SIGSEGV);return 0;}\nint nvmlInit(void){return nvmlInit_v2();}\n",
    "hang": "#include <unistd.h>\nint nvmlInit_v2(void){for(;;)sleep(1);return 0;}\nint nvmlInit(void){return nvmlInit_v2();}\n",
    "abort": "#include <stdlib.h>\nint nvmlInit_v2(void){abort();return 0;}\nint nvmlInit(void){return nvmlInit_v2();}\n",
}


class World:
    """Shared, read-only inputs of every case (made once): wheels, recipes, smoke script, NVML libraries."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.wheels = base / "wheels"
        make_wheel(self.wheels, "1.0", generator="battery")
        make_wheel(self.wheels, "2.0", generator="battery")
        self.recipes = base / "recipes"
        self.recipes.mkdir()
        (self.recipes / "fakefw.toml").write_text(recipe())
        self.smoke = base / "smoke"
        self.smoke.mkdir()
        (self.smoke / "train_fakefw.py").write_text(SMOKE)
        self.uv_cache = base / "uv-cache"
        self.nvml: dict[str, Path | None] = {}
        gcc = shutil.which("gcc") or shutil.which("cc")
        for kind, code in NVML_C.items():
            folder = base / f"nvml-{kind}"
            folder.mkdir()
            (folder / "nvml.c").write_text(code)
            ok = gcc is not None and subprocess.run(
                [gcc, "-shared", "-fPIC", "-o", str(folder / "libnvidia-ml.so.1"), str(folder / "nvml.c")],
                capture_output=True, check=False,
            ).returncode == 0  # fmt: skip
            self.nvml[kind] = folder if ok else None
        # The C fake of the whole driver library (tests/nvml_fake): GPUs, a chatty init, a helper it forks.
        from nvml_fake import FakeNvml, compiler

        self.fake_nvml: FakeNvml | None = None
        if compiler() is not None:
            self.fake_nvml = FakeNvml(base / "nvml-fake")
            try:
                self.fake_nvml.build()
            except (subprocess.CalledProcessError, RuntimeError):
                self.fake_nvml = None
        # Smoke scripts that flood their output (the recipe `fakefw` runs whichever FWSETUP_SMOKE_DIR holds).
        self.flood_smoke: dict[str, Path] = {}
        for kind, code in FLOOD_SMOKE.items():
            folder = base / f"smoke-flood-{kind}"
            folder.mkdir()
            (folder / "train_fakefw.py").write_text(code)
            self.flood_smoke[kind] = folder

    def env(self, case_dir: Path, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIP_", "UV_", "FWSETUP_", "VIRTUAL_ENV"))
        }
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            FWSETUP_SMOKE_DIR=str(self.smoke),
            FWSETUP_CACHE_DIR=str(case_dir / "cache"),
            UV_CACHE_DIR=str(self.uv_cache),
            XDG_DATA_HOME=str(case_dir / "xdg-data"),
            PYTHONDONTWRITEBYTECODE="1",
            COLUMNS="200",
        )
        env.pop("DOCKER_HOST", None)
        env.update(extra)
        return env


# -- cases -----------------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a case's setup, action and checks see."""

    world: World
    dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    def install(self, version: str, target: Path, *extra: str, env: dict[str, str] | None = None) -> int:
        """A good install (setup of later cases), with the tiny recipe and wheels."""
        argv = [fwsetup_exe(), "--recipes", str(self.world.recipes), "install", "fakefw", "--cpu", "--version",
                version, "--env", str(target), "--wheelhouse", str(self.world.wheels), "--offline", *extra]  # fmt: skip
        return subprocess.run(argv, env=env or self.world.env(self.dir), capture_output=True, timeout=300,
                              check=False).returncode  # fmt: skip


@dataclass
class Case:
    name: str
    item: int  # the numbered item of issue 9
    argv: Callable[[Ctx], list[str]] | list[str]
    expect: tuple[int, ...]
    setup: Callable[[Ctx], None] | None = None
    env: Callable[[Ctx], dict[str, str]] | dict[str, str] = field(default_factory=dict)
    check: Callable[[Ctx, Result], list[str]] | None = None  # "envs broken" problems
    secret: bool = False  # sample /proc/*/cmdline and grep written files and the output for TOKEN
    no_injection: tuple[str, ...] = ()  # strings that must not appear on stdout (a rendered file)
    signal_when: Callable[[Ctx, subprocess.Popen[bytes]], int | None] | None = None
    closed_stdout: bool = False
    timeout: float = 60
    tier: str = "fast"  # "fast" (default run, and the pytest subset), "default", "full"
    needs: str | None = None  # "gcc"
    flood: bool = False  # measure the peak memory of fwsetup (and run it under FLOOD_RLIMIT_AS)
    leftovers: Callable[[Ctx], list[str]] | None = None  # processes the case left running (then ended)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float
    argv_secrets: int = 0
    peak_bytes: int | None = None  # VmHWM of the fwsetup process (flood cases)


def _cmdline_sampler(stop: threading.Event, hits: list[str]) -> None:
    needle = TOKEN.encode()
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if needle in cmd and str(os.getpid()) != pid:
                hits.append(cmd.replace(b"\0", b" ").decode(errors="replace")[:200])
        stop.wait(0.01)


def _peak_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """The highest VmHWM (peak resident set) of process pid, sampled until it exits."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        stop.wait(0.005)


def _limit_memory() -> None:  # preexec_fn of a flood case
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (FLOOD_RLIMIT_AS, FLOOD_RLIMIT_AS))


def run_case(case: Case, world: World, base: Path) -> tuple[dict[str, int], list[str], Result | None]:
    """Run one case; return its counts, its problems in words, and the result."""
    counts = dict.fromkeys(COUNTS, 0)
    counts["inputs tried"] = 1
    d = base / case.name
    d.mkdir(parents=True)
    ctx = Ctx(world, d)
    if case.needs == "gcc" and not (all(world.nvml.values()) and world.fake_nvml):
        return counts, ["skipped: no gcc to build the fake NVML library"], None
    if case.setup:
        case.setup(ctx)
    before = _snapshot(
        d
    )  # the case's own inputs (a recipe may hold the token): only what the run writes counts
    argv = case.argv(ctx) if callable(case.argv) else list(case.argv)
    argv = [fwsetup_exe(), *argv]
    extra = case.env(ctx) if callable(case.env) else case.env
    env = world.env(d, **extra)
    hits: list[str] = []
    stop = threading.Event()
    sampler = (
        threading.Thread(target=_cmdline_sampler, args=(stop, hits), daemon=True) if case.secret else None
    )
    if sampler:
        sampler.start()
    stdout_target: Any = subprocess.PIPE
    r_fd = w_fd = None
    if case.closed_stdout:
        r_fd, w_fd = os.pipe()
        os.close(r_fd)
        stdout_target = w_fd
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, cwd=d, stdout=stdout_target, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True,
                         preexec_fn=_limit_memory if case.flood else None)  # fmt: skip
    if w_fd is not None:
        os.close(w_fd)
    peak = [0]
    stop_peak = threading.Event()
    peaker = threading.Thread(target=_peak_sampler, args=(p.pid, stop_peak, peak), daemon=True)
    if case.flood:
        peaker.start()
    out_b, err_b = b"", b""
    try:
        if case.signal_when is not None:
            sig = case.signal_when(ctx, p)
            if sig is not None and p.poll() is None:
                p.send_signal(sig)
        out_b, err_b = p.communicate(timeout=case.timeout)
        code = p.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        out_b, err_b = p.communicate()
        code = -9
        err_b += f"\n[battery: killed after {case.timeout:g} s]".encode()
    seconds = time.monotonic() - t0
    stop.set()
    stop_peak.set()
    if sampler:
        sampler.join()
    if case.flood:
        peaker.join()
    res = Result(
        code, (out_b or b"").decode(errors="replace"), (err_b or b"").decode(errors="replace"), seconds,
        peak_bytes=peak[0] if case.flood else None,
    )  # fmt: skip
    problems: list[str] = []
    if seconds > HANG_SECONDS:
        counts["hangs over 60 s"] += 1
        problems.append(f"still running after {HANG_SECONDS:g} s")
    if case.leftovers is not None:
        left = case.leftovers(ctx)
        counts["processes left"] += len(left)
        problems += left
    if "Traceback" in res.stderr:
        counts["tracebacks"] += 1
        problems.append("traceback on stderr")
    if code not in case.expect:
        counts["wrong exit codes"] += 1
        problems.append(f"exit {code}, expected {' or '.join(map(str, case.expect))}")
    if case.check is not None:
        broken = case.check(ctx, res)
        counts["wrong messages" if case.item >= 21 else "envs broken"] += len(
            broken
        )  # issue 21: what it says
        problems += broken
    if case.secret:
        found = [f"argv: {h}" for h in hits[:3]]
        if TOKEN in res.stdout or TOKEN in res.stderr:
            found.append("in the output")
        found += [f"on disk: {f}" for f in _files_with(d, TOKEN, skip=before)]
        counts["secrets found"] += len(found)
        problems += [f"secret {f}" for f in found]
    for needle in case.no_injection:
        if needle in res.stdout:
            counts["injected lines"] += 1
            problems.append(f"injected: {needle!r} reached the rendered output")
    return counts, problems, res


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(Path(dirpath) / name)
                out[os.path.join(dirpath, name)] = (st.st_mtime_ns, st.st_size)
    return out


def _files_with(folder: Path, needle: str, skip: dict[str, tuple[int, int]]) -> list[str]:
    """Files under folder written by the run (new, or changed since `skip` was taken) that hold needle."""
    found = []
    now = _snapshot(folder)
    for path, stamp in now.items():
        if skip.get(path) == stamp:
            continue
        p = Path(path)
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes():
                found.append(str(p.relative_to(folder)))
    return found


# -- helpers for the cases --------------------------------------------------------------------------------------


def profile_file(ctx: Ctx, text: str) -> str:
    f = ctx.dir / "profile.json"
    f.write_text(text)
    return str(f)


def mutate(base: str, change: Callable[[dict[str, Any]], Any]) -> str:
    doc = json.loads((FIXTURES / base).read_text())
    change(doc)
    return json.dumps(doc)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under folder, with a hash of its content (symlinks by their target); a file by itself."""
    out: dict[str, str] = {}
    if folder.is_file() and not folder.is_symlink():
        return {".": hashlib.sha256(folder.read_bytes()).hexdigest()}
    for dirpath, dirs, files in os.walk(folder):
        for name in files + [x for x in dirs if (Path(dirpath) / x).is_symlink()]:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def keep(ctx: Ctx, folder: Path) -> None:
    """Remember a folder that must come out of the case unchanged."""
    ctx.data.setdefault("kept", []).append((folder, tree_digest(folder), folder.is_symlink()))


def unchanged(ctx: Ctx, _res: Result) -> list[str]:
    out = []
    for folder, digest, was_link in ctx.data.get("kept", []):
        if not os.path.lexists(folder):
            out.append(f"{folder.name} was deleted")
        elif folder.is_symlink() != was_link:
            out.append(f"{folder.name} was {'replaced by a folder' if was_link else 'made a link'}")
        elif tree_digest(folder) != digest:
            changed = sorted(set(digest.items()) ^ set(tree_digest(folder).items()))
            out.append(f"{folder.name} was modified ({', '.join(c[0] for c in changed[:4])})")
    return out


def installed_version(target: Path) -> str | None:
    py = target / "bin" / "python"
    if not py.exists():
        return None
    cp = subprocess.run([str(py), "-c", "import fakefw; print(fakefw.__version__)"], capture_output=True,
                        text=True, check=False)  # fmt: skip
    return cp.stdout.strip() if cp.returncode == 0 else None


def no_target(name: str = "env") -> Callable[[Ctx, Result], list[str]]:
    def check(ctx: Ctx, _res: Result) -> list[str]:
        t = ctx.dir / name
        if t.exists():
            lock = t / ".fwsetup" / "lock.json"
            return [f"a refused run left {t.name}/" + (" with a lock file" if lock.exists() else "")]
        return []

    return check


def says(*words: str) -> Callable[[Ctx, Result], list[str]]:
    """Not an env check: a message that must be on stderr (counted as a wrong exit code when missing)."""

    def check(_ctx: Ctx, res: Result) -> list[str]:
        flat = " ".join(res.stderr.split())
        missing = [w for w in words if w not in flat]
        return [f"stderr does not say {w!r}" for w in missing]

    return check


def out_says(*words: str) -> Callable[[Ctx, Result], list[str]]:
    def check(_ctx: Ctx, res: Result) -> list[str]:
        return [f"stdout does not say {w!r}" for w in words if w not in res.stdout]

    return check


def both(*checks: Callable[[Ctx, Result], list[str]]) -> Callable[[Ctx, Result], list[str]]:
    def check(ctx: Ctx, res: Result) -> list[str]:
        return [p for c in checks for p in c(ctx, res)]

    return check


def install_argv(
    version: str, target: str = "env", *extra: str, recipes: str | None = None
) -> Callable[[Ctx], list[str]]:
    def argv(ctx: Ctx) -> list[str]:
        t = target if target.startswith("/") else str(ctx.dir / target)
        return ["--recipes", recipes or str(ctx.world.recipes), "install", "fakefw", "--cpu", "--version", version,
                "--env", t, "--wheelhouse", str(ctx.world.wheels), "--offline", *extra]  # fmt: skip

    return argv


def user_recipes(text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.dir / "recipes").mkdir()
        (ctx.dir / "recipes" / "fakefw.toml").write_text(text)

    return setup


def wait_file(path_of: Callable[[Ctx], Path], sig: int = signal.SIGINT, limit: float = 60):
    def when(ctx: Ctx, p: subprocess.Popen[bytes]) -> int | None:
        t0 = time.monotonic()
        while not path_of(ctx).exists():
            if p.poll() is not None or time.monotonic() - t0 > limit:
                return None
            time.sleep(0.01)
        return sig

    return when


def after(seconds: float, sig: int = signal.SIGINT):
    def when(_ctx: Ctx, p: subprocess.Popen[bytes]) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(seconds)
        return sig

    return when


class SilentEngine:
    """A unix socket that accepts connections and never answers (issue 9, item 8)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)  # kept open, never read, never answered


# -- the cases of issue 9 -------------------------------------------------------------------------------------------


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append

    # 10. nonsense HostProfiles: exit 2, one message naming the field, for every command that reads one
    nonsense: dict[str, Callable[[], str]] = {
        "python-banana": lambda: mutate("no-gpu.json", lambda d: d["python"].__setitem__("version", "banana")),
        "memory-minus-5": lambda: mutate("no-gpu.json", lambda d: d.__setitem__("memory_bytes", -5)),
        "driver-banana": lambda: mutate("datacenter-h100.json", lambda d: d["nvidia"].__setitem__("driver_version", "banana")),
        "schema-999": lambda: mutate("no-gpu.json", lambda d: d.__setitem__("schema_version", 999)),
        "deep-nesting": lambda: '{"os": {"x": ' + "[" * 5000 + "]" * 5000 + "}}",
        "deep-dicts": lambda: '{"tools": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}",
        "gpu-memory-str": lambda: mutate("datacenter-h100.json", lambda d: d["nvidia"]["gpus"][0].__setitem__("memory_bytes", "lots")),
        "cc-nine": lambda: mutate("datacenter-h100.json", lambda d: d["nvidia"]["gpus"][0].__setitem__("compute_capability", "nine")),
        "os-is-a-list": lambda: mutate("no-gpu.json", lambda d: d.__setitem__("os", [1, 2])),
        "not-json": lambda: "{\"os\": ",
        "an-array": lambda: "[1, 2, 3]",
        "surrogate": lambda: '{"cpu": {"model": "\\ud800"}}',
    }  # fmt: skip
    commands = {
        "plan": ["plan", "pytorch", "--json"],
        "doctor": ["doctor", "--json"],
        "profile": ["profile"],
        "install": ["install", "pytorch", "--dry-run"],
        "build": ["build", "pytorch", "--dry-run"],
    }
    for pname, text in nonsense.items():
        for cname, cmd in commands.items():
            add(Case(f"profile-{pname}-{cname}", 10,
                     lambda ctx, cmd=cmd, text=text: [*cmd, "--host-profile", profile_file(ctx, text())],
                     expect=(2,), check=says("error:"), tier="fast" if cname in ("plan", "doctor") else "default"))  # fmt: skip
    for cname, cmd in commands.items():
        add(Case(f"profile-empty-path-{cname}", 10, [*cmd, "--host-profile", ""], expect=(2,)))
        add(Case(f"profile-is-a-folder-{cname}", 10, lambda ctx, cmd=cmd: [*cmd, "--host-profile", str(ctx.dir)],
                 expect=(2,), tier="default"))  # fmt: skip
    add(
        Case(
            "profile-dev-zero",
            10,
            ["plan", "pytorch", "--host-profile", "/dev/zero"],
            expect=(2,),
            timeout=30,
        )
    )
    # ...and a profile with fields missing or added is still accepted (DESIGN.md)
    add(Case("profile-missing-fields-accepted", 10, lambda ctx: ["plan", "pytorch", "--json", "--host-profile",
             profile_file(ctx, '{"nvidia": null, "future": {"x": 1}, "cpu": {"arch": "x86_64", "new": 1}}')],
             expect=(0, 3)))  # fmt: skip

    # 10. bad option values: exit 2, never "unexpected ..."
    not_unexpected = says()
    for v in ("nan", "inf", "0", "-1"):
        add(
            Case(
                f"smoke-timeout-{v}",
                10,
                ["smoke", "pytorch", "--timeout", v],
                expect=(2,),
                check=not_unexpected,
            )
        )
        add(Case(f"doctor-timeout-{v}", 10, ["doctor", "--json", "--timeout", v], expect=(2,)))
    for v in ("0", "-5"):
        add(Case(f"smoke-steps-{v}", 10, ["smoke", "pytorch", "--steps", v], expect=(2,)))
        add(Case(f"matrix-newest-{v}", 10, ["matrix", "--newest", v], expect=(2,)))
    add(Case("smoke-unknown", 10, ["smoke", "UNKNOWN"], expect=(2,)))
    add(
        Case(
            "smoke-python-missing",
            10,
            ["smoke", "pytorch", "--python", "/nonexistent/bin/python"],
            expect=(2,),
        )
    )
    add(Case("profile-output-dir", 10, lambda ctx: ["profile", "--output", str(ctx.dir)], expect=(2,)))
    add(Case("profile-output-proc", 10, ["profile", "--output", "/proc/fwsetup-profile.json"], expect=(2,)))
    add(
        Case(
            "profile-output-no-folder",
            10,
            lambda ctx: ["profile", "--output", str(ctx.dir / "no" / "p.json")],
            expect=(2,),
        )
    )

    def a_file(ctx: Ctx) -> None:
        (ctx.dir / "afile").write_text("keep me")
        keep(ctx, ctx.dir / "afile")

    add(Case("matrix-out-dir-file", 10, lambda ctx: ["matrix", "--format", "bake", "--out-dir", str(ctx.dir / "afile")],
             expect=(2,), setup=a_file, check=unchanged))  # fmt: skip
    add(Case("matrix-python-banana", 10, ["matrix", "--python", "banana"], expect=(2,)))
    add(Case("recipes-empty", 10, ["--recipes", "", "plan", "pytorch"], expect=(2,)))
    add(
        Case("recipes-missing", 10, ["--recipes", "/proc/fwsetup-no-recipes", "plan", "pytorch"], expect=(2,))
    )
    add(Case("plan-version-banana", 10, ["plan", "pytorch", "--version", "banana"], expect=(2,)))
    add(Case("plan-python-banana", 10, ["plan", "pytorch", "--python", "banana"], expect=(2,)))
    add(Case("plan-method-banana", 10, ["plan", "pytorch", "--method", "banana"], expect=(2,)))
    add(Case("plan-unknown", 10, ["plan", "nonexistent-framework"], expect=(2,)))
    # 10. `fwsetup plan ... | head -1`: a closed stdout keeps the exit code
    no_gpu = str(FIXTURES / "no-gpu.json")
    for name, args, code in (
        ("plan-ok", ["plan", "pytorch", "--host-profile", no_gpu], 0),
        ("plan-ok-json", ["plan", "pytorch", "--host-profile", no_gpu, "--json"], 0),
        ("plan-refused", ["plan", "pytorch", "--gpu", "--host-profile", no_gpu], 3),
        ("plan-refused-json", ["plan", "pytorch", "--gpu", "--host-profile", no_gpu, "--json"], 3),
        ("recipes-list", ["recipes", "list"], 0),
        ("doctor", ["doctor", "--host-profile", no_gpu], 0),
        ("help", ["--help"], 0),
    ):
        add(Case(f"closed-stdout-{name}", 10, args, expect=(code, 1) if name == "doctor" else (code,),
                 closed_stdout=True))  # fmt: skip
    # 10. --python X.Y that is not here and cannot be fetched: exit 2 or 7, not 5
    add(Case("python-not-here-no-downloads", 10, install_argv("1.0", "env", "--python", "3.8"), expect=(2, 7),
             env=lambda ctx: {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON_INSTALL_DIR": str(ctx.dir / "pythons"),
                              "PATH": "/usr/bin:/bin"},
             check=both(no_target(), says("Python 3.8")), tier="default"))  # fmt: skip
    add(Case("python-not-here-download-fails", 10, install_argv("1.0", "env", "--python", "3.8"), expect=(2, 7),
             env=lambda ctx: {"UV_PYTHON_INSTALL_DIR": str(ctx.dir / "pythons"), "PATH": "/usr/bin:/bin",
                              "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
             check=both(no_target(), says("Python 3.8")), tier="full", timeout=120))  # fmt: skip
    # 10. --env that cannot be an environment; a refused install leaves nothing behind
    add(Case("env-in-proc", 10, install_argv("1.0", "/proc/fwsetup-env"), expect=(2, 5), tier="default"))
    add(Case("env-in-sys", 10, install_argv("1.0", "/sys/fwsetup-env"), expect=(2, 5), tier="default"))

    def env_is_file(ctx: Ctx) -> None:
        (ctx.dir / "env").write_text("precious")
        keep(ctx, ctx.dir / "env")

    add(
        Case(
            "env-is-a-file",
            10,
            install_argv("1.0"),
            expect=(2, 5),
            setup=env_is_file,
            check=unchanged,
            tier="default",
        )
    )
    add(Case("refused-install-leaves-nothing", 10,
             lambda ctx: ["install", "pytorch", "--gpu", "--env", str(ctx.dir / "env"), "--host-profile", no_gpu],
             expect=(3,), check=no_target()))  # fmt: skip

    # 1. a folder with a .fwsetup/ subfolder that fwsetup did not write is not fwsetup's to replace
    def foreign(lock: str | None) -> Callable[[Ctx], None]:
        def setup(ctx: Ctx) -> None:
            p = ctx.dir / "env"
            (p / ".fwsetup").mkdir(parents=True)
            (p / "src").mkdir()
            (p / "src" / "thesis.tex").write_text("precious")
            if lock is not None:
                (p / ".fwsetup" / "lock.json").write_text(lock)
            keep(ctx, p)

        return setup

    for name, lock in (("empty", None), ("garbage-lock", "not json"), ("foreign-lock", '{"hello": "world"}'),
                       ("lock-wrong-schema", '{"schema_version": 99, "plan_digest": "x"}')):  # fmt: skip
        add(Case(f"foreign-folder-{name}", 1, install_argv("1.0"), expect=(2, 5), setup=foreign(lock), check=unchanged,
                 tier="default"))  # fmt: skip

    def plain_folder(ctx: Ctx) -> None:
        (ctx.dir / "env" / "data").mkdir(parents=True)
        (ctx.dir / "env" / "data" / "results.csv").write_text("1,2,3")
        keep(ctx, ctx.dir / "env")

    add(Case("foreign-folder-no-marker", 1, install_argv("1.0"), expect=(2, 5), setup=plain_folder, check=unchanged,
             tier="default"))  # fmt: skip

    # issue 21: a git repository that committed an environment's .fwsetup/ (a valid lock.json and fwsetup's
    # made.json, of the folder it was copied from) is not fwsetup's to replace
    def committed_record(ctx: Ctx) -> None:
        p = ctx.dir / "env"
        (p / ".git").mkdir(parents=True)
        (p / "train.py").write_text("precious")
        (p / ".fwsetup").mkdir()
        lock = {
            "lock_version": 2,
            "written_by": "fwsetup",
            "plan_digest": "sha256:" + "0" * 64,
            "packages": [],
        }
        (p / ".fwsetup" / "lock.json").write_text(json.dumps(lock))
        made = {
            "written_by": "fwsetup",
            "path": str(ctx.dir / "elsewhere"),
            "dev": 1,
            "ino": 2,
            "entries": [],
        }
        (p / ".fwsetup" / "made.json").write_text(json.dumps(made))
        keep(ctx, p)

    add(Case("foreign-folder-committed-record", 1, install_argv("1.0"), expect=(2,), setup=committed_record,
             check=unchanged, tier="default"))  # fmt: skip

    # 2. recipe text that would add lines to a rendered file; 9. insecure sources
    inj = "RUN touch /tmp/PWNED"
    for name, text in (
        ("env-key-newline", recipe(build=f'env = {{ "A\\n{inj}" = "1" }}\n')),
        ("env-value-newline", recipe(build=f'env = {{ A = "1\\n{inj}" }}\n')),
        ("title-newline", recipe().replace('title = "FakeFW"', f'title = "FakeFW\\n{inj}"')),
        ("variant-slash", recipe().replace('variant = "cpu"', 'variant = "../../x"')),
        (
            "requirement-newline",
            recipe().replace('requirements = ["fakefw==1.0"]', f'requirements = ["fakefw==1.0\\n{inj}"]'),
        ),
    ):
        add(Case(f"injection-{name}-validate", 2, lambda ctx: ["recipes", "validate", str(ctx.dir / "recipes")],
                 expect=(1, 2), setup=user_recipes(text)))  # fmt: skip
        add(Case(f"injection-{name}-build", 2,
                 lambda ctx: ["--recipes", str(ctx.dir / "recipes"), "build", "fakefw", "--cpu", "--version", "1.0", "--dry-run"],
                 expect=(2,), setup=user_recipes(text), no_injection=(inj, "PWNED")))  # fmt: skip
    for name, text in (
        ("http-index", recipe(build='index_url = "http://example.invalid/simple"\n')),
        (
            "direct-http",
            recipe().replace('"fakefw==1.0"', '"fakefw @ http://example.invalid/fakefw-1.0.whl"'),
        ),
        (
            "direct-file",
            recipe().replace('"fakefw==1.0"', '"fakefw @ file:///tmp/fakefw-1.0-py3-none-any.whl"'),
        ),
        ("ld-preload", recipe(build='env = { LD_PRELOAD = "/tmp/evil.so" }\n')),
        ("credentials-in-url", recipe(build=f'index_url = "https://bob:{TOKEN}@example.invalid/simple"\n')),
    ):
        add(Case(f"insecure-{name}", 9,
                 lambda ctx: ["--recipes", str(ctx.dir / "recipes"), "plan", "fakefw", "--cpu", "--version", "1.0"],
                 expect=(2, 3), setup=user_recipes(text), secret=name == "credentials-in-url"))  # fmt: skip

    # 4. credentials in PIP_INDEX_URL: nowhere on disk, in argv or in the output
    cred = {"PIP_INDEX_URL": f"https://alice:{TOKEN}@127.0.0.1:9/simple"}
    add(
        Case("secret-dry-run", 4, install_argv("1.0", "env", "--dry-run"), expect=(0,), env=cred, secret=True)
    )
    add(Case("secret-dry-run-json", 4, install_argv("1.0", "env", "--dry-run", "--json"), expect=(0,), env=cred,
             secret=True))  # fmt: skip
    add(Case("secret-plan-json", 4, ["plan", "pytorch", "--json", "--host-profile", no_gpu], expect=(0,), env=cred,
             secret=True))  # fmt: skip
    add(
        Case(
            "secret-install", 4, install_argv("1.0"), expect=(0, 5, 7), env=cred, secret=True, tier="default"
        )
    )
    add(Case("secret-install-online", 4,
             lambda ctx: ["--recipes", str(ctx.world.recipes), "install", "fakefw", "--cpu", "--version", "1.0",
                          "--env", str(ctx.dir / "env"), "--wheelhouse", str(ctx.world.wheels)],
             expect=(0, 5, 7), env=cred, secret=True, tier="default", timeout=120))  # fmt: skip
    add(Case("secret-install-pip-fallback", 4, install_argv("1.0"), expect=(0, 5, 7),
             env={**cred, "FWSETUP_INSTALLER": "pip"}, secret=True, tier="full", timeout=180))  # fmt: skip

    # 5. an env whose files were deleted is not "already installed"
    def broken_env(ctx: Ctx) -> None:
        t = ctx.dir / "env"
        assert ctx.install("1.0", t) == 0, "setup: the first install failed"
        for sp in t.glob("lib/python*/site-packages/fakefw"):
            shutil.rmtree(sp)

    def repaired(ctx: Ctx, res: Result) -> list[str]:
        if installed_version(ctx.dir / "env") != "1.0":
            msg = (
                "the broken env was reported fine and left broken"
                if "already installed" in res.stderr
                else "env still broken"
            )
            return [msg]
        return []

    add(Case("broken-env-repeat-install", 5, install_argv("1.0"), expect=(0,), setup=broken_env, check=repaired,
             tier="default"))  # fmt: skip
    add(Case("broken-env-force", 5, install_argv("1.0", "env", "--force"), expect=(0,), setup=broken_env,
             check=repaired, tier="default"))  # fmt: skip

    # 7. a symlinked target: the link stays a link, the env it points to is the one updated (or refused)
    def linked(ctx: Ctx) -> None:
        real = ctx.dir / "real-env"
        assert ctx.install("1.0", real) == 0, "setup: the first install failed"
        (ctx.dir / "env").symlink_to(real)
        ctx.data["real"] = real

    def link_kept(ctx: Ctx, res: Result) -> list[str]:
        link, real = ctx.dir / "env", ctx.data["real"]
        if not link.is_symlink():
            return ["the symlink was replaced by a folder"]
        if os.readlink(link) != str(real):
            return ["the symlink was repointed"]
        v = installed_version(real)
        if res.code == 0 and v != "2.0":
            return [f"exit 0 but the env the link points to holds {v}"]
        if res.code != 0 and v != "1.0":
            return [f"refused but the env the link points to holds {v}"]
        return []

    add(
        Case(
            "symlinked-target",
            7,
            install_argv("2.0"),
            expect=(0, 2, 5),
            setup=linked,
            check=link_kept,
            tier="default",
        )
    )

    def dangling(ctx: Ctx) -> None:
        (ctx.dir / "env").symlink_to(ctx.dir / "nowhere")
        keep(ctx, ctx.dir / "env")

    add(
        Case(
            "dangling-symlink-target",
            7,
            install_argv("1.0"),
            expect=(0, 2, 5),
            setup=dangling,
            tier="default",
        )
    )

    # 8. a Docker engine that accepts and never answers
    def silent(ctx: Ctx) -> None:
        ctx.data["engine"] = SilentEngine(ctx.dir / "docker.sock")

    def silent_env(ctx: Ctx) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{ctx.dir / 'docker.sock'}"}

    def within(seconds: float, *words: str) -> Callable[[Ctx, Result], list[str]]:
        def check(ctx: Ctx, res: Result) -> list[str]:
            slow = [f"took {res.seconds:.0f} s (at most {seconds:g})"] if res.seconds > seconds else []
            return slow + says(*words)(ctx, res)

        return check

    add(Case("silent-engine-doctor", 8, ["doctor", "--json"], expect=(0, 1), setup=silent, env=silent_env,
             check=both(within(8), out_says("not answering")), timeout=30))  # fmt: skip
    add(Case("silent-engine-plan-cpu", 8, ["plan", "pytorch", "--cpu"], expect=(0,), setup=silent, env=silent_env,
             check=within(4), timeout=30))  # fmt: skip
    add(Case("silent-engine-build", 8, ["build", "pytorch", "--cpu"], expect=(4,), setup=silent, env=silent_env,
             check=within(15), timeout=60))  # fmt: skip
    add(Case("silent-engine-smoke-image", 8, ["smoke", "pytorch", "--image", "fwsetup/x:1"], expect=(4,), setup=silent,
             env=silent_env, check=within(15), timeout=60))  # fmt: skip

    # 3. a driver library that crashes or hangs in nvmlInit
    for kind in ("segv", "abort", "hang"):

        def nvml_env(ctx: Ctx, kind: str = kind) -> dict[str, str]:
            return {"LD_LIBRARY_PATH": str(ctx.world.nvml[kind]), "FWSETUP_NVML_TIMEOUT": "3"}

        for cname, args, expect in (("doctor", ["doctor", "--json"], (1,)), ("plan", ["plan", "pytorch"], (0, 3)),
                                    ("install-dry-run", install_argv("1.0", "env", "--dry-run"), (0,)),
                                    ("install", install_argv("1.0"), (0,))):  # fmt: skip
            add(Case(f"nvml-{kind}-{cname}", 3, args, expect=expect, env=nvml_env, needs="gcc", timeout=60,
                     check=out_says("NVML") if cname == "doctor" else None,
                     tier="fast" if kind == "segv" and cname != "install" else "default"))  # fmt: skip

    # 6. Ctrl-C (and SIGTERM) during an install: the target is left as it was, and it says so
    def installed_then_keep(ctx: Ctx) -> None:
        assert ctx.install("1.0", ctx.dir / "env") == 0, "setup: the first install failed"
        keep(ctx, ctx.dir / "env")

    started = {"FAKE_SMOKE_SLEEP": "60"}

    def smoke_env(ctx: Ctx) -> dict[str, str]:
        return {**started, "FAKE_SMOKE_STARTED": str(ctx.dir / "started")}

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        add(Case(f"interrupt-{sig.name}-during-smoke", 6, install_argv("2.0"), expect=(130, 128 + sig, -sig),
                 setup=installed_then_keep, env=smoke_env, signal_when=wait_file(lambda ctx: ctx.dir / "started", sig),
                 check=both(unchanged, says("interrupted", "was left as it was")), tier="default"))  # fmt: skip
    add(Case("interrupt-first-install", 6, install_argv("1.0"), expect=(130,), env=smoke_env,
             signal_when=wait_file(lambda ctx: ctx.dir / "started"), check=both(no_target(), says("interrupted")),
             tier="default"))  # fmt: skip

    def big_old_env(ctx: Ctx) -> None:
        # An old environment with many files: deleting it after the swap takes long enough to be interrupted.
        # They are a package folder of the user's in site-packages (what --force lets a new version drop; a
        # folder of theirs at the env's top is never replaced, even with --force).
        t = ctx.dir / "env"
        assert ctx.install("1.0", t) == 0, "setup: the first install failed"
        junk = next(t.glob("lib/python*/site-packages")) / "userjunk"
        junk.mkdir(parents=True)
        for i in range(30000):
            (junk / f"f{i}").write_bytes(b"x")
        ctx.data["ino"] = t.stat().st_ino

    def when_swapped(ctx: Ctx, p: subprocess.Popen[bytes]) -> int | None:
        t = ctx.dir / "env"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and p.poll() is None:
            with contextlib.suppress(OSError):
                if t.stat().st_ino != ctx.data["ino"]:
                    return signal.SIGINT
            time.sleep(0.001)
        return None

    def complete(ctx: Ctx, res: Result) -> list[str]:
        v = installed_version(ctx.dir / "env")
        out = [] if v == "2.0" else [f"the target holds {v} after the swap"]
        flat = " ".join(res.stderr.split())
        if "interrupted" in flat and "it is complete" not in flat:
            out.append("interrupted after the swap, but not said to be complete")
        return out

    add(Case("interrupt-after-swap", 6, install_argv("2.0", "env", "--force"), expect=(0,), setup=big_old_env, signal_when=when_swapped,
             check=complete, tier="default", timeout=120))  # fmt: skip

    def env_1(ctx: Ctx) -> None:
        assert ctx.install("1.0", ctx.dir / "env") == 0, "setup: the first install failed"

    add(Case("interrupt-smoke", 6, lambda ctx: ["--recipes", str(ctx.world.recipes), "smoke", "fakefw", "--python",
                                                str(ctx.dir / "env" / "bin" / "python")],
             expect=(130,), setup=env_1, env=smoke_env, signal_when=wait_file(lambda ctx: ctx.dir / "started"),
             check=says("interrupted"), tier="default"))  # fmt: skip
    for delay in (
        0.04,
        0.08,
        0.15,
    ):  # Ctrl-C while the command line loads: one word, exit 130 (0: it had finished)
        add(Case(f"interrupt-plan-after-{int(delay * 1000)}ms", 6, ["plan", "pytorch"], expect=(0, 130),
                 signal_when=after(delay)))  # fmt: skip

    out += cases_issue21()
    out += cases_issue21_multinode()
    out += cases_issue21_network()
    out += cases_new_commands()
    return out


# -- the cases of issue 21: every wait and every buffer bounded, bad input ----------------------------------------

H100_SCENARIO = {
    "init": "ok", "driver": "580.82.07", "cuda": 13000, "count": 1,
    "gpu0.name": "NVIDIA H100 80GB HBM3", "gpu0.uuid": "GPU-00000000-fa4e-4e5d-8c3b-000000000000",
    "gpu0.memory": 85520809984, "gpu0.cc": "9.0", "gpu0.pci": "00000000:18:00.0",
}  # fmt: skip


def fake_nvml(**changes: object) -> tuple[Callable[[Ctx], None], Callable[[Ctx], dict[str, str]]]:
    """setup and env of a case whose driver library is the C fake, answering from a scenario file."""

    def setup(ctx: Ctx) -> None:
        lines = {**H100_SCENARIO, **changes}
        text = b"".join(k.encode() + b"=" + (v if isinstance(v, bytes) else str(v).encode()) + b"\n"
                        for k, v in lines.items())  # fmt: skip
        (ctx.dir / "gpu.scenario").write_bytes(text)

    def env(ctx: Ctx) -> dict[str, str]:
        assert ctx.world.fake_nvml is not None
        return {"LD_LIBRARY_PATH": str(ctx.world.fake_nvml.build()), "FAKE_NVML_SCENARIO": str(ctx.dir / "gpu.scenario"),
                "FAKE_NVML_DAEMON_PIDFILE": str(ctx.dir / "daemon.pid")}  # fmt: skip

    return setup, env


def nvml_ok(ctx: Ctx, res: Result) -> list[str]:
    """doctor --json / profile: the driver is read as working (nvml ok) and its GPU is listed."""
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        return ["stdout is not JSON"]
    host = doc.get("host", doc) if isinstance(doc, dict) else {}
    nv = host.get("nvidia") or {}
    out = [] if nv.get("nvml") == "ok" else [f"nvml is {str(nv.get('nvml'))[:160]!r}, not ok"]
    if not nv.get("gpus"):
        out.append("no GPU listed")
    return out


def daemon_ended(ctx: Ctx) -> list[str]:
    """The fake driver's helper process (it keeps the probe's pipes open) must not outlive fwsetup."""
    pidfile = ctx.dir / "daemon.pid"
    if not pidfile.exists():
        return []
    pid = int(pidfile.read_text().strip() or 0)
    alive = False
    with contextlib.suppress(OSError):
        alive = Path(f"/proc/{pid}").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    if alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        return [f"the driver's helper process {pid} was left running"]
    return []


def within_s(seconds: float) -> Callable[[Ctx, Result], list[str]]:
    def check(_ctx: Ctx, res: Result) -> list[str]:
        return [f"took {res.seconds:.0f} s (at most {seconds:g})"] if res.seconds > seconds else []

    return check


def no_unexpected(_ctx: Ctx, res: Result) -> list[str]:
    """One clear line: never the catch-all "unexpected X" (counted as a wrong exit code when there)."""
    text = res.stdout + res.stderr
    return ["said 'unexpected …'"] if "unexpected" in text else []


def fifo(name: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        os.mkfifo(ctx.dir / name)

    return setup


def sparse(name: str, size: int = 8 << 30) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        with open(ctx.dir / name, "wb") as f:
            f.truncate(size)

    return setup


def cases_issue21() -> list[Case]:
    out: list[Case] = []
    add = out.append
    no_gpu = str(FIXTURES / "no-gpu.json")

    # An NVML library that forks a helper keeping stdout open: it answered, and the helper is ended.
    setup, env = fake_nvml(daemon=120)
    add(Case("nvml-daemon-doctor", 21, ["doctor", "--json"], expect=(0, 1), setup=setup, env=env, needs="gcc",
             check=both(nvml_ok, within_s(10)), leftovers=daemon_ended, timeout=65))  # fmt: skip
    add(Case("nvml-daemon-plan-gpu", 21, ["plan", "pytorch", "--gpu", "--json"], expect=(0,), setup=setup, env=env,
             needs="gcc", check=within_s(10), leftovers=daemon_ended, timeout=65))  # fmt: skip
    # An NVML library that prints 5 M lines (about 200 MB) during init.
    setup, env = fake_nvml(stdout_lines=5_000_000)
    add(Case("nvml-flood-doctor", 21, ["doctor", "--json"], expect=(0, 1), setup=setup, env=env, needs="gcc",
             check=nvml_ok, flood=True, timeout=65))  # fmt: skip
    # A GPU name that is not UTF-8; a negative capability, an absurd memory size.
    setup, env = fake_nvml(**{"gpu0.name": b"NVIDIA \xff\xfe H100"})
    add(Case("nvml-name-not-utf8-doctor", 21, ["doctor", "--json"], expect=(0, 1), setup=setup, env=env,
             needs="gcc", check=nvml_ok))  # fmt: skip
    add(Case("nvml-name-not-utf8-plan-gpu", 21, ["plan", "pytorch", "--gpu", "--json"], expect=(0,), setup=setup,
             env=env, needs="gcc"))  # fmt: skip
    setup, env = fake_nvml(**{"gpu0.memory": "-5", "gpu0.cc": "-1.5"})
    add(Case("nvml-absurd-fields-doctor", 21, ["doctor", "--json"], expect=(0, 1), setup=setup, env=env,
             needs="gcc", check=nvml_ok))  # fmt: skip
    add(Case("nvml-absurd-fields-profile", 21, ["profile"], expect=(0,), setup=setup, env=env, needs="gcc",
             check=nvml_ok))  # fmt: skip

    # A smoke step that prints without end, or floods before its report.
    def flood_smoke(kind: str) -> Callable[[Ctx], dict[str, str]]:
        return lambda ctx: {"FWSETUP_SMOKE_DIR": str(ctx.world.flood_smoke[kind])}

    def smoke_argv(*extra: str) -> Callable[[Ctx], list[str]]:
        return lambda ctx: ["--recipes", str(ctx.world.recipes), "smoke", "fakefw", "--python", sys.executable,
                            *extra]  # fmt: skip

    add(Case("smoke-flood-endless", 21, smoke_argv("--timeout", "15"), expect=(6,), env=flood_smoke("endless"),
             flood=True, check=says("did not finish"), timeout=65))  # fmt: skip
    add(Case("smoke-flood-then-report", 21, smoke_argv(), expect=(0,), env=flood_smoke("then-report"), flood=True,
             timeout=65))  # fmt: skip
    add(Case("smoke-flood-one-line", 21, smoke_argv(), expect=(0,), env=flood_smoke("one-line"), flood=True,
             timeout=65))  # fmt: skip

    # Host profiles that are not files: a FIFO (blocks), /dev/zero and a huge file (endless reads).
    for cname, cmd in (("plan", ["plan", "pytorch"]), ("doctor", ["doctor", "--json"])):
        add(Case(f"profile-fifo-{cname}", 21, lambda ctx, cmd=cmd: [*cmd, "--host-profile", str(ctx.dir / "p.json")],
                 expect=(2,), setup=fifo("p.json"), check=no_unexpected, timeout=65))  # fmt: skip
    add(Case("fleet-fifo", 21, lambda ctx: ["plan", "pytorch", "--host-profile", no_gpu, "--host-profile",
                                            str(ctx.dir / "p.json")],
             expect=(2,), setup=fifo("p.json"), check=no_unexpected, timeout=65))  # fmt: skip
    add(Case("fleet-dev-zero", 21, ["plan", "pytorch", "--host-profile", no_gpu, "--host-profile", "/dev/zero"],
             expect=(2,), check=no_unexpected, flood=True, timeout=65))  # fmt: skip
    add(Case("profile-huge-file", 21, lambda ctx: ["plan", "pytorch", "--host-profile", str(ctx.dir / "p.json")],
             expect=(2,), setup=sparse("p.json"), check=no_unexpected, flood=True, timeout=65))  # fmt: skip
    add(Case("fleet-huge-file", 21, lambda ctx: ["plan", "pytorch", "--host-profile", no_gpu, "--host-profile",
                                                 str(ctx.dir / "p.json")],
             expect=(2,), setup=sparse("p.json"), check=no_unexpected, flood=True, timeout=65))  # fmt: skip

    # Recipes: a FIFO, a huge file, a TOML bomb, a byte order mark.
    def recipes_with(make: Callable[[Path], None]) -> Callable[[Ctx], None]:
        def setup(ctx: Ctx) -> None:
            (ctx.dir / "recipes").mkdir()
            make(ctx.dir / "recipes" / "fakefw.toml")

        return setup

    def user_plan(ctx: Ctx) -> list[str]:
        return ["--recipes", str(ctx.dir / "recipes"), "plan", "fakefw", "--cpu"]

    def user_validate(ctx: Ctx) -> list[str]:
        return ["recipes", "validate", str(ctx.dir / "recipes")]

    def huge(p: Path) -> None:
        with open(p, "wb") as f:
            f.truncate(8 << 30)

    bad_recipes: dict[str, Callable[[Path], None]] = {
        "fifo": lambda p: os.mkfifo(p),
        "huge": huge,
        "toml-bomb-arrays": lambda p: p.write_text(
            recipe() + "bomb = " + "[" * 100_000 + "]" * 100_000 + "\n"
        ),
        "toml-bomb-tables": lambda p: p.write_text(
            recipe() + "bomb = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n"
        ),
        "not-a-file": lambda p: p.mkdir(),
    }
    for rname, make in bad_recipes.items():
        add(Case(f"recipe-{rname}-plan", 21, user_plan, expect=(2,), setup=recipes_with(make),
                 check=no_unexpected, flood=rname == "huge", timeout=65))  # fmt: skip
        add(Case(f"recipe-{rname}-validate", 21, user_validate, expect=(1, 2), setup=recipes_with(make),
                 check=no_unexpected, flood=rname == "huge", timeout=65))  # fmt: skip
    add(Case("recipe-bom-plan", 21, user_plan, expect=(0,),
             setup=recipes_with(lambda p: p.write_bytes(b"\xef\xbb\xbf" + recipe().encode()))))  # fmt: skip

    # Detection threads racing over sysconfig: "unexpected TypeError" in a few of 40 runs.
    for i in range(10):
        add(
            Case(
                f"doctor-race-{i}",
                21,
                ["doctor", "--json"],
                expect=(0, 1),
                check=no_unexpected,
                tier="default",
            )
        )
    return out


def trickling_index(ctx: Ctx) -> None:
    """A server on loopback that sends its status line and headers a byte a second (for ~17 minutes), and a
    recipe of our own whose index it is."""

    def serve(srv: socket.socket) -> None:
        while True:
            conn, _ = srv.accept()

            def talk(c: socket.socket = conn) -> None:
                with c, contextlib.suppress(OSError):
                    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n":
                        c.sendall(bytes([b]))
                        time.sleep(1.0)

            threading.Thread(target=talk, daemon=True).start()

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    threading.Thread(target=serve, args=(srv,), daemon=True).start()
    port = srv.getsockname()[1]
    user_recipes(recipe(build=f'index_url = "http://127.0.0.1:{port}/simple"\n'))(ctx)


def cases_issue21_network() -> list[Case]:
    """Issue 21: an index trickling its headers (a total deadline, exit 7), tokens in the query string."""
    out: list[Case] = []
    add = out.append
    no_gpu = str(FIXTURES / "no-gpu.json")
    add(Case("index-trickle-dry-run", 21,
             lambda ctx: ["--recipes", str(ctx.dir / "recipes"), "install", "fakefw", "--cpu", "--version", "1.0",
                          "--allow-insecure", "--env", str(ctx.dir / "env"), "--dry-run"],
             expect=(7,), setup=trickling_index, env={"PIP_TIMEOUT": "5"},
             check=both(within_s(15), says("timed out after 5 s"), no_target()), timeout=65))  # fmt: skip
    query = {"PIP_INDEX_URL": f"https://127.0.0.1:9/simple/?token={TOKEN}"}
    both_kinds = {"PIP_INDEX_URL": f"https://alice:{TOKEN}@127.0.0.1:9/simple/?access_token={TOKEN}&page=1"}
    online_dry_run = lambda ctx: ["--recipes", str(ctx.world.recipes), "install", "fakefw", "--cpu",  # noqa: E731
                                  "--version", "1.0", "--env", str(ctx.dir / "env"), "--dry-run"]  # fmt: skip
    add(Case("secret-query-token-dry-run", 21, online_dry_run, expect=(0,), env=query, secret=True))
    add(Case("secret-query-token-plan-json", 21, ["plan", "pytorch", "--json", "--host-profile", no_gpu],
             expect=(0,), env=both_kinds, secret=True))  # fmt: skip
    add(Case("secret-query-token-install-online", 21,
             lambda ctx: ["--recipes", str(ctx.world.recipes), "install", "fakefw", "--cpu", "--version", "1.0",
                          "--env", str(ctx.dir / "env"), "--wheelhouse", str(ctx.world.wheels)],
             expect=(0, 5, 7), env=both_kinds, secret=True, tier="default", timeout=120))  # fmt: skip
    return out


def no_raw_escape(_ctx: Ctx, res: Result) -> list[str]:
    """Nothing a terminal would act on (ESC, BEL, a bidi override) reaches the output raw."""
    text = res.stdout + res.stderr
    return [f"printed {c!r} raw" for c in ("\x1b", "\x07", "\u202e") if c in text]


def cases_issue21_multinode() -> list[Case]:
    """Issue 21: multi-node smoke hostfiles (bounded reads, bad lines, ranks elsewhere, too many ranks) and node
    names with escape sequences. No framework is needed: every case is refused before a rank starts."""
    out: list[Case] = []
    add = out.append

    def hostfile_argv(nodes: int = 2, name: str = "hosts") -> Callable[[Ctx], list[str]]:
        return lambda ctx: ["smoke", "pytorch", "--python", sys.executable, "--nodes", str(nodes), "--hostfile",
                            str(ctx.dir / name) if not name.startswith("/") else name]  # fmt: skip

    def hosts(data: bytes) -> Callable[[Ctx], None]:
        return lambda ctx: (ctx.dir / "hosts").write_bytes(data) and None

    add(Case("hostfile-dev-zero", 21, hostfile_argv(name="/dev/zero"), expect=(2,),
             check=both(no_unexpected, says("larger than 4 MiB")), flood=True, timeout=65))  # fmt: skip
    add(Case("hostfile-huge-file", 21, hostfile_argv(), expect=(2,), setup=sparse("hosts"),
             check=both(no_unexpected, says("larger than 4 MiB")), flood=True, timeout=65))  # fmt: skip
    add(Case("hostfile-fifo", 21, hostfile_argv(), expect=(2,), setup=fifo("hosts"),
             check=both(no_unexpected, within_s(45)), timeout=65))  # fmt: skip
    for cname, line, word in (
        ("ipv6", b"::1", "IPv6"),
        ("not-utf8", b"10.0.0.\xff2", "not UTF-8"),
        ("any-address", b"0.0.0.0", "any address"),
        ("broadcast", b"255.255.255.255", "broadcast"),
        ("escape", b"127.0.0.1 netns=\x1b[2J", "control character"),
        ("elsewhere", b"192.0.2.1", "is not an address of this machine"),
        ("no-such-netns", b"127.0.0.1 netns=fwsetup-battery-none", "does not exist"),
    ):
        add(Case(f"hostfile-{cname}", 21, hostfile_argv(), expect=(2,), setup=hosts(b"127.0.0.1\n" + line + b"\n"),
                 check=both(no_unexpected, no_raw_escape, says("line 2", word))))  # fmt: skip
    add(Case("hostfile-10000-ranks", 21, hostfile_argv(10_000), expect=(2,), setup=hosts(b"127.0.0.1\n" * 10_000),
             check=both(no_unexpected, says("this machine can start at most"), within_s(20))))  # fmt: skip

    def hostile_fleet(ctx: Ctx) -> None:
        d = ctx.dir / "fleet"
        d.mkdir()
        for f in (FIXTURES / "fleets" / "old-driver").iterdir():
            shutil.copy(f, d / f.name)
        (d / "gpu-07.json").rename(d / "gpu\x1b[2J\x1b[H-07.json")
        raw = json.loads((d / "gpu-02.json").read_text())
        raw["hostname"] = "gpu\x1b]0;owned\x07\u202e-02"
        (d / "gpu-02.json").write_text(json.dumps(raw))

    add(Case("fleet-escape-names-doctor", 21, lambda ctx: ["doctor", "--fleet", str(ctx.dir / "fleet")],
             expect=(1,), setup=hostile_fleet, check=both(no_unexpected, no_raw_escape)))  # fmt: skip
    add(Case("fleet-escape-names-plan", 21, lambda ctx: ["plan", "pytorch", "--gpu", "--host-profile",
                                                         str(ctx.dir / "fleet")],
             expect=(0,), setup=hostile_fleet, check=both(no_unexpected, no_raw_escape)))  # fmt: skip
    return out


def cases_new_commands() -> list[Case]:
    """Issues 23-25: envs, remove, sync, build --platform, smoke/install on Slurm, job. Bad input is one message
    and exit 2 (6 where the cluster cannot be asked), a folder fwsetup did not make is left as it was."""
    out: list[Case] = []
    add = out.append

    def registry(data: bytes | None) -> Callable[[Ctx], None]:
        def setup(ctx: Ctx) -> None:
            d = ctx.dir / "xdg-data" / "fwsetup"
            d.mkdir(parents=True)
            if data is None:
                (d / "envs.json").mkdir()
            else:
                (d / "envs.json").write_bytes(data)

        return setup

    for cname, data in (("not-json", b"{not json"), ("not-utf8", b"\xff\xfe"), ("schema-99", b'{"schema_version": 99}'),
                        ("a-folder", None)):  # fmt: skip
        add(Case(f"envs-registry-{cname}", 23, ["envs"], expect=(0,), setup=registry(data),
                 check=both(no_unexpected, says("rebuilt"))))  # fmt: skip

    def folder(lock: bytes | None) -> Callable[[Ctx], None]:
        def setup(ctx: Ctx) -> None:
            d = ctx.dir / "mine"
            d.mkdir()
            (d / "thesis.tex").write_text("years of work")
            if lock is not None:
                (d / ".fwsetup").mkdir()
                (d / ".fwsetup" / "lock.json").write_bytes(lock)
            keep(ctx, d)

        return setup

    for cname, lock in (("plain", None), ("corrupt-lock", b"{garbage"), ("foreign-lock", b"{}")):
        for cmd in ("remove", "sync"):
            add(Case(f"{cmd}-folder-{cname}", 23, lambda ctx, cmd=cmd: [cmd, str(ctx.dir / "mine"), "--yes"][:3 if cmd == "remove" else 2],
                     expect=(2,), setup=folder(lock),
                     check=both(no_unexpected, unchanged, says("not an environment fwsetup made"))))  # fmt: skip
    for cmd, word in (("remove", "no such environment"), ("sync", "not an environment fwsetup made")):
        add(Case(f"{cmd}-missing-path", 23, lambda ctx, cmd=cmd: [cmd, str(ctx.dir / "nothing")], expect=(2,),
                 check=both(no_unexpected, says(word))))  # fmt: skip

    def bad_pylock(ctx: Ctx) -> None:
        (ctx.dir / "pylock.toml").write_text("garbage{\n")

    add(Case("sync-from-lock-missing", 23, lambda ctx: ["sync", str(ctx.dir / "new"), "--from-lock",
                                                        str(ctx.dir / "none")],
             expect=(2,), check=both(no_unexpected, no_target("new"), says("no pylock.toml"))))  # fmt: skip
    add(Case("sync-from-lock-bad-toml", 23, lambda ctx: ["sync", str(ctx.dir / "new"), "--from-lock",
                                                         str(ctx.dir / "pylock.toml")],
             expect=(2,), setup=bad_pylock,
             check=both(no_unexpected, no_target("new"), says("not a valid pylock.toml"))))  # fmt: skip
    for cname, value in (("banana", "banana"), ("s390x", "linux/s390x"), ("empty", ""), ("comma", ",")):
        add(Case(f"build-platform-{cname}", 24, ["build", "pytorch", "--cpu", "--platform", value], expect=(2,),
                 check=both(no_unexpected, says("--platform"))))  # fmt: skip
    for cname, args in (
        ("nodes-0", ["--nodes", "0", "--launcher", "slurm"]),
        ("launcher-banana", ["--nodes", "2", "--launcher", "banana"]),
        ("launcher-no-nodes", ["--launcher", "slurm"]),
        ("emit-sbatch-alone", ["--emit-sbatch", "job.sh"]),
        ("emit-sbatch-folder", ["--nodes", "2", "--launcher", "slurm", "--emit-sbatch", "."]),
    ):
        add(Case(f"smoke-slurm-{cname}", 25, ["smoke", "pytorch", *args], expect=(2,), check=no_unexpected))
    add(Case("smoke-slurm-no-cluster", 25, ["smoke", "pytorch", "--nodes", "2", "--launcher", "slurm"],
             expect=(6,), env={"SLURM_CONF": "/nonexistent/slurm.conf"},
             check=both(no_unexpected, says("slurmctld"))))  # fmt: skip
    for cname, args in (
        ("nodes-0", ["--fleet", "slurm", "--nodes", "0", "--env", "/tmp/fwsetup-battery-none"]),
        ("fleet-banana", ["--fleet", "banana", "--nodes", "2", "--env", "/tmp/fwsetup-battery-none"]),
        ("no-env", ["--fleet", "slurm", "--nodes", "2"]),
    ):
        add(Case(f"install-fleet-{cname}", 25, ["install", "pytorch", *args], expect=(2,),
                 check=both(no_unexpected, lambda _c, _r: ["made /tmp/fwsetup-battery-none"]
                            if os.path.lexists("/tmp/fwsetup-battery-none") else [])))  # fmt: skip
    for cname, args in (
        ("image-bad-ref", ["--nodes", "2", "--image", "bad ref!!"]),
        ("image-empty", ["--nodes", "2", "--image", ""]),
        ("nodes-0", ["--nodes", "0", "--image", "x"]),
        ("format-banana", ["--nodes", "2", "--image", "x", "--format", "banana"]),
    ):
        add(Case(f"job-{cname}", 25, ["job", "pytorch", *args], expect=(2,), check=no_unexpected))
    return out


# -- main ------------------------------------------------------------------------------------------------------


# The pytest subset (tests/unit/cli/test_cli_battery.py): one or two inputs of each item that need no real install (~10 s).
FAST = {
    "profile-python-banana-plan", "profile-memory-minus-5-doctor", "profile-driver-banana-plan",
    "profile-schema-999-plan", "profile-deep-nesting-plan", "profile-empty-path-plan", "profile-surrogate-doctor",
    "smoke-timeout-nan", "doctor-timeout-inf", "smoke-steps-0", "smoke-unknown", "profile-output-dir",
    "matrix-out-dir-file", "closed-stdout-plan-refused", "closed-stdout-plan-ok-json", "refused-install-leaves-nothing",
    "injection-env-key-newline-build", "injection-title-newline-validate", "insecure-http-index", "insecure-ld-preload",
    "secret-dry-run", "secret-plan-json", "silent-engine-plan-cpu", "nvml-segv-doctor", "interrupt-plan-after-80ms",
    "envs-registry-not-json", "remove-folder-corrupt-lock", "sync-from-lock-bad-toml", "build-platform-s390x",
    "smoke-slurm-launcher-banana", "install-fleet-no-env", "job-image-bad-ref",
}  # fmt: skip


def select(all_cases: list[Case], *, tier: str, pattern: str | None = None) -> list[Case]:
    if tier == "fast":
        return [c for c in all_cases if c.name in FAST and (not pattern or pattern in c.name)]
    tiers = {"default": {"fast", "default"}, "full": {"fast", "default", "full"}}[tier]
    return [c for c in all_cases if c.tier in tiers and (not pattern or pattern in c.name)]


PEAKS: dict[str, int] = {}  # flood case -> bytes fwsetup held at its peak (filled by run_all)


def run_all(
    selected: list[Case], *, verbose: bool = False, log: Any = sys.stderr
) -> tuple[dict[str, int], dict[str, list[str]]]:
    totals = dict.fromkeys(COUNTS, 0)
    failures: dict[str, list[str]] = {}
    PEAKS.clear()
    base = Path(tempfile.mkdtemp(prefix="fwsetup-battery-"))
    try:
        world = World(base / "world")
        for case in selected:
            counts, problems, res = run_case(case, world, base / "cases")
            for k, v in counts.items():
                totals[k] += v
            if res is not None and res.peak_bytes is not None:
                PEAKS[case.name] = res.peak_bytes
            real = [p for p in problems if not p.startswith("skipped")]
            if real:
                failures[case.name] = real
            if verbose or real:
                mark = "FAIL" if real else ("skip" if problems else "ok")
                took = f"{res.seconds:5.1f}s exit {res.code}" if res else ""
                if res is not None and res.peak_bytes is not None:
                    took += f" peak {res.peak_bytes / 2**20:.0f} MiB"
                print(f"{mark:4} [{case.item:2}] {case.name:44} {took}  {'; '.join(problems)}", file=log)
                if res and verbose and real:
                    print("     stderr: " + " ".join(res.stderr.split())[-600:], file=log)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return totals, failures


def table(totals: dict[str, int]) -> str:
    width = max(map(len, COUNTS))
    lines = [f"{'count':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {totals[k]:>5}" for k in COUNTS]
    if PEAKS:
        w = max(map(len, PEAKS))
        lines += ["", f"{'flood case (bytes held at peak)':<{w}}  MiB", f"{'-' * w}  -----"]
        lines += [f"{k:<{w}}  {v / 2**20:7.1f}" for k, v in PEAKS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="also the slow cases")
    ap.add_argument("--fast", action="store_true", help="only the fast cases (the pytest subset)")
    ap.add_argument("-k", dest="pattern", help="only cases whose name holds this")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    ap.add_argument("--list", action="store_true", help="list the cases and stop")
    ap.add_argument("--json", action="store_true", help="the counts and failures as JSON on stdout")
    args = ap.parse_args(argv)
    tier = "full" if args.full else "fast" if args.fast else "default"
    selected = select(cases(), tier=tier, pattern=args.pattern)
    if args.list:
        for c in selected:
            print(f"[{c.item:2}] {c.tier:7} {c.name}")
        return 0
    t0 = time.monotonic()
    totals, failures = run_all(selected, verbose=args.verbose)
    if args.json:
        print(
            json.dumps(
                {
                    "counts": totals,
                    "failures": failures,
                    "peak_bytes": PEAKS,
                    "seconds": round(time.monotonic() - t0, 1),
                },
                indent=2,
            )
        )
    else:
        print(table(totals))
        print(f"({len(selected)} cases, {tier} tier, {time.monotonic() - t0:.0f} s)")
    return 1 if any(v for k, v in totals.items() if k != "inputs tried") else 0


if __name__ == "__main__":
    sys.exit(main())
