"""The recipes against the committed registry data (data/registry/): a build that claims a release, OS,
arch or Python the registry has no wheel for, or a release/platform the registry shows that no build
covers, fails here unless data/registry/exceptions.toml says why. Builds that install from an index the
sync did not read (download.pytorch.org without a saved copy), or not through pip, are printed with the
reason they were not checked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from support import FACTS

from fwsetup.errors import RecipeError
from fwsetup.recipes.load import load_recipes, read_toml, shipped_recipes_dir
from fwsetup.recipes.parsers import parse_requirement
from fwsetup.recipes.validate import parse_recipe
from fwsetup.registry import load_registry, read_registry
from fwsetup.registry.agree import compare, load_exceptions

SYNCED = ["jax", "keras", "mxnet", "pytensor", "pytorch", "tensorflow", "theano"]


@pytest.mark.parametrize("name", SYNCED)
def test_recipe_agrees_with_registry_data(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = load_recipes(None).get(name)
    reg = load_registry(name)
    assert reg is not None, f"no data/registry/{name}.json: run scripts/sync-registry"
    rep = compare(recipe, reg, load_exceptions())
    assert rep.checked > 0
    reasons = Counter(line.split("): ", 1)[1] for line in rep.exempt)
    with capsys.disabled():  # not silently: the builds not checked, and why (one line per reason)
        for why, n in sorted(reasons.items()):
            print(f"\n  registry: {name}: {n} build(s) not checked: {why}", end="")
        if reasons:
            print()
    assert rep.problems == [], "\n".join(rep.problems)


def test_every_exception_is_still_needed() -> None:
    exceptions = load_exceptions()
    used = set()
    for name in SYNCED:
        reg = load_registry(name)
        assert reg is not None
        used |= compare(load_recipes(None).get(name), reg, exceptions).used
    stale = [
        f"{e.kind} {e.recipe} {e.distribution} {e.versions or ''}".strip()
        for e in exceptions
        if e not in used
    ]
    assert stale == [], "exceptions.toml entries no difference needs any more"


def test_every_exception_has_a_source() -> None:
    for e in load_exceptions():
        assert e.source.startswith("https://") and len(e.reason) > 20


def _recipe(tmp_path: Path, builds: str) -> object:
    text = (
        """
name = "demo"
title = "Demo"
"""
        + FACTS
        + f"""[build_defaults]
