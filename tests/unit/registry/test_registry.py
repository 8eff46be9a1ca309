"""fwsetup.registry: the committed data, the API the planner reads, and malformed files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.tags import Tag

from fwsetup.errors import RecipeError
from fwsetup.registry import Wheel, load_registry, read_registry, registry_dir
from fwsetup.registry.platforms import parse_platform


def test_committed_torch_data_answers_by_release_and_tag() -> None:
    reg = load_registry("pytorch")
    assert reg is not None and reg.framework == "pytorch"
    assert reg.synced[:2] == "20" and any("pypi.org/pypi/torch" in s for s in reg.sources)
    assert "2.8.0" in reg.versions("torch")
    wheels = reg.wheels("torch", "2.8")  # "2.8" finds 2.8.0
    assert wheels == reg.wheels("torch", "2.8.0") and wheels
    cp311 = [w for w in wheels if Tag("cp311", "cp311", "manylinux_2_28_x86_64") in w.tags()]
    assert len(cp311) == 1
    w = cp311[0]
    assert w.index == "pypi" and w.size and w.size > 10_000_000 and len(w.sha256 or "") == 64
    assert w.filename == "torch-2.8.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    # torch 2.8 has no macOS x86_64 wheel; 2.2.2 does
    assert not any(p.runs_on("darwin", "x86_64") for w in wheels for p in w.platforms())
    old = reg.wheels("torch", "2.2.2")
    assert any(p.runs_on("darwin", "x86_64") and p.macos_floor == (10, 9) for w in old for p in w.platforms())
    assert reg.wheels("torch", "1.0.0") == [] and reg.versions("no-such-dist") == []


def test_compressed_tag_sets_expand() -> None:
    reg = load_registry("tensorflow")
    assert reg is not None
    w = next(
        w
        for w in reg.wheels("tensorflow", "2.16.2")
        if w.platform_tag == "manylinux_2_17_x86_64.manylinux2014_x86_64" and w.python_tag == "cp311"
    )
    assert {t.platform for t in w.tags()} == {"manylinux_2_17_x86_64", "manylinux2014_x86_64"}
    assert [p.libc_floor for p in w.platforms()] == [(2, 17), (2, 17)]


def test_release_info_keeps_requires_python_and_the_pypi_default_cuda() -> None:
    reg = load_registry("pytorch")
    assert reg is not None
    rel = reg.release("torch", "2.14.0")
    assert rel is not None and rel.requires_python == ">=3.10"
    # the CUDA PyPI's torch 2.14 wheel pulls (issue 11: the "PyPI default" recheck)
    assert any(r.startswith("cuda-toolkit") and "==13.0" in r for r in rel.requires)
    jax = load_registry("jax")
    assert jax is not None and {"jaxlib", "jax-cuda12-plugin"} <= set(jax.distributions())


def test_free_threaded_wheels_are_apart() -> None:
    reg = load_registry("pytorch")
    assert reg is not None
    ft = [w for w in reg.wheels("torch", "2.14.0") if w.free_threaded]
    assert ft and all(w.abi_tag.endswith("t") for w in ft)
    assert not any(w.free_threaded for w in reg.wheels("torch", "2.0.0"))


@pytest.mark.parametrize(
    ("tag", "os", "arch", "libc", "floor", "macos"),
    [
        ("manylinux1_x86_64", "linux", ("x86_64",), "glibc", (2, 5), None),
        ("manylinux2010_x86_64", "linux", ("x86_64",), "glibc", (2, 12), None),
        ("manylinux2014_aarch64", "linux", ("aarch64",), "glibc", (2, 17), None),
        ("manylinux_2_28_x86_64", "linux", ("x86_64",), "glibc", (2, 28), None),
        ("musllinux_1_2_x86_64", "linux", ("x86_64",), "musl", (1, 2), None),
        ("linux_aarch64", "linux", ("aarch64",), "glibc", None, None),
        ("macosx_10_9_x86_64", "darwin", ("x86_64",), None, None, (10, 9)),
        ("macosx_11_0_arm64", "darwin", ("arm64",), None, None, (11, 0)),
        ("macosx_10_9_universal2", "darwin", ("arm64", "x86_64"), None, None, (10, 9)),
        ("win_amd64", "windows", ("x86_64",), None, None, None),
        ("win_arm64", "windows", ("aarch64",), None, None, None),
        ("any", "any", (), None, None, None),
    ],
)
def test_platform_tags_read(tag: str, os: str, arch: tuple[str, ...], libc, floor, macos) -> None:  # type: ignore[no-untyped-def]
    p = parse_platform(tag)
    assert (p.os, p.arch, p.libc, p.libc_floor, p.macos_floor) == (os, arch, libc, floor, macos)


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert load_registry("nothing", tmp_path) is None
    assert load_registry("caffe") is None  # no pinned distribution: never synced


GOOD = {
    "schema_version": 1,
    "framework": "demo",
    "synced": "2026-11-28",
    "sources": ["https://pypi.org/pypi/demo/json"],
    "distributions": {
        "demo": {
            "1.0": [
                {
                    "filename": "demo-1.0-py3-none-any.whl",
                    "index": "pypi",
                    "python_tag": "py3",
                    "abi_tag": "none",
                    "platform_tag": "any",
                    "size": 10,
                    "sha256": "a" * 64,
                }
            ]
        }
    },
}


def _write(tmp_path: Path, doc: object, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_good_file_reads_and_is_cached(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    reg = load_registry("demo", tmp_path)
    assert reg is not None and reg is load_registry("demo", tmp_path)
    (w,) = reg.wheels("demo", "1.0")
    assert isinstance(w, Wheel) and w.tags() == frozenset({Tag("py3", "none", "any")})


def _bad(**changes: object) -> dict[str, object]:
    doc = json.loads(json.dumps(GOOD))
    wheel = doc["distributions"]["demo"]["1.0"][0]
    for key, value in changes.items():
        if key in wheel:
            wheel[key] = value
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "key", "what"),
    [
        (_bad(size="big"), "distributions.demo.1.0[0].size", "expected an integer"),
        (_bad(sha256="xyz"), "distributions.demo.1.0[0].sha256", "expected 64 hex digits"),
        (
            _bad(filename="demo-1.0-cp311-cp311-win_amd64.whl"),
            "distributions.demo.1.0[0].filename",
            "ending in",
        ),
        (_bad(schema_version=2), "schema_version", "expected schema_version 1"),
        (_bad(framework="other"), "framework", "expected 'demo'"),
        (_bad(synced="yesterday"), "synced", "expected a date"),
        (_bad(colour="red"), "(top level)", "unknown field colour"),
        ("{not json", "(file)", "expected JSON"),
    ],
)
def test_malformed_file_names_file_and_key(tmp_path: Path, doc: object, key: str, what: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(RecipeError) as err:
        read_registry(path)
    assert err.value.message.startswith(f"{path}: {key}: ")
    assert what in err.value.message
    assert err.value.exit_code == 2 and "sync-registry" in str(err.value)


def test_every_committed_file_reads() -> None:
    files = sorted(registry_dir().glob("*.json"))
    assert {p.stem for p in files} >= {"pytorch", "tensorflow", "jax", "keras", "mxnet", "theano", "pytensor"}
    for path in files:
        reg = read_registry(path)
        for dist in reg.distributions():
            for version in reg.versions(dist):
                for w in reg.wheels(dist, version):
                    assert w.tags(), w.filename  # every stored tag set parses


def test_import_is_cheap() -> None:
    code = (
        "import sys, fwsetup.registry as r; r.load_registry('pytorch');"
        "print(sorted(m for m in ('packaging.tags', 'urllib.request', 'http.client', 'email.parser')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_planning_reads_only_the_planned_recipes_registry_data() -> None:
    """Issue 11's speed guard: `fwsetup plan pytorch` reads data/registry/pytorch.json and no other file,
    and none of the maintainer modules (sync, agree) or HTTP clients."""
    code = r"""
import sys
import fwsetup.registry as reg
read = []
orig = reg.read_registry
def spy(path, name=None):
    read.append(path.name)
    return orig(path, name)
reg.read_registry = spy
from fwsetup.plan import Request, make_plan
from fwsetup.profile import load
from fwsetup.recipes.load import load_recipes
recipe = load_recipes(None).get("pytorch")
make_plan(load("tests/fixtures/datacenter-h100.json"), recipe, Request(framework="pytorch"))
make_plan(load("tests/fixtures/intel-mac.json"), recipe, Request(framework="pytorch"))
print(read, sorted(m for m in ("fwsetup.registry.sync", "fwsetup.registry.agree", "urllib.request") if m in sys.modules))
"""
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    read, modules = out.stdout.strip().split("] [")
    assert set(read.strip("[]").replace("'", "").split(", ")) <= {
        "pytorch.json",
        "",
    }  # never another recipe's
    assert read.count("pytorch.json") <= 1 and modules == "]"  # read once; no sync, agree, HTTP
