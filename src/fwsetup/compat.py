"""Compatibility facts: which NVIDIA driver runs which CUDA build, which GPU runs which kernels.

The facts are data (data/cuda-drivers.toml, each with its source); this module reads them once and answers
the planner's questions. Rules (NVIDIA CUDA Compatibility guide):
- A build for CUDA X.Y runs with full features on a driver >= the toolkit's own driver of X.Y, and under
  minor-version compatibility (MVC) on any driver >= the MVC minimum of major X (11.x: 450.80.02,
  12.x: 525.60.13, 13.x: 580). Newer drivers always run older-CUDA builds.
- SASS built for sm_XY runs on GPUs of the same major X with minor >= Y; PTX for compute_XY is compiled by
  the driver for any GPU with compute capability >= X.Y.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from fwsetup.errors import RecipeError
from fwsetup.recipes.load import read_toml
from fwsetup.resources import compat_dir

if TYPE_CHECKING:
    from packaging.version import Version

    from fwsetup.profile import GPU, HostProfile, MigDevice

CUDA_DRIVERS_FILE: Final = "cuda-drivers.toml"
COMPUTE_CAPABILITIES_FILE: Final = "compute-capabilities.toml"
CUDNN_FILE: Final = "cudnn.toml"


@dataclass(frozen=True)
class CudnnFloor:
    """cuDNN releases `cudnn` (a PEP 440 range) support GPUs of compute capability >= `min_cc`."""

    cudnn: str
    min_cc: str
    source: str = ""


@dataclass(frozen=True)
class CudnnBundle:
    """Releases `versions` (PEP 440) of `framework`, variants `variants`, bring cuDNN `cudnn`."""

    framework: str
    versions: str
    variants: tuple[str, ...]
    cudnn: str
    source: str = ""


@dataclass(frozen=True)
class DriverMin:
    linux: str | None = None
    windows: str | None = None  # None: any Windows driver of the Linux minimum's branch (e.g. "580")

    def for_system(self, windows: bool) -> str | None:
        if not windows:
            return self.linux
        # Windows drivers number their own minors (560.76 vs 560.28.03); where the data gives no Windows
        # figure (CUDA 13.x: "N/A" in the release notes) the branch number is the requirement.
        return self.windows or (self.linux.split(".")[0] if self.linux else None)


@dataclass(frozen=True)
class CompatData:
    # "12.6" -> the driver the CUDA 12.6 toolkit (GA) needs for full features
    toolkit: Mapping[str, DriverMin] = field(default_factory=dict)
    # 12 -> the lowest driver that runs any 12.x build (minor-version compatibility)
    mvc: Mapping[int, DriverMin] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    # "8.6" -> "Ampere" (data/compute-capabilities.toml)
    architectures: Mapping[str, str] = field(default_factory=dict)
    # 13 -> "7.5": the lowest compute capability CUDA 13 still builds for
    toolkit_min_cc: Mapping[int, str] = field(default_factory=dict)
    # data/cudnn.toml: the GPUs each cuDNN release supports, and the cuDNN each framework build brings
    cudnn_floors: tuple[CudnnFloor, ...] = ()
    cudnn_bundles: tuple[CudnnBundle, ...] = ()

    def arch_name(self, cc: str | None) -> str | None:
        return self.architectures.get(cc or "")

    def min_driver(self, cuda: str, *, windows: bool = False) -> str | None:
        """The lowest driver that runs a build made with CUDA `cuda` (MVC where NVIDIA defines it)."""
        major = _major(cuda)
        if major is not None and major in self.mvc:
            return self.mvc[major].for_system(windows)
        row = self.toolkit.get(_major_minor(cuda))
        return row.for_system(windows) if row else None

    def full_driver(self, cuda: str, *, windows: bool = False) -> str | None:
        """The driver the CUDA `cuda` toolkit itself needs (all features, no MVC caveats)."""
        row = self.toolkit.get(_major_minor(cuda))
        return row.for_system(windows) if row else None

    def driver_cuda(self, driver: str, *, windows: bool = False) -> str | None:
        """The newest CUDA whose toolkit driver is <= `driver` (what nvidia-smi calls "CUDA Version")."""
        best: tuple[int, int] | None = None
        d = parse_driver(driver)
        if d is None:
            return None
        for cuda, row in self.toolkit.items():
            need = row.for_system(windows)
            key = cuda_key(cuda)
            need_v = parse_driver(need) if need else None
            if key and need_v is not None and need_v <= d:
                best = max(best, key) if best else key
        return f"{best[0]}.{best[1]}" if best else None

    def min_cc(self, cuda: str | None) -> str | None:
        """The lowest compute capability the CUDA `cuda` toolkit still builds for ("13.0" -> "7.5")."""
        major = _major(cuda or "")
        return self.toolkit_min_cc.get(major) if major is not None else None

    def build_cudnn(self, framework: str, version: str, variant: str) -> CudnnBundle | None:
        """The cuDNN a framework build brings (data/cudnn.toml); None when it is not recorded."""
        for row in self.cudnn_bundles:
            if row.framework == framework and variant in row.variants and _in_range(version, row.versions):
                return row
        return None

    def cudnn_floor(self, cudnn: str | None) -> CudnnFloor | None:
        """The lowest compute capability cuDNN `cudnn` supports (its support matrix); None when unknown."""
        if not cudnn:
            return None
        return next((row for row in self.cudnn_floors if _in_range(cudnn, row.cudnn)), None)


def _in_range(version: str, spec: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) in SpecifierSet(spec)
    except (InvalidSpecifier, InvalidVersion):
        return False


def _major(cuda: str) -> int | None:
    m = re.match(r"^(\d+)", cuda)
    return int(m.group(1)) if m else None


def _major_minor(cuda: str) -> str:
    return ".".join(cuda.split(".")[:2])


def cuda_key(cuda: str | None) -> tuple[int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)", cuda or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


@cache
def parse_driver(text: str) -> Version | None:
    """A driver version ("580.65.06", "560.94") as a comparable packaging Version; None if unreadable."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text.strip())
    except (InvalidVersion, AttributeError):
        return None


