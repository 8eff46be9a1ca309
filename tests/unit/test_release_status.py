"""Official status per build (data/release-matrix.toml, release_status.py) and the ranking it drives: a build the
framework's own release matrix lists as stable wins over one it lists as experimental or not at all; those run
only with --allow-experimental; the plan says which status it chose; "natively" only when it is true.

Sources: pytorch/pytorch RELEASE.md "Release Compatibility Matrix" (2.7: stable 11.8 / 12.6, experimental 12.8;
2.10: stable 12.6 / 12.8, experimental 13.0; cu129 wheels of 2.9/2.10 published but not listed), TensorFlow's
tested build configurations (2.21: CUDA 12.5), JAX's installation page (NVIDIA GPU on WSL2: experimental), and
the CUDA 12.x minor-version compatibility minimum 525.60.13 (NVIDIA CUDA Compatibility guide).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fwsetup.cli import main
from fwsetup.errors import RecipeError
from fwsetup.ops.matrix import matrix_entries
from fwsetup.plan import Plan, Request, make_plan, plan_to_dict
from fwsetup.profile import GPU, HostProfile, load
from fwsetup.recipes.load import load_recipes
from fwsetup.release_status import load_release_matrix, matrix_from_data, read_release_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def plan(host: str | HostProfile, framework: str = "pytorch", **request: object) -> Plan:
    profile = host if isinstance(host, HostProfile) else load(FIXTURES / f"{host}.json")
    return make_plan(profile, load_recipes().get(framework), Request(framework=framework, **request))  # type: ignore[arg-type]


def kinds(p: Plan) -> list[str]:
    return [r["kind"] for r in p.reason_codes]


def test_statuses_from_the_data() -> None:
    m = load_release_matrix()
    assert m.status_of("pytorch", "2.10.0", "cu128", "cuda") == "stable"
    assert m.status_of("pytorch", "2.10.0+cu130", "cu130", "cuda") == "experimental"
    assert m.status_of("pytorch", "2.10.0", "cu129", "cuda") == "unlisted"
    assert m.status_of("pytorch", "2.10.0", "cpu", "cpu") is None  # the matrix speaks for CUDA only
    assert m.status_of("pytorch", "1.13.1", "cu117", "cuda") is None  # a release it does not cover
    assert m.status_of("tensorflow", "2.21.0", "cu125", "cuda") == "stable"
    assert m.status_of("jax", "0.10.2", "cuda13", "cuda") == "stable"
    assert m.status_of("jax", "0.10.2", "cuda13", "cuda", wsl=True) == "experimental"
    assert m.status_of("mxnet", "1.9.1", "cu112", "cuda") is None


def test_every_recipe_cuda_variant_of_a_covered_release_has_a_status() -> None:
    """Each CUDA build of a release series the matrix covers is stable, experimental or knowingly unlisted:
    the unlisted ones are exactly the builds the recipes themselves call limited or unlisted."""
    m = load_release_matrix()
    unlisted = set()
    for name in ("pytorch", "tensorflow", "jax"):
        for b in load_recipes().get(name).builds:  # type: ignore[union-attr]
            judged = b.accelerator == "cuda" and not b.l4t
            if judged and m.status_of(name, b.version, b.variant, "cuda") == "unlisted":
                unlisted.add((name, b.version, b.variant))
    assert unlisted == {("pytorch", v, "cu129") for v in ("2.9.0", "2.9.1", "2.10.0")}


def test_driver_cuda_129_and_torch_2_10_gets_the_stable_cu128_build() -> None:
    """Driver 575 (its own CUDA 12.9): cu129 exists for 2.10 but is not in its release matrix; cu130 is
    experimental and needs driver >= 580. The stable cu128 wins, and the plan says it is stable."""
    p = plan("driver-cuda129", version="2.10")
    assert (p.status, p.variant, p.official_status) == ("ok", "cu128", "stable")
    assert "PyTorch 2.10.0 cu128: stable in the framework's release matrix." in p.reasons
    assert any(
        r.variant == "cu129" and "not in 2.10.0's release matrix" in " ".join(r.why) for r in p.rejected
    )

    assert plan_to_dict(p)["official_status"] == "stable"


def test_allow_experimental_still_ranks_stable_first_and_says_why() -> None:
    p = plan("driver-cuda129", version="2.10", allow_experimental=True)
    assert (p.variant, p.official_status) == ("cu128", "stable")
    first = next(r for r in p.reason_codes if r["kind"] == "official_first")
    assert first["fields"]["over"] == ["cu129"] and first["fields"]["their"] == ["unlisted"]


def test_an_experimental_build_runs_only_when_asked() -> None:
    """An RTX 5090 (sm_120) on torch 2.7: only cu128 has its kernels, and 2.7 lists CUDA 12.8 as experimental."""
    h100 = load(FIXTURES / "datacenter-h100.json")
    gpu = GPU(index=0, name="NVIDIA GeForce RTX 5090", compute_capability="12.0", memory_bytes=34190917632)
    blackwell = msgspec.structs.replace(
        h100, nvidia=msgspec.structs.replace(h100.nvidia, gpus=(gpu,), links=())
    )
    refused = plan(blackwell, version="2.7", want="gpu")
    assert refused.status == "refused"
    hint = next(s for s in refused.suggestion_codes if s["kind"] == "allow_experimental")
    assert hint["fields"]["variant"] == "cu128" and hint["fields"]["status"] == "experimental"
    assert "--allow-experimental" in "\n".join(refused.suggestions)
    p = plan(blackwell, version="2.7", want="gpu", allow_experimental=True)
    assert (p.status, p.variant, p.official_status) == ("ok", "cu128", "experimental")
    assert any("experimental in the framework's release matrix" in r for r in p.reasons)


def test_grace_hopper_with_an_older_pinned_release() -> None:
    """GH200 (aarch64, sm_90): torch 2.8's aarch64 cu128 wheel is on PyTorch's index (data/registry, recipe) and
    2.8 lists CUDA 12.8 as stable; 2.7's cu128 is experimental there, so it needs --allow-experimental."""
    p = plan("gh200", version="2.8")
    assert (p.status, p.variant, p.official_status) == ("ok", "cu128", "stable")
    assert p.index_urls == ["https://download.pytorch.org/whl/cu128"]
    older = plan("gh200", version="2.7")
    assert older.accelerator == "cpu"
    assert [s["kind"] for s in older.suggestion_codes] == ["allow_experimental"]
    asked = plan("gh200", version="2.7", allow_experimental=True)
    assert (asked.variant, asked.official_status) == ("cu128", "experimental")


