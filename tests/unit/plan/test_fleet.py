"""Fleet planning (fwsetup.plan.fleet, `fwsetup plan NAME --host-profile A --host-profile B` / a folder): one
Plan that runs on every node, the nodes that hold a better choice back named, with what would unblock them.

The fixture fleets are under tests/fixtures/fleets/ (one folder per fleet, one `fwsetup profile` file per
node). The decisions come from the official tables the recipes and data cite:
- PyTorch's CUDA 13 wheels are built for sm_75 and newer (TORCH_CUDA_ARCH_LIST in pytorch/.ci/manywheel/
  build_cuda.sh, cited in recipes/pytorch.toml; NVIDIA's CUDA 13.0 release notes drop Maxwell, Pascal and
  Volta), while its CUDA 12.6 wheels still carry sm_70: a fleet with a V100 takes the newest cu126 release.
- A driver's CUDA floor comes from NVIDIA's CUDA compatibility tables (data/cuda-drivers.toml): the value
  asserted is read from fwsetup.compat, never typed here.
- jaxlib needs AVX on x86_64 (recipes/jax.toml, jax-ml/jax#31723): one AVX-less node refuses JAX fleet-wide.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest

from fwsetup.cli import main
from fwsetup.compat import DriverMin, driver_verdict, load_compat
from fwsetup.ops.fleet import fleet_nodes
from fwsetup.plan import Request, make_plan
from fwsetup.plan.fleet import Node, group_nodes, plan_fleet
from fwsetup.profile import load
from fwsetup.profile_fleet import Collectives, NetworkInfo
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FLEETS = FIXTURES / "fleets"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("FWSETUP_RECIPES", raising=False)


def fleet(name: str) -> list[Node]:
    return fleet_nodes([FLEETS / name])


def plan(name: str, framework: str = "pytorch", **req: object):
    recipe = load_recipes().get(framework)
    return plan_fleet(fleet(name), recipe, Request(framework=framework, **req))  # type: ignore[arg-type]


def codes(p, kind: str) -> list[dict]:
    return [c for c in p.reason_codes if c["kind"] == kind]


def test_v100_and_h100_share_the_newest_release_with_volta_kernels() -> None:
    p = plan("mixed-v100-h100")
    assert p.status == "ok"
    assert (p.version, p.variant) == ("2.14.1", "cu126")
    assert p.requirements == ["torch==2.14.1"]
    nodes = {n.name: n for n in p.fleet.nodes}
    # The H100 nodes alone would take the newest release's CUDA 13 build; the V100 node holds it back.
    assert (nodes["h100-01"].alone_version, nodes["h100-01"].alone_variant) == ("2.15.0", "cu130")
    assert all(n.runs for n in nodes.values())
    assert not nodes["h100-01"].holds_back
    v100_why = {(c["version"], c["variant"], c["code"]) for c in nodes["v100-01"].holds_back_codes}
    assert ("2.15.0", "cu130", "no_kernels") in v100_why
    # Every GPU of the node is checked, not only GPU 0.
    gpus = {c["fields"]["gpu"]["index"] for c in nodes["v100-01"].holds_back_codes if c["variant"] == "cu130"}
    assert gpus == {0, 1}
    blocked = codes(p, "fleet_blocked")
    assert [b["fields"]["nodes"] for b in blocked] == [["v100-01"]]
    assert any("node v100-01" in r and "compute capability 7.0" in r for r in p.reasons)
    # Identical machines are one group.
    assert sorted(len(g.nodes) for g in p.fleet.groups) == [1, 2]


def test_old_driver_node_named_with_the_driver_that_unblocks_it() -> None:
    p = plan("old-driver")
    assert p.status == "ok"
    assert (p.version, p.variant, p.cuda) == ("2.14.1", "cu126", "12.6")
    gpu07 = load(FLEETS / "old-driver" / "gpu-07.json")
    compat = load_compat()
    need_126 = driver_verdict(gpu07, "12.6", recipe_min=DriverMin(), data=compat).minimum
    need_130 = driver_verdict(gpu07, "13.0", recipe_min=DriverMin(), data=compat).minimum
    assert p.min_driver == need_126
    (blocked,) = codes(p, "fleet_blocked")
    assert blocked["fields"]["nodes"] == ["gpu-07"]
    assert blocked["fields"]["driver"] == "525.60.13"
    why = blocked["fields"]["why"]
    assert {w["code"] for w in why} == {"driver_too_old"}
    (upgrade,) = [s for s in p.suggestion_codes if s["kind"] == "fleet_upgrade_driver"]
    assert upgrade["fields"]["nodes"] == ["gpu-07"]
    needs = {w["fields"]["need"] for w in why} | {upgrade["fields"]["need"]}
    assert needs <= {need_130, driver_verdict(gpu07, "13.2", recipe_min=DriverMin(), data=compat).minimum}
    text = next(r for r in p.reasons if r.startswith("node gpu-07"))
    assert "driver 525.60.13" in text and f"upgrading it to >= {upgrade['fields']['need']} allows" in text
    # The oldest driver is named as the one that still runs the choice.
    (drv,) = codes(p, "fleet_driver")
    assert drv["fields"]["nodes"] == ["gpu-07"] and drv["fields"]["need"] == need_126


def test_one_avx_less_node_refuses_jax_for_the_fleet_and_is_named() -> None:
    p = plan("one-avx-less", "jax")
    assert p.status == "refused"
    (blocked,) = codes(p, "fleet_blocked")
    assert blocked["fields"]["nodes"] == ["old-xeon"]
    assert [w["code"] for w in blocked["fields"]["why"]] == ["cpu_features_missing"]
    nodes = {n.name: n for n in p.fleet.nodes}
    assert nodes["cpu-01"].alone_status == "ok" and nodes["old-xeon"].alone_status == "refused"
    assert not nodes["old-xeon"].runs
    # PyTorch's CPU wheels need no AVX: the same fleet gets one.
    t = plan("one-avx-less")
    assert (t.status, t.variant) == ("ok", "cpu")


def _has_libc_rule() -> bool:
    p = plan("mixed-glibc")
    return any(c.get("code") == "glibc_too_old" for n in p.fleet.nodes for c in n.holds_back_codes)


def test_mixed_glibc_fleet() -> None:
    p = plan("mixed-glibc")
    groups = {g.libc_version: g.nodes for g in p.fleet.groups}
    assert groups == {"2.35": ["debian12-01"], "2.17": ["centos7-01"]}
    if not _has_libc_rule():
        pytest.skip(
            "the planner has no glibc wheel-tag rule yet (evaluate gives no glibc_too_old for glibc 2.17): "
            "only the grouping is checked"
        )
    # PyTorch's newer Linux wheels are manylinux_2_28 (their PyPI wheel tags, data/registry/): CentOS 7's
    # glibc 2.17 holds the fleet to the release that node gets alone, and the node is named.
    nodes = {n.name: n for n in p.fleet.nodes}
    centos, debian = nodes["centos7-01"], nodes["debian12-01"]
    assert p.status == "ok" and p.version == centos.alone_version != debian.alone_version
    (blocked,) = codes(p, "fleet_blocked")
    assert blocked["fields"]["nodes"] == ["centos7-01"]
    assert {w["code"] for w in blocked["fields"]["why"]} == {"glibc_too_old"}
    assert not debian.holds_back


def test_grouping_ignores_ids_but_not_drivers() -> None:
    h100 = load(FLEETS / "old-driver" / "gpu-01.json")
    other = msgspec.structs.replace(
        h100,
        disk_free_bytes=123,
        # when and where it was captured, and what doctor --fleet compares, do not change what runs there
        captured_at="2026-12-06T21:00:00.000Z",
        capture_group="slurm:4.0",
        network=NetworkInfo(interface="eth0", address="10.0.0.7", network="10.0.0.0/24"),
        collectives=(Collectives(python="/e/bin/python", framework="torch", nccl="2.21.5"),),
        nvidia=msgspec.structs.replace(
            h100.nvidia, gpus=tuple(msgspec.structs.replace(g, uuid="GPU-x") for g in h100.nvidia.gpus)
        ),
    )
    old = load(FLEETS / "old-driver" / "gpu-07.json")
    groups = group_nodes([Node("a", h100), Node("b", other), Node("c", old)])
    assert [names for names, _ in groups] == [["a", "b"], ["c"]]


@pytest.mark.parametrize("framework", ["pytorch", "jax", "tensorflow"])
def test_a_fleet_of_one_is_the_one_machine_plan(framework: str) -> None:
    recipe = load_recipes().get(framework)
    for path in sorted(FIXTURES.glob("*.json")):
        profile = load(path)
        for want in ("auto", "cpu"):
            req = Request(framework=framework, want=want)  # type: ignore[arg-type]
            one = make_plan(profile, recipe, req)
            fl = plan_fleet([Node(path.stem, profile)], recipe, req)
            assert (fl.status, fl.version, fl.variant) == (one.status, one.version, one.variant), path.name
            if one.status == "ok":
                assert fl.requirements == one.requirements and fl.index_urls == one.index_urls


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_cli_files_and_folder_give_the_same_plan(capsys: pytest.CaptureFixture[str]) -> None:
    folder = FLEETS / "old-driver"
    files = [a for f in sorted(folder.glob("*.json")) for a in ("--host-profile", str(f))]
    code, out_files, err = run(capsys, "plan", "pytorch", "--json", *files)
    assert code == 0, err
    code, out_dir, err = run(capsys, "plan", "pytorch", "--json", "--host-profile", str(folder))
    assert code == 0, err
    assert json.loads(out_files) == json.loads(out_dir)
    data = json.loads(out_dir)
    assert [n["name"] for n in data["fleet"]["nodes"]] == ["gpu-01", "gpu-02", "gpu-03", "gpu-07"]
    assert {n["name"]: n["group"] for n in data["fleet"]["nodes"]}["gpu-07"] != 0
    code, out, _ = run(capsys, "plan", "pytorch", "--host-profile", str(folder))
    assert code == 0 and "node gpu-07" in out


def test_cli_refusal_exit_3_and_bad_fleets_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "plan", "jax", "--json", "--host-profile", str(FLEETS / "one-avx-less"))
    assert code == 3 and json.loads(out)["status"] == "refused"
    # Two files naming the same node.
    (tmp_path / "a").mkdir()
    shutil.copy(FLEETS / "old-driver" / "gpu-01.json", tmp_path / "a" / "gpu-01.json")
    code, _, err = run(
        capsys, "plan", "pytorch", "--host-profile", str(tmp_path / "a"), "--host-profile",
        str(FLEETS / "old-driver" / "gpu-01.json"),
    )  # fmt: skip
    assert code == 2 and "gpu-01" in err and "Traceback" not in err
    code, _, err = run(capsys, "plan", "pytorch", "--host-profile", str(tmp_path / "empty-not-there"),
                       "--host-profile", str(FLEETS / "old-driver"))  # fmt: skip
    assert code == 2 and "empty-not-there" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "plan", "pytorch", "--host-profile", str(tmp_path / "empty"))
    assert code == 2 and "no *.json" in err
    code, _, err = run(
        capsys, "plan", "pytorch", "--method", "docker", "--host-profile", str(FLEETS / "old-driver")
    )
    assert code == 2 and "fleet" in err
