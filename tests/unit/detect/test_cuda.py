"""CUDA toolkit and cuDNN from files; libcudart on LD_LIBRARY_PATH."""

from __future__ import annotations

import json
from pathlib import Path

from fwsetup.detect import cuda


def toolkit(root: Path, *, version_json: str | None = None, version_txt: str | None = None,
            cudart: int | None = None) -> Path:  # fmt: skip
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    if version_json:
        (root / "version.json").write_text(
            json.dumps({"cuda": {"name": "CUDA SDK", "version": version_json}})
        )
    if version_txt:
        (root / "version.txt").write_text(f"CUDA Version {version_txt}\n")
    if cudart:
        (root / "include" / "cuda_runtime_api.h").write_text(f"/* x */\n#define CUDART_VERSION  {cudart}\n")
    return root


def test_version_json(tmp_path: Path) -> None:
    home = toolkit(tmp_path / "cuda-12.4", version_json="12.4.131")
    info = cuda.probe_toolkit([], env={"CUDA_HOME": str(home), "PATH": ""})
    assert info.version == "12.4" and info.home == str(home) and info.nvcc is None


def test_version_txt_and_header(tmp_path: Path) -> None:
    assert cuda.toolkit_version_from_files(toolkit(tmp_path / "a", version_txt="10.2.89")) == "10.2"
    assert cuda.toolkit_version_from_files(toolkit(tmp_path / "b", cudart=13000)) == "13.0"
    assert cuda.toolkit_version_from_files(toolkit(tmp_path / "c", cudart=12080)) == "12.8"


def test_nvcc_on_path_finds_its_toolkit(tmp_path: Path) -> None:
    home = toolkit(tmp_path / "cuda-11.8", version_json="11.8.89")
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 11.8, V11.8.89'\n")
    nvcc.chmod(0o755)
    info = cuda.probe_toolkit([], env={"PATH": str(home / "bin")})
    assert info.version == "11.8" and info.nvcc == str(nvcc)


def test_nvcc_only(tmp_path: Path) -> None:
    # An nvcc with no toolkit layout around it: its --version is the last resort.
    bindir = tmp_path / "odd" / "bin"
    bindir.mkdir(parents=True)
    nvcc = bindir / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.6, V12.6.77'\n")
    nvcc.chmod(0o755)
    info = cuda.probe_toolkit([], env={"PATH": str(bindir), "CUDA_HOME": str(tmp_path / "none")})
    if info.home is None:  # no /usr/local/cuda on this machine either
        assert info.version == "12.6"
    assert info.nvcc == str(nvcc)


def test_cudnn_header_and_library(tmp_path: Path) -> None:
    inc = tmp_path / "include"
    inc.mkdir()
    (inc / "cudnn_version.h").write_text(
        "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 1\n#define CUDNN_PATCHLEVEL 0\n"
    )
    info = cuda.probe_cudnn([], toolkit_home=str(tmp_path), env={})
    assert info.version == "9.1.0" and info.path == str(inc / "cudnn_version.h")
    lib = tmp_path / "libs"
    lib.mkdir()
    (lib / "libcudnn.so.8").write_text("")
    (lib / "libcudnn.so.8.9.7").write_text("")
    info = cuda.probe_cudnn([], toolkit_home=None, env={"LD_LIBRARY_PATH": str(lib)})
    if not any(
        Path(d, "cudnn_version.h").exists() for d in ("/usr/include", "/usr/include/x86_64-linux-gnu")
    ):
        assert (info.version, info.path) == ("8.9.7", str(lib / "libcudnn.so.8.9.7"))


def test_cudart_on_library_path(tmp_path: Path) -> None:
    a = toolkit(tmp_path / "cuda-12.1", version_json="12.1.105") / "lib64"
    a.mkdir()
    (a / "libcudart.so.12.1.105").write_text("")
    (a / "libcudart.so.12").symlink_to("libcudart.so.12.1.105")
    b = tmp_path / "cuda-11.8" / "lib64"
    b.mkdir(parents=True)
    (b / "libcudart.so.11.0").write_text("")
    found = cuda.cudart_on_library_path({"LD_LIBRARY_PATH": f"{a}:{b}:/nonexistent"})
    assert found == [(str(a), "12", "12.1.105"), (str(b), "11", "11.0")]
    assert cuda.cudart_on_library_path({}) == []


def test_real_toolkit_probe_does_not_raise() -> None:
    notes: list[str] = []
    info = cuda.probe_toolkit(notes)
    assert info.version is None or info.version.count(".") == 1
    cuda.probe_cudnn(notes, toolkit_home=info.home)
