"""NVIDIA Jetson: detection (detect/jetson.py, read from a fixture root through FWSETUP_JETSON_ROOT) and plans
(a Jetson gets NVIDIA's JetPack build, never a server aarch64 "SBSA" CUDA wheel).

Sources: the /etc/nv_tegra_release line format is the one NVIDIA's jetson-containers parse
(jetson_containers/l4t_version.py, which quotes "# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD:
t186ref, EABI: aarch64, DATE: Wed Mar 15 07:54:12 UTC 2023"); L4T R35.4.1 = JetPack 5.1.2 and the Orin's
compute capability 8.7 from NVIDIA's JetPack archive and CUDA GPUs pages (data/jetson.toml); the NGC l4t-pytorch
container r35.2.1-pth2.0-py3 for JetPack 5.1 (recipes/pytorch.toml, Jetson block).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fwsetup.detect import detect_host
from fwsetup.detect.jetson import load_tables, load_wheels, parse_release, probe_jetson
from fwsetup.errors import RecipeError
from fwsetup.ops.doctor_host import check_host
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.profile import HostProfile, JetsonInfo, load
from fwsetup.recipes.load import load_recipe_file, load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
R35 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
R36 = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n"


def tree(root: Path, *, release: str | None = R35, model: str | None = "NVIDIA Jetson AGX Orin Developer Kit",
         kernel: str = "5.10.120-tegra") -> Path:  # fmt: skip
    if release is not None:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/nv_tegra_release").write_text(
            release + "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
        )
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
        (root / "proc/device-tree/model").write_bytes(
            model.encode() + b"\x00"
        )  # NUL-terminated, as the kernel has it
    (root / "proc/sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/osrelease").write_text(kernel + "\n")
    return root


def test_parse_release_lines() -> None:
    assert parse_release(R35) == ("35.4.1", "t186ref")
    assert parse_release(R36) == ("36.4.0", "generic")
    assert parse_release("# R32 (release), REVISION: 7, GCID: 1, BOARD: t210ref, EABI: aarch64") == (
        "32.7.0",
        "t210ref",
    )
    assert parse_release("Ubuntu 22.04\n") == (None, None)
    assert parse_release("") == (None, None)


def test_orin_on_jetpack_512_from_a_fixture_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_JETSON_ROOT", str(tree(tmp_path)))
    notes: list[str] = []
    info = probe_jetson(notes)
    assert info == JetsonInfo(l4t="35.4.1", jetpack="5.1.2", model="NVIDIA Jetson AGX Orin Developer Kit",
                              kernel="5.10.120-tegra", board="t186ref", compute_capability="8.7", cuda="11.4")  # fmt: skip
    assert info.present and notes == []


def test_jetpack_6_and_an_unknown_l4t(tmp_path: Path) -> None:
    info = probe_jetson(
        [], root=tree(tmp_path / "a", release=R36, model="NVIDIA Jetson Orin Nano Developer Kit")
    )
    assert (info.l4t, info.jetpack, info.cuda, info.compute_capability) == ("36.4.0", "6.1", "12.6", "8.7")
    notes: list[str] = []
    odd = probe_jetson(
        notes, root=tree(tmp_path / "b", release=R36.replace("4.0", "9.9"), model="NVIDIA Jetson Xavier NX")
    )
    assert (odd.l4t, odd.jetpack, odd.compute_capability) == (
        "36.9.9",
        None,
        "7.2",
    )  # no guess from a neighbour
    assert any("not in data/jetson.toml" in n for n in notes)


def test_not_a_jetson(tmp_path: Path) -> None:
    notes: list[str] = []
    assert (
        probe_jetson(notes, root=tree(tmp_path / "x86", release=None, model=None, kernel="6.8.0-60-generic"))
        == JetsonInfo()
    )
    assert notes == []
    # An L4T kernel without the release file: the board is named, the release is unknown (and said so)
    info = probe_jetson(notes, root=tree(tmp_path / "k", release=None))
    assert info.l4t is None and info.model == "NVIDIA Jetson AGX Orin Developer Kit" and not info.present
    assert notes and "nv_tegra_release is missing" in notes[0]


def test_this_machine_is_not_a_jetson() -> None:
    """The real probe on this machine (no /etc/nv_tegra_release, no -tegra kernel)."""
    if Path("/etc/nv_tegra_release").exists():
        pytest.skip("this machine is a Jetson")
    assert probe_jetson([], root=None) == JetsonInfo()


def test_detection_wires_the_probe_into_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("FWSETUP_JETSON_ROOT", str(tree(tmp_path)))
    profile = detect_host(refresh=True, docker=False)
    try:
        assert profile.jetson.l4t == "35.4.1" and profile.jetson.jetpack == "5.1.2"
    finally:
        monkeypatch.delenv("FWSETUP_JETSON_ROOT")
        detect_host(refresh=True, docker=False)


def test_the_l4t_table_pairs_each_release_once() -> None:
    tables = load_tables()
    assert tables.l4t["35.4.1"] == ("5.1.2", "11.4") and tables.l4t["36.4.3"] == ("6.2", "12.6")
    names = [name for name, _ in tables.modules]
    assert names.index("Orin") < names.index("Nano")  # "Orin Nano" is an Orin (8.7), not a Nano (5.3)


# ---- plans ------------------------------------------------------------------------------------------------


def orin(**jetson: str) -> HostProfile:
    host = load(FIXTURES / "jetson-orin.json")
    return (
        msgspec.structs.replace(host, jetson=msgspec.structs.replace(host.jetson, **jetson))
        if jetson
        else host
    )


def plan(host: HostProfile, **request: object) -> Plan:
    return make_plan(host, load_recipes().get("pytorch"), Request(framework="pytorch", **request))  # type: ignore[arg-type]


def server_cuda(p: Plan) -> bool:
    return p.accelerator == "cuda" and any("download.pytorch.org" in u for u in p.index_urls)


@pytest.mark.parametrize("method", ["venv", "conda", "docker"])
@pytest.mark.parametrize("want", ["auto", "gpu"])
@pytest.mark.parametrize("l4t", ["35.4.1", "36.4.0", "38.2.0"])
@pytest.mark.parametrize("version", [None, "2.9", "2.15"])
def test_a_jetson_never_gets_a_server_cuda_wheel(
    method: str, want: str, l4t: str, version: str | None
) -> None:
    p = plan(orin(l4t=l4t), method=method, want=want, version=version, allow_experimental=True)
    assert not server_cuda(p), (p.variant, p.reasons)
    if p.status == "ok" and p.accelerator == "cuda":
        assert p.variant == "jp51" and l4t.startswith("35.")


def test_orin_on_jetpack_5_gets_the_l4t_container_with_docker() -> None:
    p = plan(orin(), method="docker")
    assert (p.status, p.version, p.variant, p.accelerator) == ("ok", "2.0.0", "jp51", "cuda")
    assert p.docker is not None and p.docker.official_image == "nvcr.io/nvidia/l4t-pytorch:r35.2.1-pth2.0-py3"
    assert p.official_status is None  # NVIDIA's build: PyTorch's own matrix does not judge it
    assert any(r["kind"] == "jetson_build" for r in p.reason_codes)
    # With a Python the newest releases support, they are passed over for the SBSA reason
    newer = plan(orin(), method="docker", python="3.12")
    assert newer.variant == "jp51"
    sbsa = [r for r in newer.reason_codes if r["kind"] == "older_release_for_gpu"]
    assert sbsa and "server_cuda_on_jetson" in str(sbsa[0])
    assert "a server (SBSA) CUDA build" in "\n".join(newer.reasons)


def test_orin_with_venv_is_told_the_container_route() -> None:
    p = plan(orin())
    assert p.status == "ok" and p.accelerator == "cpu"  # PyPI's aarch64 CPU wheel
    assert "`fwsetup plan pytorch --method docker`" in "\n".join(p.suggestions)


def test_jetpack_6_has_no_build_here_and_gets_no_sbsa_wheel() -> None:
    p = plan(orin(l4t="36.4.0", jetpack="6.1", cuda="12.6"), method="docker", want="gpu")
    assert p.status == "refused"
    why = str(p.reason_codes)
    assert "l4t_mismatch" in why or "server_cuda_on_jetson" in why


def test_a_server_never_gets_the_jetson_build() -> None:
    gh200 = load(FIXTURES / "gh200.json")
    p = plan(gh200, method="docker", version="2.0.0", want="gpu")
    assert p.variant != "jp51"
    assert "jetson_only" in str(p.reason_codes)


def test_recipe_l4t_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "demo.toml"
    bad.write_text(
        'name = "demo"\ntitle = "Demo"\n[facts]\ndeveloper = "x"\nlanguage = "x"\nplatforms = ["Linux"]\n'
        'interfaces = ["Python"]\nautograd = "x"\npretrained = "x"\ncnn = "x"\nrnn = "x"\nmulti_gpu = "x"\n'
        'multi_node = "x"\nstatus = "active"\n[[builds]]\nversion = "1.0"\nvariant = "cpu"\nl4t = ["R35"]\n'
        'requirements = ["demo==1.0"]\n'
    )
    with pytest.raises(RecipeError) as err:
        load_recipe_file(bad)
    assert "builds[0].l4t" in str(err.value) and "'R35'" in str(err.value)


def test_doctor_names_the_jetson_instead_of_no_gpu() -> None:

    findings = {f.id: f for f in check_host(orin())}
    assert "nvidia.none" not in findings and "cuda.toolkit-without-driver" not in findings
    jet = findings["nvidia.jetson"]
    assert "L4T R35.4.1 (JetPack 5.1.2)" in jet.title and "compute capability 8.7" in jet.detail
    assert "--method docker" in (jet.remedy or "")
    # the same wheel table as the plan (data/jetson.toml [[wheel]]): the wheel for L4T R35.4.1
    assert "jp/v512/pytorch/torch-2.1.0a0+41361538.nv23.06-cp38-cp38-linux_aarch64.whl" in (jet.remedy or "")
    r351 = {f.id: f for f in check_host(orin(l4t="35.1.0", jetpack="5.0.2"))}["nvidia.jetson"]
    assert "pip install" not in (r351.remedy or "")


# ---- NVIDIA's JetPack wheels (issue 22, class 6): a route, not only a refusal -----------------------------


def test_the_jetpack_wheel_table_agrees_with_the_l4t_table() -> None:
    """data/jetson.toml [[wheel]] (NVIDIA's "PyTorch for Jetson" list) names, for each wheel, the JetPack and
    L4T releases NVIDIA built it for: each pair must be the [[l4t]] table's (the JetPack/L4T match), and the
    file name must be the release and Python it claims."""

    tables = load_tables()
    wheels = load_wheels()
    assert len(wheels) >= 2
    for w in wheels:
        assert sorted(tables.l4t[r][0] for r in w.l4t) == sorted(w.jetpack), w
        # NVIDIA's redist folder of the JetPack release it names (v512 for 5.1.2, v61 for 6.1)
        folders = {"v" + jp.replace(".", "") for jp in w.jetpack}
        assert any(
            w.url.startswith(f"https://developer.download.nvidia.com/compute/redist/jp/{f}/") for f in folders
        ), w
        assert f"/torch-{w.version}-cp{w.python.replace('.', '')}-cp" in w.url
        assert w.framework in load_recipes().names()


def test_orin_on_jetpack_512_gets_a_route_not_only_the_cpu() -> None:
    """https://github.com/conda-forge/pytorch-cpu-feedstock/issues/303: a server-class aarch64 CUDA build of
    PyTorch on a Jetson Orin: `torch.cuda.is_available()` is True, then "no kernel image is available" (no sm_87).
    Server (SBSA) builds stay refused. The routes: NVIDIA's L4T container, planned with --method docker, and
    NVIDIA's wheel for the board's exact L4T release (data/jetson.toml [[wheel]]), named with its pip command."""
    p = plan(orin(), want="gpu")
    assert p.status == "refused" and not server_cuda(p)
    order = [s["kind"] for s in p.suggestion_codes]
    assert order == ["use_method", "jetson_wheel", "use_cpu"], order
    assert p.suggestions[0] == (
        "PyTorch 2.0.0 (jp51) runs here on the GPU with --method docker: "
        "`fwsetup plan pytorch --gpu --method docker`."
    )
    wheel = p.suggestions[1]
    assert "PyTorch 2.1.0a0+41361538.nv23.06" in wheel and "L4T R35.4.1 (JetPack 5.1.2)" in wheel
    assert (
        "`python3.8 -m pip install https://developer.download.nvidia.com/compute/redist/jp/v512/pytorch/"
        "torch-2.1.0a0+41361538.nv23.06-cp38-cp38-linux_aarch64.whl`" in wheel
    )
    # The suggested command plans NVIDIA's container
    docker = plan(orin(), want="gpu", method="docker")
    assert (docker.status, docker.variant) == ("ok", "jp51")
    # JetPack 5.1.1 (L4T R35.3.1): the newest wheel NVIDIA lists for it is the same 2.1.0
    r3531 = plan(orin(l4t="35.3.1", jetpack="5.1.1"), want="gpu")
    assert "torch-2.1.0a0+41361538.nv23.06" in str(r3531.suggestion_codes)
    # JetPack 5.0.2 (L4T R35.1.0): no wheel in the table is built for it; none is named
    r351 = plan(orin(l4t="35.1.0", jetpack="5.0.2"), want="gpu")
    assert "jetson_wheel" not in str(r351.suggestion_codes)
    # JetPack 6.1 (L4T R36.4.0): NVIDIA's JetPack 6.1 wheel (jp/v61, Python 3.10), never a JetPack 5 one, never
    # a server wheel
    jp6 = plan(orin(l4t="36.4.0", jetpack="6.1", cuda="12.6"), want="gpu")
    assert jp6.status == "refused" and not server_cuda(jp6)
    named = str(jp6.suggestion_codes)
    assert (
        "jp/v61/pytorch/torch-2.5.0a0+872d972e41.nv24.08.17622132-cp310-cp310" in named
        and "jp/v5" not in named
    )
    # JetPack 6.2 (L4T R36.4.3): NVIDIA's redist has no wheel built for it; none is guessed from 6.1's
    jp62 = plan(orin(l4t="36.4.3", jetpack="6.2", cuda="12.6"), want="gpu")
    assert "jetson_wheel" not in str(jp62.suggestion_codes)


def test_no_jetson_wheel_off_a_jetson() -> None:
    gh200 = plan(load(FIXTURES / "gh200.json"), want="gpu")
    assert "jetson_wheel" not in str(gh200.suggestion_codes)
