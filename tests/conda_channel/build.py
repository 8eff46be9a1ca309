"""Build a local conda channel of real conda packages, for tests that cannot reach conda-forge.

What is real: the package format (.conda and .tar.bz2 archives with info/index.json, info/paths.json,
info/link.json, made by conda-package-handling, conda's own library), the channel index (repodata.json
written by py-rattler's indexer), and everything done with them afterwards (solve, download from a
file:// or http:// channel, verify sha256, extract, link, prefix replacement, noarch: python entry points).

What is a stand-in: `python`. conda-forge's python is a 30 MB binary build that cannot be fetched here.
The stand-in package is a venv-style launcher onto this machine's interpreter: bin/python3.X is a symlink
to it and pyvenv.cfg makes that interpreter use the environment's own lib/python3.X/site-packages (the
folder where noarch: python packages are linked). It is built for this machine only (its symlink names the
interpreter that builds it) and says so in its build string (`*_fwsetup_standin`).

Packages:
  python        X.Y.Z   <subdir>   the stand-in above; also a text file with the conda prefix placeholder
  tinytrain     0.1.0   noarch     pure-Python linear model + SGD (the training module the smoke test uses),
                                   with an entry point `tinytrain-info`; shipped as .tar.bz2
  tinytrain     0.2.0   noarch     same, .conda; needs `cuda-version` and `__cuda >=12.8` (a GPU build)
  cuda-version  12.4, 12.8  noarch  conda-forge's CUDA pin metapackage (constrains __cuda >=12)
  legacy-only   1.0     noarch     depends on python <3.8 (an unsatisfiable combination)
  sm80-only     1.0     noarch     depends on `__cuda_arch >=8.0` (CEP 46: built with kernels for compute
                                   capability 8.0 and newer only)
  pip           (this venv's)  noarch  the real pip, repackaged from the installed distribution: an
                                   environment.yml with a pip: section depends on it
make_wheel() writes a tiny real wheel (tinyextra, with a console script) for the pip: section tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shutil
import sys
import textwrap
import time
from pathlib import Path

PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"  # conda-build's prefix placeholder

TINYTRAIN = textwrap.dedent(
    '''
    """tinytrain: the smallest trainable model, in pure Python (a conda package for fwsetup's tests)."""
    import random

    __version__ = "{version}"


    def make_data(n=64, seed=0):
        rng = random.Random(seed)
        xs = [rng.uniform(-1.0, 1.0) for _ in range(n)]
        return [(x, 3.0 * x - 0.5 + rng.gauss(0.0, 0.01)) for x in xs]


    def loss(w, b, data):
        return sum((w * x + b - y) ** 2 for x, y in data) / len(data)


    def train(steps=30, lr=0.3, seed=0):
        """Gradient descent on mean squared error; returns (loss_before, loss_after, (w, b))."""
        data = make_data(seed=seed)
        w, b = 0.0, 0.0
        before = loss(w, b, data)
        for _ in range(steps):
            gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
            gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
            w, b = w - lr * gw, b - lr * gb
        return before, loss(w, b, data), (w, b)


    def info():
        import sys
        print(f"tinytrain {{__version__}} prefix={{sys.prefix}}")
    '''
)

SMOKE_SCRIPT = Path(__file__).with_name("train_tinytrain.py")


def subdir() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "osx"}.get(platform.system().lower(), "linux")
    return f"{system}-{arch}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_package(
    out_dir: Path,
    work: Path,
    *,
    name: str,
    version: str,
    build: str,
    subdir_name: str,
    files: dict[str, str] | None = None,
    symlinks: dict[str, str] | None = None,
    depends: list[str] | None = None,
    constrains: list[str] | None = None,
    noarch: str | None = None,
    link: dict | None = None,
    placeholders: tuple[str, ...] = (),
    fmt: str = ".conda",
) -> Path:
    """One conda package: the files, info/index.json, info/paths.json (+ has_prefix, link.json), archived
    by conda-package-handling."""
    import conda_package_handling.api as cph

    src = work / f"{name}-{version}-{build}"
    shutil.rmtree(src, ignore_errors=True)
    (src / "info").mkdir(parents=True)
    paths = []
    for rel, content in (files or {}).items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        entry = {
            "_path": rel,
            "path_type": "hardlink",
            "sha256": _sha256(p),
            "size_in_bytes": p.stat().st_size,
        }
        if rel in placeholders:
            entry |= {"prefix_placeholder": PLACEHOLDER, "file_mode": "text"}
        paths.append(entry)
    for rel, dest in (symlinks or {}).items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(dest, p)
        paths.append({"_path": rel, "path_type": "softlink", "size_in_bytes": 0})
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": depends or [],
        "constrains": constrains or [],
        "license": "MIT",
        "subdir": subdir_name,
        "timestamp": int(time.time() * 1000),
    }
    if subdir_name != "noarch":
        system, _, arch = subdir_name.partition("-")
        index |= {"platform": system, "arch": {"64": "x86_64"}.get(arch, arch)}
    if noarch:
        index["noarch"] = noarch
    (src / "info" / "index.json").write_text(json.dumps(index, indent=2))
    (src / "info" / "paths.json").write_text(json.dumps({"paths": paths, "paths_version": 1}, indent=2))
    (src / "info" / "files").write_text("".join(e["_path"] + "\n" for e in paths))
    if placeholders:
        (src / "info" / "has_prefix").write_text("".join(f"{PLACEHOLDER} text {r}\n" for r in placeholders))
    if link:
        (src / "info" / "link.json").write_text(json.dumps(link, indent=2))
    members = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() or p.is_symlink())
    out_dir.mkdir(parents=True, exist_ok=True)
    fn = f"{name}-{version}-{build}{fmt}"
    cph.create(str(src), members, fn, out_folder=str(out_dir))
    return out_dir / fn


def host_interpreter() -> Path:
    """The real interpreter behind this process (not a venv's symlink to it)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(base))


def build_channel(channel: Path, *, work: Path | None = None) -> Path:
    """Build the channel at `channel` (returns it): packages in <subdir>/ and noarch/, repodata.json by rattler."""
    import rattler

    work = work or channel.parent / f"{channel.name}-src"
    sub = subdir()
    py = host_interpreter()
    major_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    pyver = platform.python_version()
    build_package(
        channel / sub,
        work,
        name="python",
        version=pyver,
        build="0_fwsetup_standin",
        subdir_name=sub,
        files={
            "pyvenv.cfg": f"home = {py.parent}\ninclude-system-site-packages = false\nversion = {pyver}\n",
            "etc/fwsetup-python-standin.txt": f"prefix={PLACEHOLDER}\ninterpreter={py}\n",
        },
        symlinks={
            f"bin/python{major_minor}": str(py),
            "bin/python3": f"python{major_minor}",
            "bin/python": f"python{major_minor}",
        },
        placeholders=("etc/fwsetup-python-standin.txt",),
    )
    entry = {
        "noarch": {"type": "python", "entry_points": ["tinytrain-info = tinytrain:info"]},
        "package_metadata_version": 1,
    }
    build_package(
        channel / "noarch",
        work,
        name="tinytrain",
        version="0.1.0",
        build="py_0",
        subdir_name="noarch",
        files={"site-packages/tinytrain/__init__.py": TINYTRAIN.format(version="0.1.0")},
        depends=["python >=3.10"],
        noarch="python",
        link=entry,
        fmt=".tar.bz2",
    )
    build_package(
        channel / "noarch",
        work,
        name="tinytrain",
        version="0.2.0",
        build="cuda128_py_0",
        subdir_name="noarch",
        files={"site-packages/tinytrain/__init__.py": TINYTRAIN.format(version="0.2.0")},
        depends=["python >=3.10", "cuda-version >=12.8,<13", "__cuda >=12.8"],
        noarch="python",
        link=entry,
    )
    for cuda in ("12.4", "12.8"):
        build_package(
            channel / "noarch",
            work,
            name="cuda-version",
            version=cuda,
            build="h0",
            subdir_name="noarch",
            constrains=[f"cudatoolkit {cuda}|{cuda}.*", "__cuda >=12"],
            noarch="generic",
        )
    build_package(
        channel / "noarch",
        work,
        name="legacy-only",
        version="1.0",
        build="0",
        subdir_name="noarch",
        files={"share/legacy-only/README": "needs an old python\n"},
        depends=["python <3.8"],
        noarch="generic",
    )
    build_package(
        channel / "noarch",
        work,
        name="sm80-only",
        version="1.0",
        build="0",
        subdir_name="noarch",
        files={"share/sm80-only/README": "kernels for sm_80 and newer\n"},
        depends=["__cuda_arch >=8.0"],
        noarch="generic",
    )
    _repackage_pip(channel / "noarch", work)
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))
    shutil.rmtree(channel / ".tmp", ignore_errors=True)
    return channel


def _repackage_pip(out_dir: Path, work: Path) -> Path:
    """pip as conda-forge ships it (noarch: python), from the files of the pip installed here."""
    from importlib.metadata import distribution

    dist = distribution("pip")
    files: dict[str, str] = {}
    for f in dist.files or ():
        if f.suffix == ".pyc" or "__pycache__" in f.parts or str(f).startswith(".."):
            continue
        src = Path(str(dist.locate_file(f)))
        if src.is_file():
            try:
                files[f"site-packages/{f}"] = src.read_text()
            except UnicodeDecodeError:
                continue  # pip's .exe launchers for Windows
    link = {
        "noarch": {"type": "python", "entry_points": ["pip = pip._internal.cli.main:main"]},
        "package_metadata_version": 1,
    }
    return build_package(
        out_dir,
        work,
        name="pip",
        version=dist.version,
        build="pyh_0",
        subdir_name="noarch",
        files=files,
        depends=["python >=3.9"],
        noarch="python",
        link=link,
    )


def make_wheel(dest: Path, name: str = "tinyextra", version: str = "0.1.0") -> Path:
    """A real (if tiny) pure-Python wheel with a console script, for environment.yml pip: sections."""
    import base64
    import zipfile

    dest.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    members = {
        f"{name}/__init__.py": f"__version__ = {version!r}\n\ndef main():\n    import sys\n    print('{name}', sys.prefix)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: fwsetup-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name} = {name}:main\n",
    }
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in members.items():
            z.writestr(path, text)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


if __name__ == "__main__":
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "conda-channel").absolute()
    print(build_channel(dest))
