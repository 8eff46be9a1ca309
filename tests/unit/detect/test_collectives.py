"""The collective libraries an environment's framework would use (detect/collectives.py): the probe script runs
in a real interpreter over a small fake torch package (its version module, torch.cuda.nccl.version(),
torch.distributed's availability checks), fake wheel metadata and a fake `mpirun` on PATH."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from fake_dists import dist, write

from fwsetup.detect.collectives import probe_collectives

CWD = tempfile.gettempdir()


def fake_torch(
    site: Path, *, cuda: str | None = "12.4", hip: str | None = None, nccl: object = (2, 21, 5), gloo: bool = True,
    broken: bool = False,
) -> None:  # fmt: skip
    dist(site, "torch", "2.5.1")
    write(site / "torch" / "__init__.py", "raise ImportError('libtorch_cpu.so: cannot open shared object file')\n"
          if broken else "__version__ = '2.5.1'\nfrom . import version, cuda, distributed\n")  # fmt: skip
    write(site / "torch" / "version.py", f"cuda = {cuda!r}\nhip = {hip!r}\n")
    write(site / "torch" / "cuda" / "__init__.py", "from . import nccl\n")
    write(site / "torch" / "cuda" / "nccl.py", f"def version():\n    return {nccl!r}\n")
    write(
        site / "torch" / "distributed" / "__init__.py",
        f"def is_available():\n    return True\ndef is_gloo_available():\n    return {gloo!r}\n"
        "def is_mpi_available():\n    return False\n",
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    s = tmp_path / "site"
    s.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(s))
    bin_dir = tmp_path / "bin"
    write(bin_dir / "mpirun", "#!/bin/sh\necho 'mpirun (Open MPI) 4.1.4'\necho\necho 'Report bugs to x'\n")
    (bin_dir / "mpirun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return s


def test_cuda_torch_nccl_from_torch_itself_gloo_and_mpi(site: Path) -> None:
    fake_torch(site)
    dist(site, "nvidia_nccl_cu12", "2.20.5")  # the wheel's own version: torch's answer wins
    dist(site, "mpi4py", "4.0.1")
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and c.error is None
    assert (c.framework, c.version, c.build) == ("torch", "2.5.1", "cuda")
    assert (c.nccl, c.nccl_from, c.rccl, c.gloo, c.torch_mpi) == ("2.21.5", "framework", None, True, False)
    assert (c.mpi, c.mpi4py) == ("Open MPI 4.1.4", "4.0.1")


def test_rocm_torch_reports_rccl(site: Path) -> None:
    fake_torch(site, cuda=None, hip="6.2.41133", nccl=(2, 20, 5))
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and (c.build, c.rccl, c.nccl) == ("rocm", "2.20.5", None)


@pytest.mark.parametrize(("code", "text"), [(2708, "2.7.8"), (21903, "2.19.3")])
def test_older_torch_answers_an_integer(site: Path, code: int, text: str) -> None:
    fake_torch(site, nccl=code)
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and c.nccl == text


def test_cpu_torch_without_gloo(site: Path) -> None:
    fake_torch(site, cuda=None, gloo=False)
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and (c.build, c.gloo, c.nccl) == ("cpu", False, None)


def test_torch_that_fails_to_import_keeps_what_the_files_say(site: Path) -> None:
    fake_torch(site, broken=True)
    dist(site, "nvidia_nccl_cu12", "2.21.5")
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and c.framework == "torch"
    assert (c.nccl, c.nccl_from, c.gloo, c.mpi) == ("2.21.5", "wheel", None, "Open MPI 4.1.4")
    assert c.error is not None and "libtorch_cpu.so" in c.error


def test_jax_nccl_from_its_wheel(site: Path) -> None:
    dist(site, "jax", "0.4.30")
    dist(site, "nvidia_nccl_cu12", "2.23.4")
    c = probe_collectives(sys.executable, cwd=CWD)
    assert c is not None and (c.framework, c.version, c.nccl, c.nccl_from, c.gloo) == (
        "jax", "0.4.30", "2.23.4", "wheel", None,
    )  # fmt: skip


def test_no_framework_is_no_entry(site: Path) -> None:
    assert probe_collectives(sys.executable, cwd=CWD) is None


def test_an_interpreter_that_is_not_there(tmp_path: Path) -> None:
    c = probe_collectives(str(tmp_path / "nope" / "python"), cwd=CWD)
    assert c is not None and c.framework is None and c.error
