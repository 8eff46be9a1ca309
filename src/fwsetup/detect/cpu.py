"""CPU: architecture, model, cores, the instruction sets frameworks care about, and the microarchitecture.

On Linux everything comes from /proc/cpuinfo (a file read, ~1 ms). archspec (about 50 ms to import) is used
only where the kernel's flags do not give the answer: Arm core names and macOS/Windows.
"""

from __future__ import annotations

import os
import platform

from fwsetup.profile import CPUInfo

# Instruction sets frameworks build for or require (TensorFlow wheels need AVX; x86-64-v3 builds need AVX2
# and FMA; oneDNN picks AVX-512/AMX kernels; Arm builds use NEON, SVE and the dot-product extensions).
X86_FEATURES = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip
# /proc/cpuinfo "Features" names on aarch64 -> the names people use.
ARM_FEATURES = {"asimd": "neon", "asimddp": "dotprod", "sve": "sve", "sve2": "sve2", "bf16": "bf16",
                "i8mm": "i8mm", "fphp": "fp16", "asimdhp": "fp16"}  # fmt: skip

# x86-64 psABI micro-architecture levels (https://gitlab.com/x86-psABIs/x86-64-ABI), in /proc/cpuinfo names.
_X86_LEVELS = (
    ("x86_64_v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ("x86_64_v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    ("x86_64_v2", {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
)

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def normalize_arch(machine: str, system: str) -> str | None:
    m = machine.lower()
    if not m:
        return None
    if system == "darwin" and m in ("arm64", "aarch64"):
        return "arm64"  # DESIGN.md: Apple silicon is "arm64", Linux on Arm "aarch64"
    return _ARCH_ALIASES.get(m, m)


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """(model name, raw flags) from /proc/cpuinfo; only the first processor block is read."""
    model: str | None = None
    flags: set[str] = set()
    for line in text.splitlines():
        if not line.strip():
            if flags:
                break
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features"):
            flags = set(value.split())
    return model, flags


def x86_level(flags: set[str]) -> str | None:
    if not flags:
        return None
    level = "x86_64"
    for name, needed in reversed(_X86_LEVELS):  # v2, then v3, then v4: each level includes the one below
        if not needed <= flags:
            break
        level = name
    return level


def select_features(arch: str | None, flags: set[str]) -> tuple[str, ...]:
    if arch == "x86_64":
        return tuple(f for f in X86_FEATURES if f in flags)
    if arch in ("aarch64", "arm64"):
        return tuple(sorted({ARM_FEATURES[f] for f in flags if f in ARM_FEATURES}))
    return ()


def _archspec(notes: list[str]) -> tuple[str | None, set[str]]:
    try:
        import archspec.cpu

        host = archspec.cpu.host()
        return host.name, set(host.features)
    except Exception as exc:  # noqa: BLE001 - fail soft: archspec raises on unknown hardware
        notes.append(f"cpu: archspec: {exc}")
        return None, set()


def _cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except (AttributeError, OSError):
        return os.cpu_count()


def probe_cpu(notes: list[str], *, system: str | None = None) -> CPUInfo:
    system = system or platform.system().lower()
    arch = normalize_arch(platform.machine(), system)
    model: str | None = None
    flags: set[str] = set()
    microarch: str | None = None
    if system == "linux":
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                model, flags = parse_cpuinfo(f.read())
        except OSError as exc:
            notes.append(f"cpu: /proc/cpuinfo: {exc.strerror or exc}")
        if arch == "x86_64":
            microarch = x86_level(flags)
    if microarch is None and (arch != "x86_64" or not flags):
        # Arm core names (neoverse_v2, a64fx, m1 …) and non-Linux systems: archspec knows them.
        name, spec_flags = _archspec(notes)
        microarch = name
        flags = flags or spec_flags
        if arch == "arm64":
            flags.add("asimd")  # every Apple silicon core has NEON
    if model is None:
        model = platform.processor() or None
    return CPUInfo(
        arch=arch, model=model, cores=_cores(), features=select_features(arch, flags), microarch=microarch
    )
