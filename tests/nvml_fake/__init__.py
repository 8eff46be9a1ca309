"""A fake NVIDIA driver library (libnvidia-ml.so.1) built from fake_nvml.c with the system C compiler.

`FakeNvml(tmp)` compiles the library once per set of left-out entry points (an older driver lacks some) and
writes scenario files; `env()` gives the environment that makes the real nvidia-ml-py, inside fwsetup's NVML
child process, load it. No Python-level fake anywhere: what pynvml sends through ctypes is what C receives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIBRARY = "libnvidia-ml.so.1"

# NVML return codes (nvml.h) the scenarios use.
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18


def compiler() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


class FakeNvml:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[tuple[str, ...], Path] = {}
        root.mkdir(parents=True, exist_ok=True)

    def build(self, omit: Iterable[str] = ()) -> Path:
        """The folder holding a libnvidia-ml.so.1 without the entry points named in `omit`."""
        key = tuple(sorted(omit))
        if key not in self._built:
            cc = compiler()
            if cc is None:
                raise RuntimeError("no C compiler")
            folder = self.root / ("lib-" + ("-".join(key) or "full"))
            folder.mkdir(parents=True, exist_ok=True)
            cmd = [cc, "-shared", "-fPIC", "-O1", "-Wall", "-o", str(folder / LIBRARY), str(SOURCE)]
            cmd += [f"-DOMIT_{name}" for name in key]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            self._built[key] = folder
        return self._built[key]

    def scenario(self, name: str, settings: Mapping[str, object]) -> Path:
        path = self.root / f"{name}.scenario"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path

    def env(
        self, scenario: Path, *, omit: Iterable[str] = (), base: Mapping[str, str] | None = None, **extra: str
    ) -> dict[str, str]:
        """os.environ without FWSETUP_*/DOCKER_*/LD_LIBRARY_PATH/CUDA_VISIBLE_DEVICES, plus the fake library and
        its scenario (the scenario is the whole machine: no GPU hidden unless a test says so)."""
        base = os.environ if base is None else base
        drop = ("FWSETUP_", "DOCKER_", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
        env = {k: v for k, v in base.items() if not k.startswith(drop)}
        env.update(
            LD_LIBRARY_PATH=str(self.build(omit)),
            FAKE_NVML_SCENARIO=str(scenario),
            FAKE_NVML_LOG=str(scenario.with_suffix(".calls")),
            COLUMNS="200",
        )
        env.update(extra)
        return env

    @staticmethod
    def calls(scenario: Path) -> list[str]:
        log = scenario.with_suffix(".calls")
        return log.read_text().split() if log.exists() else []


def gpu(index: int, name: str, *, memory: int, cc: str, pci: str, **more: object) -> dict[str, object]:
    """One GPU's scenario lines; its UUID derives from the index, so tests can name it."""
    out: dict[str, object] = {
        f"gpu{index}.name": name,
        f"gpu{index}.uuid": uuid(index),
        f"gpu{index}.memory": memory,
        f"gpu{index}.cc": cc,
        f"gpu{index}.pci": pci,
    }
    out.update({f"gpu{index}.{k}": v for k, v in more.items()})
    return out


def uuid(index: int) -> str:
    return f"GPU-{index:08x}-fa4e-4e5d-8c3b-00000000{index:04x}"