requirements = ["demo=={{version}}"]
{builds}
"""
    )
    path = tmp_path / "demo.toml"
    path.write_text(text)
    recipe, problems = parse_recipe(read_toml(path), path=str(path))
    assert not problems, problems
    return recipe


DATA = """{
  "schema_version": 1, "framework": "demo", "synced": "2026-11-28",
  "sources": ["https://pypi.org/pypi/demo/json"],
  "not_synced": ["https://download.example.org/whl/cu128"],
  "distributions": {"demo": {
    "1.0.0": [
      {"filename": "demo-1.0.0-cp311-cp311-manylinux_2_28_x86_64.whl", "index": "pypi", "python_tag": "cp311", "abi_tag": "cp311", "platform_tag": "manylinux_2_28_x86_64"},
      {"filename": "demo-1.0.0-cp312-cp312-manylinux_2_28_x86_64.whl", "index": "pypi", "python_tag": "cp312", "abi_tag": "cp312", "platform_tag": "manylinux_2_28_x86_64"},
      {"filename": "demo-1.0.0-cp313-cp313t-manylinux_2_28_x86_64.whl", "index": "pypi", "python_tag": "cp313", "abi_tag": "cp313t", "platform_tag": "manylinux_2_28_x86_64"}
    ],
    "1.1.0": [
      {"filename": "demo-1.1.0-cp312-cp312-macosx_11_0_arm64.whl", "index": "pypi", "python_tag": "cp312", "abi_tag": "cp312", "platform_tag": "macosx_11_0_arm64"},
      {"filename": "demo-1.1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "index": "pypi", "python_tag": "cp312", "abi_tag": "cp312", "platform_tag": "manylinux_2_28_x86_64"}
    ]
  }}
}"""


@pytest.fixture
def reg(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "demo.json"
    path.write_text(DATA)
    return read_registry(path)


def test_agreeing_recipe_has_no_problem(tmp_path: Path, reg) -> None:  # type: ignore[no-untyped-def]
    recipe = _recipe(
        tmp_path,
        """
[[builds]]
versions = ["1.0.0"]
variant = "cpu"
python = ">=3.11,<3.13"
[[builds]]
versions = ["1.1.0"]
variant = "cpu"
python = ">=3.12,<3.13"
[[builds]]
versions = ["1.1.0"]
variant = "cpu"
os = ["darwin"]
arch = ["arm64"]
python = ">=3.12,<3.13"
""",
    )
    rep = compare(recipe, reg)
    assert rep.problems == [] and rep.checked == 4  # linux x86_64 3.11 3.12, 1.1.0 linux x86_64 + macOS arm64


def test_claim_without_wheel_and_release_without_build_fail(tmp_path: Path, reg) -> None:  # type: ignore[no-untyped-def]
    recipe = _recipe(
        tmp_path,
        """
[[builds]]
versions = ["1.0.0"]
variant = "cpu"
python = ">=3.11,<3.14"
""",
    )
    rep = compare(recipe, reg)
    # 3.13 is only a free-threaded wheel: not a claim the data backs; 1.1.0 is published and missing
    assert any("claims linux x86_64 Python 3.13" in p for p in rep.problems)
    assert any("demo 1.1.0 is on PyPI; no build of the recipe has it" in p for p in rep.problems)
    assert len(rep.problems) == 2


def test_platform_and_python_the_recipe_lacks_fail_unless_excused(tmp_path: Path, reg) -> None:  # type: ignore[no-untyped-def]
    recipe = _recipe(
        tmp_path,
        """
[[builds]]
versions = ["1.0.0"]
variant = "cpu"
python = ">=3.11,<3.12"
[[builds]]
versions = ["1.1.0"]
variant = "cpu"
python = ">=3.12,<3.13"
""",
    )
    rep = compare(recipe, reg)
    assert sorted(rep.problems) == sorted(
        [
            f"{tmp_path}/demo.toml: PyPI has demo 1.0.0 for linux x86_64 Python 3.12; the recipe's python range leaves it out",
            f"{tmp_path}/demo.toml: PyPI has demo 1.1.0 for darwin arm64; no build of the recipe has it",
        ]
    )
    exc = tmp_path / "exceptions.toml"
    exc.write_text(
        """
[[not_in_recipe]]
recipe = "demo"
distribution = "demo"
os = "darwin"
reason = "macOS is not part of this recipe on purpose"
source = "https://example.org/why"

[[not_in_recipe]]
recipe = "demo"
distribution = "demo"
versions = ["1.0.0"]
python = ">=3.12"
reason = "1.0.0 crashes on 3.12 at import"
source = "https://example.org/issue"
"""
    )
    rep = compare(recipe, reg, load_exceptions(exc))
    assert rep.problems == [] and len(rep.excused) == 2 and len(rep.used) == 2


def test_unsynced_index_is_exempt_with_its_reason(tmp_path: Path, reg) -> None:  # type: ignore[no-untyped-def]
    recipe = _recipe(
        tmp_path,
        """
[[builds]]
versions = ["1.0.0", "1.1.0"]
variant = "cu128"
accelerator = "cuda"
cuda = "12.8"
arch = ["aarch64"]
python = ">=3.11,<3.13"
index_url = "https://download.example.org/whl/cu128"
""",
    )
    rep = compare(recipe, reg)
    assert rep.exempt == [
        "1.0.0 cu128 (linux aarch64): index https://download.example.org/whl/cu128 not synced (no saved copy given to the sync)",
        "1.1.0 cu128 (linux aarch64): index https://download.example.org/whl/cu128 not synced (no saved copy given to the sync)",
    ]
    # the releases count as covered; the platforms the PyPI data shows do not
    assert sorted(p.split(": ", 1)[1] for p in rep.problems) == [
        "PyPI has demo 1.0.0 for linux x86_64; no build of the recipe has it",
        "PyPI has demo 1.1.0 for darwin arm64; no build of the recipe has it",
        "PyPI has demo 1.1.0 for linux x86_64; no build of the recipe has it",
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[[not_in_recipe]]\nrecipe = "a"\ndistribution = "b"\nreason = "r"\n', "not_in_recipe[0].source"),
        (
            '[[not_in_recipe]]\nrecipe = "a"\ndistribution = "b"\nreason = "r"\nsource = "http://x"\n',
            "not_in_recipe[0].source",
        ),
        (
            '[[not_in_registry]]\nrecipe = "a"\ndistribution = "b"\nreason = "r"\nsource = "https://x"\ncolour = 1\n',
            "not_in_registry[0].colour",
        ),
        ("not_in_recipe = 3\n", "not_in_recipe"),
        ('[[not_in_recipes]]\nrecipe = "a"\n', "not_in_recipes"),
    ],
)
def test_malformed_exceptions_name_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "exceptions.toml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=f"^{path}: {where.replace('[', '.').replace(']', '.')}"):
        load_exceptions(path)


def test_shipped_recipes_dir_is_the_one_compared() -> None:
    assert (shipped_recipes_dir() / "pytorch.toml").is_file()


def _cuda_of(requirement: str) -> str | None:
    """The CUDA major.minor an NVIDIA runtime requirement pins or starts from ("==12.3.101" -> "12.3")."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    for spec in req.specifier:
        if spec.operator in ("==", ">=", "==="):
            return ".".join(spec.version.split(".")[:2])
    return None


def test_cuda_of_pip_builds_is_the_runtime_their_wheels_pull() -> None:
    """A build installed from PyPI with a CUDA (tensorflow[and-cuda]) says the CUDA that PyPI's metadata
    makes pip install: the nvidia-cuda-runtime / cuda-toolkit requirement of that release and extra."""

    checked = 0
    for name in SYNCED:
        reg = load_registry(name)
        assert reg is not None
        for b in load_recipes(None).get(name).builds:
            if not b.cuda or b.index_url:
                continue
            for text in b.requirements:
                req = parse_requirement(text)
                rel = reg.release(req.name, b.version)
                if rel is None:
                    continue
                extras = {e.lower() for e in req.extras}
                pulls = [
                    r
                    for r in rel.requires
                    if r.lower().startswith(("nvidia-cuda-runtime", "cuda-toolkit"))
                    and ("extra ==" not in r or any(f"'{e}'" in r or f'"{e}"' in r for e in extras))
                ]
                for r in pulls:
                    checked += 1
                    assert _cuda_of(r) == b.cuda, (name, b.version, b.variant, r)
    assert checked >= 10  # TensorFlow 2.14-2.21 [and-cuda]


def test_pypi_default_cuda_of_every_torch_release_is_a_recipe_build() -> None:
    """PyPI's Linux x86_64 torch wheel pulls one CUDA (issue 11: the 'PyPI default' notes); the recipe has a
    build of that release with that CUDA on Linux x86_64."""
    reg = load_registry("pytorch")
    assert reg is not None
    builds = load_recipes(None).get("pytorch").builds
    seen = 0
    for version in reg.versions("torch"):
        rel = reg.release("torch", version)
        runtime = [
            r for r in (rel.requires if rel else []) if r.startswith(("nvidia-cuda-runtime", "cuda-toolkit"))
        ]
        if not runtime:
            continue
        cuda = _cuda_of(runtime[0])
        seen += 1
        assert any(
            b.version == version and b.cuda == cuda and "linux" in b.os and "x86_64" in b.arch for b in builds
        ), f"torch {version}: PyPI's wheel pulls CUDA {cuda}; no recipe build of it"
    assert seen == len(reg.versions("torch"))
