"""A second torch environment whose torch is another version, for the multi-node tests' version-mismatch cases
(lanes netns and slurm), made cheaply from the lanes' torch 2.13.0 venv.

PyTorch's indexes are not reachable here and every torch release on PyPI for Linux x86_64 is a CUDA build
(about 3 GB with its nvidia-* wheels), so the second version is the torch of the first env installed as a
from-source build of it reports itself (`2.13.0a0+…`, as `python setup.py bdist_wheel` at that commit does):
the venv is copied with hard links (no disk: the files are shared), and in the copy torch's version.py,
its dist-info folder, METADATA and RECORD are new files saying OTHER_VERSION — what pip or uv would leave after
installing such a wheel. Both `importlib.metadata.version("torch")` (what fwsetup asks each node) and
`torch.__version__` (what the rank imports) say OTHER_VERSION; the files the copy shares with the original are
never written (each changed file is unlinked first, then written anew).

`starts_log(env)`: a .pth line in the env's site-packages that appends each interpreter start's sys.argv to the
file $FWSETUP_TEST_STARTS names (when set): the tests read it to prove that no rank was started.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

OTHER_VERSION = "2.13.0a0+fwsetup.test"
STARTS_ENV = "FWSETUP_TEST_STARTS"
# One line (a .pth runs a line that starts with `import`); once per process (site may read the folder twice, as
# lib/ and lib64/).
_PTH = (
    "import os, sys; p = os.environ.get('" + STARTS_ENV + "'); "
    "p and not getattr(sys, '_fwsetup_test_start', 0) and (setattr(sys, '_fwsetup_test_start', 1), "
    "open(p, 'a').write(' '.join(sys.argv[:2]) + chr(10)))\n"
)


def _site(env: Path) -> Path:
    found = sorted(env.glob("lib/python3.*/site-packages"))
    if not found:
        msg = f"{env}: no lib/python3.*/site-packages"
        raise FileNotFoundError(msg)
    return found[0]


def _rewrite(path: Path, text: str) -> None:
    """A new file at `path` (the hard link to the original's file is dropped first)."""
    path.unlink()
    path.write_text(text)


def copy_env(source: str | Path, dest: Path) -> Path:
    """`source` (a venv folder, or its bin/python) copied to `dest` with hard links; the copy's python."""
    src = Path(source)
    if src.name.startswith("python"):
        src = src.parent.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["cp", "-al", str(src), str(dest)], capture_output=True, text=True, check=False)
    if res.returncode != 0:  # another file system: a real copy
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, symlinks=True)
    return dest / "bin" / "python"


def relabel_torch(env: Path, version: str = OTHER_VERSION) -> None:
    """Make the copy's torch report `version` (metadata and torch.__version__), as a wheel of that version
    installed there would."""
    site = _site(env)
    old_info = next(site.glob("torch-*.dist-info"))
    old = old_info.name[len("torch-") : -len(".dist-info")]
    vfile = site / "torch" / "version.py"
    text = vfile.read_text()
    if f"__version__ = '{old}'" not in text:
        msg = f"{vfile}: no __version__ = '{old}' line"
        raise ValueError(msg)
    new_version_py = text.replace(f"__version__ = '{old}'", f"__version__ = '{version}'")
    _rewrite(vfile, new_version_py)
    for pyc in (site / "torch" / "__pycache__").glob("version.*.pyc"):
        pyc.unlink()
    new_info = site / f"torch-{version}.dist-info"
    old_info.rename(new_info)  # the folder is the copy's own (cp -al links files, not folders)
    meta = new_info / "METADATA"
    _rewrite(
        meta,
        "".join(
            f"Version: {version}\n" if line.startswith("Version: ") else line
            for line in meta.read_text().splitlines(keepends=True)
        ),
    )
    digest = base64.urlsafe_b64encode(hashlib.sha256(new_version_py.encode()).digest()).rstrip(b"=").decode()
    lines = []
    for line in (new_info / "RECORD").read_text().splitlines():
        path, _, _rest = line.partition(",")
        path = path.replace(old_info.name + "/", new_info.name + "/")
        if path == "torch/version.py":
            line = f"{path},sha256={digest},{len(new_version_py.encode())}"
        elif path.startswith(new_info.name + "/") and path.endswith(("/RECORD", "/METADATA")):
            line = f"{path},,"
        else:
            line = path + "," + line.partition(",")[2]
        lines.append(line)
    _rewrite(new_info / "RECORD", "\n".join(lines) + "\n")


def starts_log(env: Path) -> None:
    """Each start of the env's interpreter appends its argv[0:2] to $FWSETUP_TEST_STARTS (when set)."""
    (_site(env) / "zz_fwsetup_test_starts.pth").write_text(_PTH)


def read_starts(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def other_torch_env(source: str | Path, dest: Path, version: str = OTHER_VERSION) -> Path:
    """A copy of the torch venv `source` at `dest` whose torch is `version`; its python."""
    python = copy_env(source, dest)
    relabel_torch(dest, version)
    return python