def test_natively_only_when_the_drivers_own_cuda_is_new_enough() -> None:
    """Driver 550 (its own CUDA 12.4) runs cu126/cu128 only through minor-version compatibility."""
    h100 = load(FIXTURES / "datacenter-h100.json")
    old = msgspec.structs.replace(
        h100,
        nvidia=msgspec.structs.replace(h100.nvidia, driver_version="550.54.15", cuda_driver_version="12.4"),
    )
    p = plan(old, version="2.10")
    assert p.variant == "cu128"
    newest = next(r for r in p.reason_codes if r["kind"] == "newest_cuda")
    assert newest["fields"]["native"] is False
    text = "\n".join(p.reasons)
    assert "through minor-version compatibility" in text and "natively." not in text
    native = plan("driver-cuda129", version="2.10")
    assert next(r for r in native.reason_codes if r["kind"] == "newest_cuda")["fields"]["native"] is True


def test_tensorflow_and_jax_statuses_reach_the_plan() -> None:
    tf = plan("datacenter-h100", "tensorflow")
    assert (tf.variant, tf.official_status) == ("cu125", "stable")
    cpu = plan("no-gpu", "pytorch")
    assert cpu.official_status is None


def test_the_cli_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path))
    host = str(FIXTURES / "driver-cuda129.json")
    assert (
        main(
            ["plan", "pytorch", "--version", "2.10", "--json", "--allow-experimental", "--host-profile", host]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert (data["variant"], data["official_status"]) == ("cu128", "stable")


def test_a_malformed_matrix_names_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as err:
        matrix_from_data(
            {"pytorch": {"covers": ["cuda"], "sources": [], "release": [{"series": "two"}]}}, source="m.toml"
        )
    assert "m.toml: pytorch.release[0].series" in str(err.value)
    with pytest.raises(RecipeError, match=r"pytorch\.release\[0\]\.stable"):
        matrix_from_data(
            {
                "pytorch": {
                    "covers": ["cuda"],
                    "sources": [],
                    "release": [{"series": "2.1", "stable": "cu118"}],
                }
            }
        )
    bad = tmp_path / "release-matrix.toml"
    bad.write_text('[pytorch]\ncovers = ["cuda"]\nsources = []\nwsl = "maybe"\n')
    with pytest.raises(RecipeError, match=r"release-matrix\.toml: pytorch\.wsl"):
        read_release_matrix(bad)


def test_the_image_matrix_asks_for_experimental_builds_it_lists() -> None:
    """`fwsetup matrix --all` lists every image the recipes define; an experimental or unlisted one carries
    --allow-experimental in its build arguments (else `fwsetup build` would refuse it), a stable one does not."""

    entries = matrix_entries(list(load_recipes().recipes.values()), frameworks=["pytorch"], newest=None)
    by = {(e.version, e.variant): e for e in entries}
    assert by[("2.10.0", "cu129")].official_status == "unlisted"
    assert "--allow-experimental" in by[("2.10.0", "cu129")].args()
    assert by[("2.10.0", "cu130")].official_status == "experimental"
    assert "--allow-experimental" not in by[("2.10.0", "cu128")].args()
    assert "--allow-experimental" not in by[("2.10.0", "cpu")].args()