def driver_at_least(driver: str | None, minimum: str | None) -> bool | None:
    """True/False, or None when either side is unknown."""
    if driver is None or minimum is None:
        return None
    d, m = parse_driver(driver), parse_driver(minimum)
    if d is None or m is None:
        return None
    return bool(d >= m)


# -- the driver verdict: one rule for the planner and for doctor -----------------------------------------

DriverHow = Literal["full", "minor-version compatibility", "too old", "unknown"]


@dataclass(frozen=True, kw_only=True)
class DriverVerdict:
    ok: bool | None  # None: it cannot be told (no driver, or no minimum known)
    how: DriverHow
    minimum: str | None  # the lowest driver that runs the build
    full: str | None = None  # the driver of the build's CUDA toolkit: every feature, no MVC limits


def uses_windows_driver(host: HostProfile) -> bool:
    """Windows, and WSL2 (which reports the Windows host's driver), number drivers in the Windows column."""
    return host.os.system == "windows" or bool(host.os.wsl)


def driver_verdict(
    host: HostProfile,
    cuda: str | None,
    *,
    recipe_min: DriverMin | None = None,
    data: CompatData | None = None,
) -> DriverVerdict:
    """Can the NVIDIA driver of `host` run a build made with CUDA `cuda`?

    The minimum is the recipe's own figure (`recipe_min`: a build's min_driver / min_driver_windows) where it
    gives one, else the minor-version-compatibility minimum of the CUDA major (data/cuda-drivers.toml), in
    the Windows column on Windows and WSL2. The driver version decides; where it is unknown, the driver's
    own CUDA version does (a driver runs every build up to its CUDA, and newer minors of the same major)."""
    data = data if data is not None else load_compat()
    windows = uses_windows_driver(host)
    minimum = recipe_min.for_system(windows) if recipe_min else None
    if minimum is None and cuda:
        minimum = data.min_driver(cuda, windows=windows)
    full = data.full_driver(cuda, windows=windows) if cuda else None
    nv = host.nvidia
    need, have = cuda_key(cuda), cuda_key(nv.cuda_driver_version)
    ok = driver_at_least(nv.driver_version, minimum)
    if ok is False:
        return DriverVerdict(ok=False, how="too old", minimum=minimum, full=full)
    if ok is True:
        native = driver_at_least(nv.driver_version, full)
        if native is None and need and have:
            native = have >= need
        how: DriverHow = "full" if native else "minor-version compatibility"
        return DriverVerdict(ok=True, how=how, minimum=minimum, full=full)
    if parse_driver(nv.driver_version or "") is None and need and have:
        if have >= need:
            return DriverVerdict(ok=True, how="full", minimum=minimum, full=full)
        if have[0] == need[0]:
            return DriverVerdict(ok=True, how="minor-version compatibility", minimum=minimum, full=full)
        return DriverVerdict(ok=False, how="too old", minimum=minimum, full=full)
    return DriverVerdict(ok=None, how="unknown", minimum=minimum, full=full)


