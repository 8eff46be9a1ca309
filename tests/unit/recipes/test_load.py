"""The recipe loader: every shipped recipe validates; broken recipes name the file, the key and what was
expected; `versions` expansion, [build_defaults] and "{version}"; aliases; the on-disk cache."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support import FACTS

from fwsetup.backends.docker.render import check_renderable
from fwsetup.errors import RecipeError, UsageError
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.plan.container import choose_base
from fwsetup.recipes import load as mod
from fwsetup.recipes.load import load_recipe_file, load_recipes, read_toml, shipped_recipes_dir, validate_dir
from fwsetup.recipes.schema import DockerSpec


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's ~/.cache from tests.
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def write(folder: Path, name: str, body: str, *, facts: bool = True) -> Path:
    path = folder / f"{name}.toml"
    text = textwrap.dedent(body).lstrip()
    if facts:
        text = text.replace("#FACTS", FACTS)
    path.write_text(text)
    return path


GOOD = """
name = "demo"
title = "Demo"
aliases = ["dm"]
never_install = ["demo-placeholder"]
#FACTS
[build_defaults]
requirements = ["demo=={version}"]
python = ">=3.10,<3.14"
conda = { channels = ["conda-forge"] }

[[builds]]
versions = ["1.0.0", "1.1.0"]
variant = "cpu"
conda = { packages = ["demo={version}"] }

