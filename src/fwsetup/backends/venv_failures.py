"""Why a venv install failed, in one sentence: the installer's own words read by its adapter (uv_messages,
pip_messages), the error raised for a failed installer run, the install log's last lines added to an error's
hint, and a damaged uv cache entry named and cleaned."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fwsetup import proc, staging
from fwsetup.backends import pip_messages, uv_messages
from fwsetup.backends.installer import Installer
from fwsetup.errors import FwsetupError, InstallError, NetworkError, SmokeError
from fwsetup.proc import run_streamed


def failure_reason(kind: str, output: str, what: str) -> tuple[str, bool]:
    """(one sentence, is-network) from the output of installer `kind` (uv or pip)."""
    code: uv_messages.UvFailureCode | pip_messages.PipFailureCode
    if kind == "uv":
        uv = uv_messages.read_failure(output)
        code, detail, url = uv.code, uv.detail, uv.url
    else:
        pip = pip_messages.read_failure(output)
        code, detail, url = pip.code, pip.detail, pip.url
    if code == "no_solution":
        return f"no matching distribution: {detail}", False
    if code == "no_distribution":
        return f"no matching distribution for {detail}", False
    if code == "network":
        where = f" ({url})" if url else ""
        return f"could not reach the package index{where}: {detail}", True
    return f"{what} failed: {detail}", False


def tail(path: Path | None, n: int = 15) -> str:
    if path is None:
        return ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def damaged_cache(
    bad: Mapping[str, list[str]],
    inst: Installer,
    cmds: list[list[str]],
    env: dict[str, str],
    st: staging.Staging,
) -> None:
    """Installed files that are not what their package's RECORD says: a damaged cache entry (uv linked it).
    Those packages are removed from uv's cache, so that the next run unpacks them again; InstallError."""
    names = sorted(bad)
    name, files = names[0], bad[names[0]]
    msg = (
        f"{name} was installed with {len(files)} files that differ from its RECORD (e.g. {files[0]}): "
        "the installer's cache holds a damaged copy"
    )
    if inst.kind == "uv":
        clean = run_streamed([cmds[2][0], "cache", "clean", *names], env=env, log=st.log_file, timeout=600)
        msg += (
            f"; {', '.join(names)} removed from uv's cache"
            if clean.ok
            else f"; `uv cache clean {' '.join(names)}` failed"
        )
    raise InstallError(
        msg + ".", hint="Run the same command again: the packages are unpacked again from their wheels."
    )


def raise_for(res: proc.Result, what: str, kind: str) -> None:
    """InstallError (NetworkError when the installer could not reach an index) for a failed run of installer
    `kind` (uv or pip)."""
    if res.ok:
        return
    if res.returncode is None:
        msg = f"{what} failed: {res.error}"
        raise InstallError(msg)
    reason, network = failure_reason(kind, res.stderr, what)
    raise (NetworkError if network else InstallError)(reason)


def with_log(exc: FwsetupError, st: staging.Staging) -> FwsetupError:
    """Add the last lines of the install log and where it was kept to the error's hint."""
    log = st.failure_log
    last = tail(log, 12)
    parts = [exc.hint] if exc.hint else []
    if last and not isinstance(exc, SmokeError):
        parts.append("last lines of the log:\n" + "\n".join("  " + ln for ln in last.splitlines()))
    if log is not None:
        parts.append(f"full log: {log}")
    parts.append(f"{st.target} was left as it was.")
    exc.hint = "\n".join(parts)
    return exc


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"
