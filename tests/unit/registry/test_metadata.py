"""What a release's own metadata says (fwsetup.registry.metadata), read from the registry at plan time (issue 22, class 2
and companions).

- The cuDNN a build brings is the `nvidia-cudnn-cu1x` requirement of its wheel's core metadata (PyTorch pins
  one; jax[cudaNN] reaches a range through jax-cudaNN-plugin[with-cuda]); data/cudnn.toml is only the
  fallback where the registry says nothing.
- A release newer than the shipped snapshot gets its companion requirements (jax -> jaxlib) from its own
  metadata (PEP 658 `.metadata`, else the wheel's METADATA by HTTP range requests), not copied from an older
  release; only where that cannot be read are they inherited (and the plan says so).

The indexes are real HTTP servers on 127.0.0.1 (tests/simple_index.py) serving real wheels; no outside network.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from simple_index import SimpleFile, SimpleIndex

from fwsetup.compat import load_compat
from fwsetup.plan import Request, make_plan
from fwsetup.plan.inherit import extend
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes
from fwsetup.registry import load_registry
from fwsetup.registry.live import live_registry

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
H100 = FIXTURES / "datacenter-h100.json"  # Linux x86_64, Python 3.12, driver 580.65.06


def with_gpu(profile: HostProfile, name: str, cc: str) -> HostProfile:
    nv = profile.nvidia
    gpus = tuple(msgspec.structs.replace(g, name=name, compute_capability=cc) for g in nv.gpus)
    return msgspec.structs.replace(profile, nvidia=msgspec.structs.replace(nv, gpus=gpus))


# ---- companions of a new release, from its own metadata (not copied from an older release) -------------------


def future_jax(pep658: bool) -> dict[str, list[SimpleFile]]:
    """JAX 0.99.0 whose jax wheel requires a jaxlib range no older release wrote (>=0.98.0), as real wheels."""
    jax_requires = ("jaxlib<=0.99.0,>=0.98.0", "numpy>=2.2", 'jaxlib<=0.99.0,>=0.99.0; extra == "cuda13"')
    jaxlib = [SimpleFile(f"jaxlib-{v}-cp312-cp312-manylinux_2_27_x86_64.whl", ">=3.11", requires=("numpy",),
                         pep658=pep658) for v in ("0.98.0", "0.99.0")]  # fmt: skip
    return {
        "jax": [SimpleFile("jax-0.99.0-py3-none-any.whl", ">=3.11", requires=jax_requires, pep658=pep658)],
        "jaxlib": jaxlib,
    }


@pytest.mark.parametrize("pep658", [True, False], ids=["pep658", "range-requests"])
def test_a_new_release_s_companions_come_from_its_own_metadata(
    live_env: Path, monkeypatch: pytest.MonkeyPatch, pep658: bool
) -> None:
    recipe = load_recipes().get("jax")
    with SimpleIndex(future_jax(pep658), formats=("json",) if pep658 else ("html",)) as idx:
        monkeypatch.setenv("PIP_INDEX_URL", idx.url)
        registry = live_registry(recipe)
        files = [p for p in idx.project_requests() if p.startswith("/files/")]
        ranges = [h.get("range") for p, h in idx.requests if p.startswith("/files/")]
        # warm: the metadata of a file never changes; nothing is asked again
        again = live_registry(recipe)
        assert [p for p in idx.project_requests() if p.startswith("/files/")] == files
    if pep658:
        assert "/files/jax-0.99.0-py3-none-any.whl.metadata" in files and not any(ranges)
    else:  # the end of the zip, then the member (the directory was in the tail): never the whole wheel
        assert "/files/jax-0.99.0-py3-none-any.whl" in files and all(
            r and r.startswith("bytes=") for r in ranges
        )
    for reg in (registry, again):
        assert reg is not None
        info = reg.release("jax", "0.99.0")
        assert info is not None
        assert "jaxlib<=0.99.0,>=0.98.0" in info.requires  # its own words, not 0.12.0.1's rewritten
        assert ("jax", "0.99.0") not in reg.data.inherited_requires
    plan = make_plan(
        load(H100), extend(recipe, registry), Request(framework="jax", want="cpu"), registry=registry
    )
    assert (plan.status, plan.version) == ("ok", "0.99.0")
    assert plan.inherited is not None and plan.inherited.requires_from is None
    assert "requirements on companion packages" not in plan.inherited.facts


def test_unreadable_metadata_falls_back_to_inherited_requirements(
    live_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror that serves pages but not the files (404): the requirements are inherited, and said so."""
    recipe = load_recipes().get("jax")
    projects = {"jax": [SimpleFile("jax-0.99.0-py3-none-any.whl", ">=3.11")],
                "jaxlib": [SimpleFile("jaxlib-0.99.0-cp312-cp312-manylinux_2_27_x86_64.whl", ">=3.11")]}  # fmt: skip
    with SimpleIndex(projects) as idx:
        monkeypatch.setenv("PIP_INDEX_URL", idx.url)
        registry = live_registry(recipe)
    assert registry is not None and registry.data.inherited_requires[("jax", "0.99.0")] == "0.12.0.1"
    plan = make_plan(
        load(H100), extend(recipe, registry), Request(framework="jax", want="cpu"), registry=registry
    )
    assert plan.inherited is not None and plan.inherited.requires_from == "0.12.0.1"