[[builds]]
version = "1.1.0"
variant = "cu126"
accelerator = "cuda"
cuda = "12.6"
compute_capabilities = ["8.0", "9.0"]
python = ">=3.11"
docker = { base_image = "nvidia/cuda:12.6.3-runtime-ubuntu24.04" }
"""


def test_every_shipped_recipe_is_valid() -> None:
    recipes, problems = validate_dir(shipped_recipes_dir())
    assert problems == []
    assert len(recipes) >= 10
    names = {r.name for r in recipes}
    assert {"pytorch", "tensorflow", "jax", "keras", "caffe"} <= names


def test_versions_expand_and_defaults_merge(tmp_path: Path) -> None:
    recipe = load_recipe_file(write(tmp_path, "demo", GOOD))
    assert [(b.version, b.variant) for b in recipe.builds] == [
        ("1.0.0", "cpu"),
        ("1.1.0", "cpu"),
        ("1.1.0", "cu126"),
    ]
    first, _, gpu = recipe.builds
    # "{version}" is replaced in requirements and conda packages; defaults fill what an entry leaves out.
    assert first.requirements == ["demo==1.0.0"]
    assert first.conda is not None
    assert first.conda.packages == ["demo=1.0.0"]
    assert first.conda.channels == ["conda-forge"]  # tables merge one level deep
    assert first.python == ">=3.10,<3.14"
    assert gpu.python == ">=3.11"  # the entry's own key wins
    assert gpu.requirements == ["demo==1.1.0"]
    assert recipe.path.endswith("demo.toml")


def problems_of(tmp_path: Path, body: str, *, facts: bool = True) -> list[str]:
    write(tmp_path, "demo", body, facts=facts)
    _, problems = validate_dir(tmp_path)
    return problems


SECOND = {
    "version": '"1.1.0"',
    "variant": '"cu126"',
    "accelerator": '"cuda"',
    "cuda": '"12.6"',
    "compute_capabilities": '["8.0", "9.0"]',
    "python": '">=3.11"',
}


def with_second_build(**override: str | None) -> str:
    """GOOD with its second [[builds]] entry changed (None removes a key)."""
    fields = {**SECOND, **override}
    entry = "\n".join(f"{k} = {v}" for k, v in fields.items() if v is not None)
    return (
        GOOD.split("[[builds]]")[0]
        + "[[builds]]"
        + GOOD.split("[[builds]]")[1]
        + "[[builds]]\n"
        + entry
        + "\n"
    )


@pytest.mark.parametrize(
    ("field", "value", "key", "expected"),
    [
        (
            "python",
            '"3.11+"',
            "builds[1].python",
            "expected a PEP 440 specifier such as '>=3.10,<3.14', got '3.11+'",
        ),
        ("python", "311", "builds[1].python", "expected a string, got 311"),
        ("pyhton", '">=3.11"', "builds[1].pyhton", "unknown key; did you mean `python`?"),
        ("compute_capabilities", '["86"]', "builds[1].compute_capabilities[0]", "such as '8.6', got '86'"),
        (
            "accelerator",
            '"gpu"',
            "builds[1].accelerator",
            "expected one of 'cpu', 'cuda', 'mps', 'rocm', 'xpu', got 'gpu'",
        ),
        ("cuda", '"twelve"', "builds[1].cuda", "expected a CUDA version such as '12.6'"),
        ("requirements", '["torch>>2"]', "builds[1].requirements[0]", "expected a PEP 508 requirement"),
        ("os", '"linux"', "builds[1].os", "expected an array, got 'linux'"),
        ("os", '["linx"]', "builds[1].os[0]", "expected one of 'linux', 'darwin', 'windows', got 'linx'"),
        ("version", '"2.x"', "builds[1].version", "expected a version such as '2.5.1', got '2.x'"),
        ("min_driver", '"latest"', "builds[1].min_driver", "expected a driver version"),
        ("index_url", '"download.pytorch.org/whl"', "builds[1].index_url", "expected an https://"),
        ("variant", None, "builds[1].variant", "missing: this key is required"),
    ],
)
def test_a_broken_build_names_file_key_and_expectation(
    tmp_path: Path, field: str, value: str | None, key: str, expected: str
) -> None:
    problems = problems_of(tmp_path, with_second_build(**{field: value}))
    match = [p for p in problems if f": {key}: " in p]
    assert match, problems
    assert match[0].startswith(f"{tmp_path / 'demo.toml'}: ")
    assert expected in match[0]


def test_cuda_build_without_cuda_version(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, with_second_build(cuda=None))
    assert any(": builds[1].cuda: missing" in p and "12.6" in p for p in problems), problems


def test_variant_must_agree_with_accelerator(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD.replace('accelerator = "cuda"\n', 'accelerator = "cpu"\n'))
    # cuda set on a CPU build, and a cu126 variant that is not a CUDA build
    assert any("builds[1].accelerator: expected 'cuda' for variant 'cu126'" in p for p in problems), problems
    assert any("builds[1].cuda: only meaningful for accelerator = 'cuda'" in p for p in problems), problems
    problems = problems_of(tmp_path, GOOD.replace('variant = "cu126"', 'variant = "cu118"'))
    assert any("builds[1].variant: expected a variant that matches cuda = '12.6'" in p for p in problems), (
        problems
    )


def test_error_in_an_expanded_entry_names_the_entry_and_versions(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path, GOOD.replace('versions = ["1.0.0", "1.1.0"]', 'versions = ["1.0.0", "1.x"]')
    )
    assert any(
        ": builds[0].versions (for version '1.x' of `versions`): expected a version" in p for p in problems
    )
    # A problem shared by every expanded build is reported once, naming the versions.
    body = GOOD.replace('variant = "cpu"', 'variant = "cpu"\nmultigpu = true')
    problems = problems_of(tmp_path, body)
    assert len([p for p in problems if "multigpu" in p]) == 1
    assert "builds[0].multigpu (for versions '1.0.0', '1.1.0' of `versions`)" in problems[0]
    assert "did you mean `multi_gpu`" in problems[0]


def test_error_from_build_defaults_names_build_defaults(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD.replace('python = ">=3.10,<3.14"', 'python = "three"'))
    assert any(": build_defaults.python (merged into builds[0])" in p and "PEP 440" in p for p in problems), (
        problems
    )


def test_facts_problems(tmp_path: Path) -> None:
    body = GOOD.replace("#FACTS", FACTS.replace('status = "active"', 'status = "alive"'))
    problems = problems_of(tmp_path, body)
    assert any(": facts.status: expected one of 'active'" in p and "got 'alive'" in p for p in problems), (
        problems
    )
    problems = problems_of(
        tmp_path, GOOD.replace("#FACTS", FACTS.replace('developer = "fwsetup tests"\n', ""))
    )
    assert any(": facts.developer: missing" in p for p in problems), problems


def test_toml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "demo", 'name = "demo"\ntitle = "Demo"\nbroken = \n')
    with pytest.raises(RecipeError) as err:
        read_toml(path)
    assert f"{path}, line 3" in str(err.value)
    assert "TOML syntax error" in str(err.value)
    _, problems = validate_dir(tmp_path)
    assert problems and "line 3" in problems[0]


def test_never_install_names_are_refused_in_any_recipe(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD)
    write(
        tmp_path,
        "other",
        """
        name = "other"
        title = "Other"
        #FACTS
        [[builds]]
        version = "1.0"
        variant = "cpu"
        requirements = ["Demo_Placeholder==0.1"]
        """,
    )
    _, problems = validate_dir(tmp_path)
    assert len(problems) == 1
    assert "other.toml: builds[0].requirements[0]" in problems[0]
    assert "'demo' recipe lists in never_install" in problems[0]


def test_never_install_applies_to_the_conda_pip_section(tmp_path: Path) -> None:
    body = GOOD.replace('conda = { packages = ["demo={version}"] }', 'conda = { pip = ["demo-placeholder"] }')
    problems = problems_of(tmp_path, body)
    assert any(": builds[0].conda.pip[0]" in p and "never_install" in p for p in problems), problems


def test_shipped_placeholders_are_refused_in_a_users_recipe(tmp_path: Path) -> None:
    # PyPI `caffe` is an empty placeholder (the caffe recipe's never_install): a user recipe may not use it.
    write(
        tmp_path,
        "mycaffe",
        """
        name = "mycaffe"
        title = "My Caffe"
        #FACTS
        [[builds]]
        version = "1.0"
        variant = "cpu"
        requirements = ["caffe"]
        """,
    )
    _, problems = validate_dir(tmp_path)
    assert any("requirements[0]: names 'caffe'" in p for p in problems), problems


def test_unknown_top_level_key_and_duplicates(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD.replace('title = "Demo"', 'title = "Demo"\ndescripton = "x"'))
    assert any(": descripton: unknown key" in p for p in problems), problems
    dup = GOOD + '\n[[builds]]\nversion = "1.0.0"\nvariant = "cpu"\n'
    problems = problems_of(tmp_path, dup)
    assert any("builds[2]: duplicates builds[0]" in p for p in problems), problems


def test_load_recipe_file_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "demo", GOOD.replace('python = ">=3.11"', 'python = "x"').replace('"9.0"', '"9"'))
    with pytest.raises(RecipeError) as err:
        load_recipe_file(path)
    text = str(err.value)
    assert "2 problems" in text
    assert "builds[1].python" in text and "builds[1].compute_capabilities[1]" in text
    assert err.value.exit_code == 2


def test_lookup_by_name_and_alias_and_suggestion() -> None:
    recipes = load_recipes()
    assert recipes.get("PyTorch").name == "pytorch"
    assert recipes.get("torch").name == "pytorch"  # alias (the PyPI/import name)
    assert recipes.get("tf").name == "tensorflow"
    assert recipes.get("torch7").name == "torch7"  # Lua Torch keeps its own name
    assert recipes.get("lua-torch").name == "torch7"
    with pytest.raises(UsageError) as err:
        recipes.get("tensorflw")
    assert "unknown framework 'tensorflw'" in str(err.value)
    assert "Did you mean tensorflow" in str(err.value)


def test_user_folder_overlays_the_shipped_recipes(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD)
    recipes = load_recipes(tmp_path)
    assert "demo" in recipes.names() and "pytorch" in recipes.names()
    assert recipes.get("dm").name == "demo"


def test_user_folder_with_a_broken_recipe_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "demo", GOOD.replace('variant = "cu126"', "variant = 126"))
    with pytest.raises(RecipeError) as err:
        load_recipes(tmp_path)
    assert "demo.toml: builds[1].variant: expected a string" in str(err.value)


def test_missing_user_folder(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipes(tmp_path / "nope")


def test_cache_is_used_and_invalidated_by_an_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    cache = tmp_path / "cache"
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(cache))
    folder = tmp_path / "r"
    folder.mkdir()
    path = write(folder, "demo", GOOD)
    mod._load.cache_clear()
    first = load_recipes(folder)
    files = list(cache.glob("recipes-*.msgpack"))
    assert len(files) == 1
    mod._load.cache_clear()
    assert load_recipes(folder).recipes == first.recipes  # read back from the cache, same content
    path.write_text(path.read_text().replace('title = "Demo"', 'title = "Demo 2"'))
    mod._load.cache_clear()
    assert load_recipes(folder).get("demo").title == "Demo 2"
    mod._load.cache_clear()


def test_docker_fields_that_reach_a_dockerfile_are_plain_names(tmp_path) -> None:
    # system_packages go into an apt-get RUN line and images into FROM: shell or Dockerfile text is refused
    # with the file and key, before anything is rendered.

    good = (shipped_recipes_dir() / "pytorch.toml").read_text()
    bad = (
        good.replace('name = "pytorch"', 'name = "pytorch"', 1)
        + """
[[builds]]
version = "9.9.9"
variant = "cpu"
requirements = ["torch==9.9.9"]
docker = { base_image = "debian:12\\nRUN curl evil", system_packages = ["libgomp1; rm -rf /"] }
"""
    )
    (tmp_path / "pytorch.toml").write_text(bad)
    _loaded, problems = validate_dir(tmp_path)
    text = "\n".join(str(p) for p in problems)
    assert "docker.base_image" in text and ("image reference" in text or "control characters" in text)
    assert "docker.system_packages[0]" in text and "Debian package name" in text


def test_render_refuses_a_plan_with_shell_text_and_a_bad_base() -> None:
    plan = Plan(
        status="ok", framework="pytorch", version="2.13.0", variant="cpu", python="3.11",
        smoke=SmokeSpec(script="pytorch"), docker=DockerSpec(system_packages=["vim && curl x | sh"]),
    )  # fmt: skip
    with pytest.raises(UsageError, match="Debian package names"):
        check_renderable(plan)
    with pytest.raises(UsageError, match="--base"):
        choose_base(plan, "debian:12 AS x\nRUN id")
    assert choose_base(plan, "fwsetup/bookworm-base:latest") == ("fwsetup/bookworm-base:latest", "--base")