# -- compute capabilities ------------------------------------------------------------------------------


def parse_cc(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.match(r"^\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cc_runs(cc: str, sass: Iterable[str], ptx: Iterable[str]) -> bool | None:
    """Whether a GPU of compute capability `cc` runs kernels built as `sass` (sm_XY) / `ptx` (compute_XY).

    None when it cannot be told (unreadable capability, or the build lists neither)."""
    gpu = parse_cc(cc)
    sass_l, ptx_l = [parse_cc(s) for s in sass], [parse_cc(p) for p in ptx]
    if gpu is None or not (sass_l or ptx_l):
        return None
    if any(s is not None and s[0] == gpu[0] and s[1] <= gpu[1] for s in sass_l):
        return True
    return any(p is not None and p <= gpu for p in ptx_l)


def cc_supported(cuda: str | None, cc: str | None, *, data: CompatData | None = None) -> bool | None:
    """Whether the CUDA `cuda` toolkit still builds for a GPU of compute capability `cc` (CUDA 13 dropped
    everything below 7.5). None when it cannot be told."""
    data = data if data is not None else load_compat()
    floor, gpu = parse_cc(data.min_cc(cuda)), parse_cc(cc)
    if floor is None or gpu is None:
        return None
    return gpu >= floor


def cudnn_supports(cudnn: str | None, cc: str | None, *, data: CompatData | None = None) -> bool | None:
    """Whether cuDNN `cudnn` supports a GPU of compute capability `cc` (data/cudnn.toml: NVIDIA's cuDNN
    support matrix per release: cuDNN 8.x from 3.5, 9.0-9.10 from 5.0, 9.11 on from 7.5). None when it
    cannot be told."""
    data = data if data is not None else load_compat()
    row = data.cudnn_floor(cudnn)
    floor, gpu = parse_cc(row.min_cc if row else None), parse_cc(cc)
    if floor is None or gpu is None:
        return None
    return gpu >= floor


def cc_text(sass: Iterable[str], ptx: Iterable[str]) -> str:
    parts = [f"sm_{s.replace('.', '')}" for s in sass] + [f"compute_{p.replace('.', '')}" for p in ptx]
    return ", ".join(parts) if parts else "none listed"


# -- reading data/cuda-drivers.toml ---------------------------------------------------------------------


def _driver_text(value: Any) -> str | None:
    # Values may be written ">=560.28.03", "560.28.03", or a note ("N/A (...)"): keep the version only.
    if not isinstance(value, str):
        return None
    m = re.search(r"\d+(\.\d+)*", value)
    return m.group(0) if m and not value.strip().upper().startswith("N/A") else None


def _lower(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is None:
        return new
    a, b = parse_driver(current), parse_driver(new)
    return new if a is not None and b is not None and b < a else current


def compat_from_data(raw: Mapping[str, Any], *, source: str = CUDA_DRIVERS_FILE) -> CompatData:
    """Build CompatData from the TOML data (pure)."""
    toolkit: dict[str, DriverMin] = {}
    rows = raw.get("toolkit") or raw.get("cuda") or []
    if not isinstance(rows, list):
        msg = f"{source}: toolkit: expected an array of tables ([[toolkit]]), got {type(rows).__name__}."
        raise RecipeError(msg)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            msg = f"{source}: toolkit[{i}]: expected a table."
            raise RecipeError(msg)
        cuda = row.get("cuda") or row.get("version") or row.get("major_minor")
        if not isinstance(cuda, str) or cuda_key(cuda) is None:
            msg = f"{source}: toolkit[{i}].cuda: expected a CUDA version such as '12.6', got {cuda!r}."
            raise RecipeError(msg)
        key = _major_minor(cuda)
        linux = _driver_text(row.get("linux") or row.get("min_driver_linux") or row.get("linux_x86_64_min"))
        windows = _driver_text(
            row.get("windows") or row.get("min_driver_windows") or row.get("windows_x86_64_min")
        )
        prev = toolkit.get(key, DriverMin())
        # Several rows per minor release (GA, updates): the GA (lowest) driver is what a build needs.
        toolkit[key] = DriverMin(linux=_lower(prev.linux, linux), windows=_lower(prev.windows, windows))
    mvc: dict[int, DriverMin] = {}
    mvc_raw = raw.get("minor_version_compatibility") or raw.get("mvc") or {}
    if isinstance(mvc_raw, dict):
        items: Iterable[tuple[Any, Any]] = mvc_raw.items()
    elif isinstance(mvc_raw, list):
        items = ((r.get("major"), r) for r in mvc_raw if isinstance(r, dict))
    else:
        items = ()
    for major, row in items:
        m = re.match(r"^(\d+)", str(major))
        if not m or not isinstance(row, dict):
            msg = f"{source}: minor_version_compatibility.{major}: expected a table with `linux` / `windows`."
            raise RecipeError(msg)
        linux = _driver_text(row.get("linux") or row.get("min_driver_linux") or row.get("min_driver"))
        windows = _driver_text(row.get("windows") or row.get("min_driver_windows"))
        mvc[int(m.group(1))] = DriverMin(linux=linux, windows=windows)
    sources = raw.get("sources") or raw.get("source") or ()
    if isinstance(sources, str):
        sources = (sources,)
    return CompatData(toolkit=toolkit, mvc=mvc, sources=tuple(str(s) for s in sources))


def read_compat(directory: str | Path) -> CompatData:
    import dataclasses

    path = Path(directory) / CUDA_DRIVERS_FILE
    data = compat_from_data(read_toml(path), source=str(path)) if path.is_file() else CompatData()
    cc_path = Path(directory) / COMPUTE_CAPABILITIES_FILE
    if cc_path.is_file():
        raw = read_toml(cc_path)
        names = raw.get("architectures") or {}
        mins = raw.get("toolkit_min_compute_capability") or {}
        data = dataclasses.replace(
            data,
            architectures={str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {},
            toolkit_min_cc=(
                {int(k): str(v) for k, v in mins.items() if str(k).isdigit()}
                if isinstance(mins, dict)
                else {}
            ),
        )
    dnn_path = Path(directory) / CUDNN_FILE
    if dnn_path.is_file():
        data = dataclasses.replace(data, **_cudnn_from_data(read_toml(dnn_path), source=str(dnn_path)))
    return data


def _cudnn_from_data(raw: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """data/cudnn.toml's [[floor]] and [[bundled]] rows (pure); a malformed row is a RecipeError."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    def text(row: Mapping[str, Any], key: str, where: str) -> str:
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            msg = f"{source}: {where}.{key}: expected a string, got {value!r}."
            raise RecipeError(msg)
        return value.strip()

    def spec(row: Mapping[str, Any], key: str, where: str) -> str:
        value = text(row, key, where)
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            msg = f"{source}: {where}.{key}: expected a PEP 440 range such as '>=9.0,<9.11', got {value!r}."
            raise RecipeError(msg) from None
        return value

    floors, bundles = [], []
    for i, row in enumerate(raw.get("floor") or []):
        where = f"floor[{i}]"
        cc = text(row, "min_compute_capability", where)
        if parse_cc(cc) is None:
            msg = f"{source}: {where}.min_compute_capability: expected a compute capability such as '5.0', got {cc!r}."
            raise RecipeError(msg)
        floors.append(
            CudnnFloor(cudnn=spec(row, "cudnn", where), min_cc=cc, source=str(row.get("source", "")))
        )
    for i, row in enumerate(raw.get("bundled") or []):
        where = f"bundled[{i}]"
        variants = row.get("variants")
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            msg = f"{source}: {where}.variants: expected a list of variant names such as ['cu118']."
            raise RecipeError(msg)
        bundles.append(
            CudnnBundle(
                framework=text(row, "framework", where),
                versions=spec(row, "versions", where),
                variants=tuple(variants),
                cudnn=text(row, "cudnn", where),
                source=str(row.get("source", "")),
            )
        )
    return {"cudnn_floors": tuple(floors), "cudnn_bundles": tuple(bundles)}


@cache
def load_compat() -> CompatData:
    """The shipped compatibility data (cached)."""
    return read_compat(compat_dir())


# -- which GPUs a CUDA process sees: CUDA_VISIBLE_DEVICES and MIG (one rule: plan, doctor, fleet) ---------


@dataclass(frozen=True)
class CudaDevices:
    """The GPUs a CUDA process started on the host sees (CUDA programming guide, CUDA_VISIBLE_DEVICES: indices,
    GPU-<uuid> prefixes, MIG-<uuid>; the list ends at the first entry that names no device; "" hides all) and
    their MIG instances (MIG user guide: a GPU in MIG mode runs CUDA work on its MIG devices only, one per
    process)."""

    gpus: tuple[GPU, ...] = ()  # visible and able to run CUDA work, in the order CUDA enumerates them
    hidden: tuple[GPU, ...] = ()  # answered, but CUDA_VISIBLE_DEVICES leaves them out
    # GPU index -> the MIG devices of it the process may use (all of them unless CUDA_VISIBLE_DEVICES names some)
    mig: Mapping[int, tuple[MigDevice, ...]] = field(default_factory=dict)
    no_instance: tuple[GPU, ...] = ()  # in MIG mode with no MIG device created: no CUDA device at all
    setting: str | None = None  # CUDA_VISIBLE_DEVICES (None: not set)
    unmatched: tuple[str, ...] = ()  # entries that name no GPU here (CUDA stops reading at the first)
    by_index: bool = (
        False  # entries were indices: CUDA's order (CUDA_DEVICE_ORDER) decides which GPU they mean
    )
    pci_order: bool = False  # CUDA_DEVICE_ORDER=PCI_BUS_ID: indices are NVML's (nvidia-smi's)


def usable_gpus(host: HostProfile) -> tuple[GPU, ...]:
    """GPUs a framework started on `host` can train on (cuda_devices, the one rule): NVML works, the GPU
    answered, CUDA_VISIBLE_DEVICES exposes it, and in MIG mode it has a MIG instance (or its instances were
    not read)."""
    return cuda_devices(host).gpus


def cuda_devices(host: HostProfile, *, container: bool = False) -> CudaDevices:
    """Which GPUs a job started on `host` uses; `container`: in a container started with `--gpus all`, where
    the host's CUDA_VISIBLE_DEVICES does not reach."""
    nv = host.nvidia
    if nv.nvml != "ok":
        return CudaDevices()
    answered = [g for g in nv.gpus if g.error is None]
    setting = None if container else nv.cuda_visible_devices
    pci_order = (nv.cuda_device_order or "").strip().upper() == "PCI_BUS_ID"
    chosen: list[GPU] = []
    mig_pick: dict[int, list[MigDevice]] = {}
    unmatched: list[str] = []
    by_index = False
    if setting is None:
        chosen = list(answered)
    else:
        for raw in setting.split(","):
            entry = raw.strip()
            if not entry:
                continue
            found = _match_visible(entry, answered, nv.gpus)
            if found is None:
                unmatched.append(entry)
                break  # CUDA: only the devices before an invalid entry are visible
            gpu, instance, was_index = found
            by_index = by_index or was_index
            if gpu not in chosen:
                chosen.append(gpu)
            if instance is not None:
                mig_pick.setdefault(gpu.index, []).append(instance)
    gpus: list[GPU] = []
    mig: dict[int, tuple[MigDevice, ...]] = {}
    no_instance: list[GPU] = []
    for g in chosen:
        if g.mig:
            instances = tuple(mig_pick.get(g.index) or (g.mig_devices or ()))
            if g.mig_devices is not None and not instances:
                no_instance.append(g)
                continue
            mig[g.index] = instances
        gpus.append(g)
    return CudaDevices(
        gpus=tuple(gpus),
        hidden=tuple(g for g in answered if g not in chosen),
        mig=mig,
        no_instance=tuple(no_instance),
        setting=setting,
        unmatched=tuple(unmatched),
        by_index=by_index,
        pci_order=pci_order,
    )


def _match_visible(
    entry: str, answered: Sequence[GPU], every: Sequence[GPU]
) -> tuple[GPU, MigDevice | None, bool] | None:
    """The GPU (and MIG device) one CUDA_VISIBLE_DEVICES entry names; None when it names none."""
    if re.fullmatch(r"-?\d+", entry):
        i = int(entry)
        gpu = next((g for g in every if g.index == i), None) if i >= 0 else None
        return (gpu, None, True) if gpu is not None and gpu in answered else None
    low = entry.lower()
    if low.startswith("mig-"):
        for g in answered:
            for d in g.mig_devices or ():
                if d.uuid and d.uuid.lower() == low:
                    return g, d, False
        # MIG-GPU-<uuid>/<gi>/<ci> (the R450 form) names its parent GPU
        parent = low.removeprefix("mig-").split("/")[0]
        if parent.startswith("gpu-"):
            owner = _by_uuid_prefix(parent, answered)
            if owner is not None and owner.mig:
                return owner, None, False
        # A MIG device of a GPU whose instances were not read: one of those GPUs, which cannot be told
        unread = [g for g in answered if g.mig and g.mig_devices is None]
        return (unread[0], None, False) if len(unread) == 1 else None
    if low.startswith("gpu-"):
        named = _by_uuid_prefix(low, answered)
        return (named, None, False) if named is not None else None
    return None


def _by_uuid_prefix(prefix: str, gpus: Sequence[GPU]) -> GPU | None:
    # CUDA takes any prefix of a GPU's UUID that names one GPU only
    hits = [g for g in gpus if g.uuid and g.uuid.lower().startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


def visible_devices_value(devices: CudaDevices, keep: Sequence[GPU]) -> str:
    """The CUDA_VISIBLE_DEVICES value that exposes `keep` only: GPU UUIDs (unambiguous, unlike indices, which
    follow CUDA_DEVICE_ORDER), a MIG GPU as its first MIG device; an index where the UUID is unknown."""
    parts = []
    for g in keep:
        instances = devices.mig.get(g.index) or ()
        if g.mig and instances and instances[0].uuid:
            parts.append(instances[0].uuid)
        elif g.mig:
            parts.append("MIG-<uuid>")
        else:
            parts.append(g.uuid or str(g.index))
    return ",".join(parts)
