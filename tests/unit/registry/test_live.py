"""Live registry data (fwsetup.registry.live) and releases newer than the curated facts (fwsetup.plan.inherit).

The indexes here are real HTTP servers on 127.0.0.1 (tests/simple_index.py) serving PEP 691 JSON and PEP 503
HTML; no outside network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from simple_index import SimpleIndex, future_jax

from fwsetup.backends.docker.render import image_labels
from fwsetup.envmeta import plan_digest
from fwsetup.plan import Request, make_plan, plan_to_dict
from fwsetup.plan.inherit import extend
from fwsetup.plan.model import IndexData, PlanData
from fwsetup.profile import load
from fwsetup.recipes.load import load_recipes
from fwsetup.registry import load_registry
from fwsetup.registry.live import live_registry, merge
from fwsetup.registry.pages import PYPI_SIMPLE, File, Page

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
H100 = FIXTURES / "datacenter-h100.json"  # Linux x86_64, glibc 2.39, Python 3.12, driver 580.65.06


# ---- merged data, and releases newer than the curated facts ---------------------------------------------------


def test_future_jax_is_planned_with_inherited_facts(live_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = load(H100)
    recipe = load_recipes().get("jax")
    with SimpleIndex(future_jax()) as idx:
        monkeypatch.setenv("PIP_INDEX_URL", idx.url)
        registry = live_registry(recipe)
    assert registry is not None and registry.data.kind == "live"
    extended = extend(recipe, registry)
    plan = make_plan(host, extended, Request(framework="jax", want="cpu"), registry=registry)
    assert (plan.status, plan.version, plan.variant) == ("ok", "0.99.0", "cpu")
    assert plan.data is not None and plan.data.kind == "live" and plan.data.indexes[0].url == idx.url
    assert plan.inherited is not None
    assert plan.inherited.source == "0.12.0.1" and plan.inherited.requires_from == "0.12.0.1"
    assert "CPU features" in plan.inherited.facts and not plan.inherited.unconfirmed
    assert any("0.99.0 is newer than fwsetup's curated data" in r for r in plan.reasons)
    assert plan.requirements == ["jax==0.99.0"]
    # the index has no CUDA plugin 0.99.0: no GPU build of 0.99.0 is offered; the GPU gets the newest that has one
    gpu = make_plan(host, extended, Request(framework="jax", want="gpu"), registry=registry)
    assert (gpu.status, gpu.version, gpu.inherited) == ("ok", "0.12.0.1", None)
    assert not any(b.version == "0.99.0" and b.accelerator == "cuda" for b in extended.builds)


def test_the_python_range_of_a_new_release_comes_from_its_wheels(
    live_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = load(H100)
    recipe = load_recipes().get("jax")  # its newest release, 0.12.0.1, needs Python >= 3.12
    for pythons, planned in ((("cp311", "cp312"), "0.99.0"), (("cp313", "cp314"), "0.10.2")):
        with SimpleIndex(future_jax(pythons=pythons)) as idx:
            monkeypatch.setenv("PIP_INDEX_URL", idx.url)
            registry = live_registry(recipe, mode="refresh")
        # Python 3.11: the new release's Requires-Python (>=3.11) lets it in; its jaxlib wheels' tags decide
        plan = make_plan(host, extend(recipe, registry), Request(framework="jax", want="cpu", python="3.11"),
                         registry=registry)  # fmt: skip
        assert plan.version == planned, pythons
        if planned != "0.99.0":
            assert any(r.version == "0.99.0" for r in plan.rejected)


def test_offline_and_no_index_plan_from_the_snapshot(live_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipes().get("jax")
    with SimpleIndex(future_jax()) as idx:
        monkeypatch.setenv("PIP_INDEX_URL", idx.url)
        offline = live_registry(recipe, mode="offline")
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        no_index = live_registry(recipe)
        assert idx.requests == []
    for reg, note in ((offline, "--offline"), (no_index, "pip is configured with no-index")):
        assert (
            reg is not None and reg.data.kind == "snapshot" and reg.data.date == load_registry("jax").synced
        )  # type: ignore[union-attr]
        assert reg.data.indexes[0].note == note
        assert "0.99.0" not in reg.versions("jax")
    assert load_registry("jax").data is None  # the shared snapshot object is never marked


def test_a_new_cuda_variant_is_judged_from_its_name_and_unconfirmed() -> None:
    snapshot = load_registry("pytorch")
    root = "https://download.pytorch.org/whl"
    page = Page(
        root, "torch", (File("torch-2.99.0+cu133-cp312-cp312-manylinux_2_28_x86_64.whl"),), "live", 0.0
    )
    registry, _ = merge(snapshot, [page], default=PYPI_SIMPLE, framework="pytorch", floor="2.0.0")
    assert registry is not None
    recipe = extend(load_recipes().get("pytorch"), registry)
    new = [b for b in recipe.builds if b.version == "2.99.0"]
    assert new and {(b.variant, b.cuda, b.facts_from) for b in new} == {("cu133", "13.3", "2.15.0")}
    assert all(b.min_driver is None and b.index_url == f"{root}/cu133" for b in new)  # driver: NVIDIA's table
    host = load(H100)
    plan = make_plan(host, recipe, Request(framework="pytorch", want="gpu", allow_experimental=True),
                     registry=registry)  # fmt: skip
    assert (plan.version, plan.variant, plan.cuda) == ("2.99.0", "cu133", "13.3")
    assert plan.min_driver is not None and plan.min_driver.startswith("580")  # CUDA 13.x MVC minimum
    assert (
        plan.inherited is not None and plan.inherited.unconfirmed and plan.inherited.cuda_from_name == "13.3"
    )
    assert any("arch list is unconfirmed" in r for r in plan.reasons)
    # unconfirmed: not chosen unless asked for, like a build the release matrix does not list
    held = make_plan(host, recipe, Request(framework="pytorch", want="gpu"), registry=registry)
    assert held.version != "2.99.0"


def test_merge_replaces_an_index_s_wheels_and_keeps_the_others() -> None:
    snapshot = load_registry("jax")
    newest = snapshot.versions("jaxlib")[-1]
    old = snapshot.wheels("jaxlib", newest)
    yanked = File(old[0].filename, old[0].sha256, old[0].size, None, True)
    page = Page(PYPI_SIMPLE, "jaxlib", (yanked,), "live", 0.0)
    registry, _ = merge(snapshot, [page], default=PYPI_SIMPLE, framework="jax", floor="0.6.2")
    assert registry is not None
    got = registry.wheels("jaxlib", newest)
    assert [w.filename for w in got] == [old[0].filename] and got[0].yanked  # what the index says now wins
    assert registry.wheels("jaxlib", snapshot.versions("jaxlib")[0]) == snapshot.wheels(
        "jaxlib", snapshot.versions("jaxlib")[0]
    )


def test_when_the_data_was_read_does_not_change_the_environment_or_the_image() -> None:
    import msgspec

    plan = make_plan(load(H100), load_recipes().get("jax"), Request(framework="jax", want="cpu"))
    live = msgspec.structs.replace(
        plan, data=PlanData(kind="live", date="2027-01-01 10:00 UTC",
                            indexes=[IndexData(url=PYPI_SIMPLE, kind="live", date="2027-01-01 10:00 UTC")])
    )  # fmt: skip
    cached = msgspec.structs.replace(live, data=PlanData(kind="cache", date="2027-01-01 10:00 UTC"))
    assert plan_to_dict(live) != plan_to_dict(cached)
    # a repeat install of the same build is a no-op whether its plan read the index or the cache
    assert plan_digest(plan_to_dict(live)) == plan_digest(plan_to_dict(cached))
    # an image's labels (before its venv layer) stay the same: an unchanged image is not rebuilt

    smoke = ["python", "-m", "fwsetup.smoke", "jax"]
    assert image_labels(live, "python:3.12", smoke) == image_labels(cached, "python:3.12", smoke)