# ---- class 2: the cuDNN a build brings, from the registry -------------------------------------------------------


def test_pytorch_2_11_cudnn_is_read_from_its_wheel_metadata() -> None:
    """PyTorch 2.11.0 on PyPI (the cu130 build) pins nvidia-cudnn-cu13==9.19.0.56 (its wheel's Requires-Dist,
    in the shipped snapshot since the sync keeps cuDNN pins); data/cudnn.toml has no row for 2.10 and newer.
    cuDNN 9.19 supports compute capability 7.5 and newer (9.11 dropped SM < 7.5:
    https://github.com/pytorch/pytorch/issues/162574)."""
    plan = make_plan(load(H100), load_recipes().get("pytorch"),
                     Request(framework="pytorch", want="gpu", version="2.11.0"))  # fmt: skip
    assert (plan.status, plan.variant) == ("ok", "cu130")
    said = "\n".join(plan.reasons)
    assert "cuDNN 9.19.0.56, which supports compute capability 7.5 and newer" in said
    assert "torch 2.11.0's Requires-Dist: nvidia-cudnn-cu13==9.19.0.56" in said


def test_jax_on_a_pascal_card_caps_the_cudnn_range_its_plugin_takes() -> None:
    """https://github.com/pytorch/pytorch/issues/162574 (and ultralytics/ultralytics#22002 it quotes): a GTX
    1080 Ti (sm_61) fails in cuDNN calls once pip brings nvidia-cudnn-cu12 9.11 or newer. jax[cuda12] 0.6.2
    requires jax-cuda12-plugin[with-cuda]==0.6.2, which requires nvidia-cudnn-cu12>=9.8,<10: pip takes the newest
    9.x, past 9.11. The range still allows 9.8-9.10 (5.0 and newer): the plan steps down within it, adding
    nvidia-cudnn-cu12<9.11, and says why. A pin (PyTorch) cannot be capped: those step down to an older release
    (plan/test_evaluate_gpu_rules.py::test_tesla_k80_is_not_given_a_wheel_whose_cudnn_dropped_kepler)."""
    pascal = load(FIXTURES / "pascal-470.json")
    nv = msgspec.structs.replace(pascal.nvidia, driver_version="580.65.06", cuda_driver_version="13.0")
    pascal = msgspec.structs.replace(pascal, nvidia=nv)
    plan = make_plan(pascal, load_recipes().get("jax"), Request(framework="jax", want="gpu", version="0.6.2"))
    assert (plan.status, plan.variant) == ("ok", "cuda12")
    assert plan.requirements == ["jax[cuda12]==0.6.2", "nvidia-cudnn-cu12<9.11"]
    said = "\n".join(plan.reasons)
    assert "nvidia-cudnn-cu12>=9.8,<10.0 would resolve to the newest cuDNN" in said
    assert (
        "7.5 and newer only; the plan adds nvidia-cudnn-cu12<9.11, whose releases support 5.0 and newer"
        in said
    )
    assert "jax-cuda12-plugin 0.6.2's Requires-Dist: nvidia-cudnn-cu12" in said
    # a Turing card (7.5) is within the newest cuDNN's floor: nothing is added
    turing = with_gpu(pascal, "NVIDIA GeForce RTX 2080", "7.5")
    ok = make_plan(turing, load_recipes().get("jax"), Request(framework="jax", want="gpu", version="0.6.2"))
    assert (ok.status, ok.requirements) == ("ok", ["jax[cuda12]==0.6.2"])
    assert (
        "(the installer takes the newest: 9.11 or later), which supports compute capability 7.5"
        in "\n".join(ok.reasons)
    )
    # a mixed machine (the 1080 beside the 2080): the cap covers both
    mixed = msgspec.structs.replace(
        pascal,
        nvidia=msgspec.structs.replace(
            pascal.nvidia,
            gpus=(
                *pascal.nvidia.gpus,
                msgspec.structs.replace(turing.nvidia.gpus[0], index=1, uuid="GPU-2080"),
            ),
        ),
    )
    both = make_plan(mixed, load_recipes().get("jax"), Request(framework="jax", want="gpu", version="0.6.2"))
    assert both.status == "ok" and "nvidia-cudnn-cu12<9.11" in both.requirements and both.gpus == [0, 1]


