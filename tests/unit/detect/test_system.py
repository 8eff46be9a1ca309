"""OS, CPU, memory, disk and Python probes: parsers on fixed text, and the real probes on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwsetup.detect import cpu, system
from fwsetup.detect.python import probe_python

UBUNTU = """NAME="Ubuntu"
VERSION_ID="22.04"
ID=ubuntu
ID_LIKE=debian
# comment
PRETTY_NAME='Ubuntu 22.04.4 LTS'
"""

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 ssse3 cx16 lahf_lm popcnt pni sse4_1 sse4_2 avx avx2 bmi1 bmi2 f16c fma abm movbe xsave avx512f avx512bw avx512cd avx512dq avx512vl amx_tile

processor\t: 1
model name\t: other
flags\t\t: fpu
"""

GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


def test_os_release() -> None:
    info = system.parse_os_release(UBUNTU)
    assert (
        info["ID"] == "ubuntu"
        and info["VERSION_ID"] == "22.04"
        and info["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"
    )


@pytest.mark.parametrize(
    ("release", "proc", "wsl"),
    [
        ("5.15.153.1-microsoft-standard-WSL2", None, True),
        ("4.4.0-19041-Microsoft", "Linux version 4.4.0-19041-Microsoft", True),
        ("6.8.0-60-generic", "Linux version 6.8.0-60-generic (buildd@lcy02)", False),
    ],
)
def test_wsl(release: str, proc: str | None, wsl: bool) -> None:
    assert system.is_wsl(release, proc) is wsl


def test_cpuinfo_x86() -> None:
    model, flags = cpu.parse_cpuinfo(X86)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert "avx512f" in flags and "fpu" in flags
    assert cpu.x86_level(flags) == "x86_64_v4"
    assert cpu.select_features("x86_64", flags) == (
        "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512cd", "avx512dq",
        "avx512vl", "amx_tile",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("drop", "level"),
    [(set(), "x86_64_v4"), ({"avx512vl"}, "x86_64_v3"), ({"avx2"}, "x86_64_v2"), ({"popcnt"}, "x86_64")],
)
def test_x86_levels(drop: set[str], level: str) -> None:
    _, flags = cpu.parse_cpuinfo(X86)
    assert cpu.x86_level(flags - drop) == level


def test_x86_level_needs_every_lower_level() -> None:
    # AVX-512 without SSE4.2 is not v4 (nor v2).
    _, flags = cpu.parse_cpuinfo(X86)
    assert cpu.x86_level(flags - {"sse4_2"}) == "x86_64"


def test_cpuinfo_arm() -> None:
    _model, flags = cpu.parse_cpuinfo(GRAVITON)
    assert cpu.select_features("aarch64", flags) == ("bf16", "dotprod", "fp16", "i8mm", "neon", "sve", "sve2")


@pytest.mark.parametrize(
    ("machine", "system_", "arch"),
    [("x86_64", "linux", "x86_64"), ("AMD64", "windows", "x86_64"), ("aarch64", "linux", "aarch64"),
     ("arm64", "darwin", "arm64"), ("arm64", "linux", "aarch64")],
)  # fmt: skip
def test_arch_names(machine: str, system_: str, arch: str) -> None:
    assert cpu.normalize_arch(machine, system_) == arch


def test_disk_probe_walks_up_to_an_existing_folder(tmp_path: Path) -> None:
    free, where = system.probe_disk(tmp_path / "not" / "yet" / "there", [])
    assert where == str(tmp_path) and free and free > 0


def test_real_probes_on_this_machine() -> None:
    notes: list[str] = []
    os_info = system.probe_os(notes)
    assert os_info.system in ("linux", "darwin", "windows")
    c = cpu.probe_cpu(notes)
    assert c.arch and c.cores and c.cores >= 1
    if c.arch == "x86_64" and os_info.system == "linux":
        assert c.microarch and c.microarch.startswith("x86_64")
    assert (system.probe_memory(notes) or 0) > 2**28
    py = probe_python(notes)
    assert py.version and py.version.count(".") == 2
    assert notes == []