def test_a_new_torch_release_s_cudnn_comes_from_its_metadata(
    live_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.99.0 'from the future' on a local index, its wheel pinning cuDNN 9.30.0.1 with the CUDA 13.0
    runtime: the cu130 build inherited from 2.15.0 brings the cuDNN the new wheel pins, not 2.15.0's."""
    requires = ('cuda-toolkit[cudart]==13.0.3; platform_system == "Linux"',
                'nvidia-cudnn-cu13==9.30.0.1; platform_system == "Linux"')  # fmt: skip
    torch = [SimpleFile("torch-2.99.0-cp312-cp312-manylinux_2_28_x86_64.whl", ">=3.10", requires=requires)]
    recipe = load_recipes().get("pytorch")
    with SimpleIndex({"torch": torch}) as idx:
        monkeypatch.setenv("PIP_INDEX_URL", idx.url)
        registry = live_registry(recipe)
    assert registry is not None
    info = registry.release("torch", "2.99.0")
    assert info is not None and 'nvidia-cudnn-cu13==9.30.0.1; platform_system == "Linux"' in info.requires
    extended = extend(recipe, registry)
    plan = make_plan(load(H100), extended, Request(framework="pytorch", want="gpu", version="2.99.0"),
                     registry=registry)  # fmt: skip
    assert (plan.status, plan.version, plan.cuda) == ("ok", "2.99.0", "13.0"), plan.reasons
    assert "torch 2.99.0's Requires-Dist: nvidia-cudnn-cu13==9.30.0.1" in "\n".join(plan.reasons)


def test_the_typed_cudnn_table_agrees_with_the_wheel_metadata() -> None:
    """data/cudnn.toml is the offline fallback, first written from PyTorch's RELEASE.md and TF's tested
    configurations; wherever the shipped registry snapshot has a release's own cuDNN pin (PyPI's torch wheel:
    the variant of its CUDA runtime; tensorflow[and-cuda]), the table says the same (data/sources-checked.toml)."""
    import re

    compat = load_compat()
    compared = 0
    for framework, dist, prefix in (("pytorch", "torch", "cu"), ("tensorflow", "tensorflow", "cu")):
        reg = load_registry(framework)
        assert reg is not None
        for v in reg.versions(dist):
            info = reg.release(dist, v)
            reqs = info.requires if info is not None else []
            pin = next(
                (
                    m.group(1)
                    for r in reqs
                    if (m := re.search(r"nvidia-cudnn-cu\d+\s*\(?\s*==\s*([\d.]+)", r))
                ),
                None,
            )
            cuda = next((m.group(1) for r in reqs if (m := re.search(r"(?:nvidia-cuda-runtime-cu\d+|cuda-toolkit\S*)\s*\(?\s*==\s*(\d+\.\d+)", r))), None)  # fmt: skip
            if pin is None or cuda is None:
                continue
            row = compat.build_cudnn(framework, v, prefix + cuda.replace(".", ""))
            if row is None:
                continue
            compared += 1
            # the table writes TF's cuDNN as the tested series (8.9), PyTorch's as the exact wheel version
            assert pin == row.cudnn or pin.startswith(row.cudnn + "."), (framework, v, pin, row.cudnn)
    assert compared >= 25
