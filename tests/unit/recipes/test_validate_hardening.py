"""Issue 9, items 2 and 9: recipe text never becomes Dockerfile, YAML, JSON or shell text; recipes never
bring insecure sources in silently.

Each attack is reproduced first (a user recipe under --recipes), then the rule is checked systematically
with hypothesis: any string in any rendered field either makes the loader refuse the recipe (RecipeError,
exit 2, naming the file and the key) or is rendered escaped, adding no line to the Dockerfile, the bake
file, environment.yml or the printed shell commands, and reading back as the same value.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FACTS

from fwsetup.backends.conda_env import CondaEnv, conda_env_for, render_environment_yml
from fwsetup.backends.docker.backend import render_dockerfile
from fwsetup.backends.docker.render import ImageOptions, _comment, _dq
from fwsetup.cli import main
from fwsetup.errors import RecipeError, UsageError
from fwsetup.ops.commands import plan_commands
from fwsetup.ops.matrix import bake_file, matrix_entries
from fwsetup.plan import Plan, Request, SmokeSpec, make_plan, plan_from_json
from fwsetup.profile import load as load_profile
from fwsetup.recipes.load import load_recipes, validate_dir
from fwsetup.recipes.validate import control_character, insecure_sources, parse_recipe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NO_PIP: dict[str, str] = {"PIP_CONFIG_FILE": "/dev/null", "HOME": "/nonexistent"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def toml_str(value: str) -> str:
    """A TOML basic string holding exactly `value` (control characters escaped, as TOML requires)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def recipe_text(
    *,
    title: str = "EvilFW",
    variant: str = "cpu",
    env: dict[str, str] | None = None,
    requirements: list[str] | None = None,
    index_url: str | None = None,
    extra: str = "",
) -> str:
    env = {"EVIL_MODE": "1"} if env is None else env
    requirements = ["evilfw==1.0"] if requirements is None else requirements
    lines = [
        'name = "evilfw"',
        f"title = {toml_str(title)}",
        'smoke = "pytorch"',
        FACTS,
        "[[builds]]",
        'version = "1.0"',
        f"variant = {toml_str(variant)}",
        'python = ">=3.8"',
        'arch = ["x86_64", "aarch64"]',
        f"requirements = [{', '.join(toml_str(r) for r in requirements)}]",
        "env = {" + ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in env.items()) + "}",
    ]
    if index_url is not None:
        lines.append(f"index_url = {toml_str(index_url)}")
    return "\n".join(lines) + "\n" + textwrap.dedent(extra)


def write_recipe(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evilfw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwsetup", *map(str, args)], check=False, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FWSETUP_NO_CACHE": "1", "COLUMNS": "300", "PIP_CONFIG_FILE": "/dev/null",
             "HOME": "/nonexistent"},
    )  # fmt: skip


def profile() -> Any:
    return load_profile(FIXTURES / "no-gpu.json")


def plan_of(text: str, *, method: str = "docker", allow_insecure: bool = False) -> Plan:
    import tomllib

    recipe, problems = parse_recipe(tomllib.loads(text), path="evilfw.toml")
    assert recipe is not None, problems
    request = Request(
        framework="evilfw", want="cpu", python="3.11", method=method, allow_insecure=allow_insecure
    )  # type: ignore[arg-type]
    return make_plan(profile(), recipe, request)


# ---------------------------------------------------------------------------------------------------------
# Item 2: the attacks, reproduced


INJECT = "\nRUN touch /tmp/PWNED\nENV X"


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"env": {"A" + INJECT: "1"}}, "builds[0].env."),
        ({"env": {"EVIL": "1" + INJECT}}, "builds[0].env.EVIL"),
        ({"title": "EvilFW" + INJECT}, "title"),
        ({"variant": "cpu" + INJECT}, "builds[0].variant"),
        ({"variant": "cpu\r\nRUN x"}, "builds[0].variant"),
        ({"requirements": ["evilfw==1.0" + INJECT]}, "builds[0].requirements[0]"),
        ({"title": "Evil\u2028FW"}, "title"),  # a line separator (YAML and str.splitlines break there)
        ({"title": "Evil\x85FW"}, "title"),  # NEL
        ({"title": "Evil\u202eFW"}, "title"),  # a bidi override (text that reads otherwise than it is)
    ],
)
def test_control_characters_in_any_recipe_string_are_refused_at_load(
    tmp_path: Path, kw: dict, key: str
) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(**kw))
    recipes, problems = validate_dir(path.parent)
    assert recipes == [] and len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {key}"), problems[0]
    assert "control characters" in problems[0]


def test_the_pwned_recipe_fails_validate_and_plan_with_exit_2_naming_file_and_key(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(env={"EVIL": "1\nRUN touch /tmp/PWNED"}))
    for args in (
        ("recipes", "validate", path.parent),
        ("--recipes", path.parent, "plan", "evilfw", "--json"),
    ):
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert res.stdout == ""
        assert f"{path}: builds[0].env.EVIL" in res.stderr.replace("\n", "")
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("variant", "ok"),
    [("cpu", True), ("metal", True), ("tensorflow-cpu", True), ("jax.tpu_v5", True), ("a/b", False),
     ("..", False), ("cpu..x", False), ("../../etc", False), ("-cpu", False), ("cpu variant", False),
     ("c" * 65, False), ("cpu:latest", False)],
)  # fmt: skip
def test_variant_becomes_a_tag_and_a_folder_so_paths_are_refused(
    tmp_path: Path, variant: str, ok: bool
) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(variant=variant))
    recipes, problems = validate_dir(path.parent)
    if ok:
        assert problems == [] and len(recipes) == 1
    else:
        assert len(problems) == 1 and problems[0].startswith(
            f"{path}: builds[0].variant: expected a variant name"
        )


@pytest.mark.parametrize(
    ("name", "ok"),
    [("KERAS_BACKEND", True), ("_X1", True), ("1X", False), ("A-B", False), ("A B", False), ("A=B", False),
     ("", False), ("Ä", False), ("A$B", False)],
)  # fmt: skip
def test_env_keys_are_identifiers(tmp_path: Path, name: str, ok: bool) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(env={name: "1"}))
    _, problems = validate_dir(path.parent)
    if ok:
        assert problems == []
    else:
        assert len(problems) == 1 and "expected an environment variable name" in problems[0], problems
        assert problems[0].startswith(f"{path}: builds[0].env")


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "ld_preload", "DYLD_INSERT_LIBRARIES", "PATH", "PYTHONPATH",
     "PYTHONSTARTUP", "BASH_ENV", "GCONV_PATH", "PIP_INDEX_URL", "UV_INDEX_URL", "SSL_CERT_FILE"],
)  # fmt: skip
def test_loader_hijack_variables_are_refused(tmp_path: Path, name: str) -> None:
    """Item 9: env.LD_PRELOAD and the like run other code in every process of the environment or image."""
    path = write_recipe(tmp_path / "r", recipe_text(env={name: "/tmp/evil.so"}))
    _, problems = validate_dir(path.parent)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: builds[0].env.{name}: a recipe may not set {name}"), problems[0]


def test_env_values_are_bounded(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(env={"BIG": "x" * 5000}))
    _, problems = validate_dir(path.parent)
    assert len(problems) == 1 and "at most 4096 characters" in problems[0]


def test_a_version_with_spaces_is_refused(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r", recipe_text().replace('version = "1.0"', 'version = " 1.0"'))
    _, problems = validate_dir(path.parent)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: builds[0].version: expected a version")


def dockerfile_of(plan: Plan) -> str:
    return render_dockerfile(plan, ImageOptions(env=NO_PIP))


def test_safe_env_values_round_trip_through_the_dockerfile(tmp_path: Path) -> None:
    value = "a \"quoted\" $HOME \\ back`tick` 'single' ; && | > ä €"
    text = recipe_text(env={"EVIL": value}, title='Evil "FW" $X')
    plan = plan_of(text)
    base = dockerfile_of(plan_of(recipe_text()))
    df = dockerfile_of(plan)
    assert len(df.splitlines()) == len(base.splitlines())
    (line,) = [ln for ln in df.splitlines() if ln.strip().startswith("EVIL=")]
    assert unquote_dq(line.strip().removeprefix("EVIL=")) == value


def unquote_dq(word: str) -> str:
    """A Dockerfile double-quoted word back to its value (the inverse of docker._dq)."""
    assert word.startswith('"') and word.endswith('"'), word
    return re.sub(r"\\(.)", r"\1", word[1:-1])


# Plans may come from a file (`install --plan FILE`): the renderer checks them again.
def bad_plan(**kw: Any) -> Plan:
    base: dict[str, Any] = {
        "status": "ok", "framework": "pytorch", "title": "PyTorch", "version": "2.13.0", "variant": "cpu",
        "accelerator": "cpu", "method": "docker", "python": "3.11", "requirements": ["torch==2.13.0"],
        "smoke": SmokeSpec(script="pytorch"),
    }  # fmt: skip
    base.update(kw)
    return Plan(**base)


@pytest.mark.parametrize(
    "kw",
    [{"env": {"A\nRUN touch /tmp/PWNED": "1"}}, {"env": {"A B": "1"}}, {"env": {"OK": "1\nRUN x"}},
     {"title": "T\nRUN x"}, {"variant": "cpu\nRUN x"}, {"variant": "../x"}, {"version": "1\rRUN x"},
     {"smoke": SmokeSpec(script="pytorch", env={"A\nB": "1"})}],
)  # fmt: skip
def test_a_plan_from_a_file_with_injected_text_is_not_rendered(kw: dict) -> None:
    plan = plan_from_json(json.dumps(msgspec_builtins(bad_plan(**kw))))
    with pytest.raises(UsageError):
        dockerfile_of(plan)


def msgspec_builtins(plan: Plan) -> Any:
    import msgspec

    return msgspec.to_builtins(plan)


def test_comment_and_quote_filters_never_break_a_line() -> None:

    for text in ["a\nb", "a\rb", "a\x85b", "a\u2028b", "a\x00b", "a\\nb"]:
        assert len(_dq(text).splitlines()) == 1 and len(_comment(text).splitlines()) == 1


def test_environment_yml_header_is_one_line_whatever_it_holds() -> None:

    env = CondaEnv(name="e", channels=("c",), specs=("x",), header=("a\nb\u2028c\x85d\re",))
    text = render_environment_yml(env)
    assert text.splitlines()[0].startswith("# a b c d e")
    assert yaml.safe_load(text)["name"] == "e"


# ---------------------------------------------------------------------------------------------------------
# Item 9: insecure sources


@pytest.mark.parametrize(
    ("kw", "source"),
    [
        ({"index_url": "http://mirror.example/simple"}, "http://mirror.example/simple"),
        ({"requirements": ["evilfw @ http://evil.example/evilfw-1.0-py3-none-any.whl"]},
         "evilfw @ http://evil.example/evilfw-1.0-py3-none-any.whl"),
        ({"requirements": ["evilfw @ file:///tmp/evilfw-1.0-py3-none-any.whl"]},
         "evilfw @ file:///tmp/evilfw-1.0-py3-none-any.whl"),
        ({"requirements": ["evilfw @ https://evil.example/evilfw-1.0-py3-none-any.whl"]},
         "evilfw @ https://evil.example/evilfw-1.0-py3-none-any.whl"),
        ({"extra": '[builds.conda]\nchannels = ["http://conda.example/ch"]\npackages = ["evilfw=1.0"]\n'},
         "http://conda.example/ch"),
    ],
)  # fmt: skip
def test_insecure_sources_refuse_the_plan_unless_allowed_and_the_plan_records_them(
    tmp_path: Path, kw: dict, source: str
) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(**kw))
    assert validate_dir(path.parent)[1] == []  # well-formed; the plan decides
    res = run_cli("--recipes", path.parent, "plan", "evilfw", "--cpu", "--python", "3.11", "--json")
    assert res.returncode == 3, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "refused" and doc["insecure_sources"] == [source]
    assert source in " ".join(doc["reasons"]) and "--allow-insecure" in " ".join(doc["suggestions"])
    res = run_cli(
        "--recipes", path.parent, "plan", "evilfw", "--cpu", "--python", "3.11", "--json", "--allow-insecure"
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "ok" and doc["insecure_sources"] == [source]


def test_https_and_file_indexes_need_no_flag(tmp_path: Path) -> None:
    for url in ("https://download.example/whl/cpu", "file:///srv/wheels/simple"):
        plan = plan_of(recipe_text(index_url=url))
        assert plan.status == "ok" and plan.insecure_sources == [] and plan.index_urls == [url]


def test_install_and_build_refuse_insecure_sources_before_touching_anything(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(index_url="http://mirror.example/simple"))
    target = tmp_path / "env"
    res = run_cli("--recipes", path.parent, "install", "evilfw", "--cpu", "--env", target, "--dry-run")
    assert res.returncode == 3 and "http://mirror.example/simple" in res.stdout + res.stderr
    assert not target.exists()
    res = run_cli("--recipes", path.parent, "build", "evilfw", "--cpu", "--python", "3.11", "--dry-run")
    assert res.returncode == 3, res.stderr
    res = run_cli("--recipes", path.parent, "build", "evilfw", "--cpu", "--python", "3.11", "--dry-run",
                  "--allow-insecure")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "http://mirror.example/simple" in res.stdout


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"index_url": "https://alice:TOKEN@mirror.example/simple"}, "builds[0].index_url"),
        ({"requirements": ["evilfw @ https://alice:TOKEN@evil.example/e-1.0-py3-none-any.whl"]},
         "builds[0].requirements[0]"),
        ({"extra": '[builds.conda]\nchannels = ["https://conda.example/t/TOKEN/ch"]\npackages = ["e=1"]\n'},
         "builds[0].conda.channels[0]"),
    ],
)  # fmt: skip
def test_credentials_in_recipe_urls_are_refused_without_being_shown(
    tmp_path: Path, kw: dict, key: str
) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(**kw))
    res = run_cli("recipes", "validate", path.parent)
    assert res.returncode == 2
    assert f"{path}: {key}: " in res.stderr.replace("\n", "") and "holds credentials" in res.stderr
    assert "TOKEN" not in res.stderr + res.stdout


@pytest.mark.parametrize(
    "url", ["ftp://mirror.example/simple", "mirror.example/simple", "https://mirror.example/a b", "https://"]
)
def test_index_url_message_says_what_is_checked(tmp_path: Path, url: str) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(index_url=url))
    _, problems = validate_dir(path.parent)
    want = (
        f"{path}: builds[0].index_url: expected an https:// URL, a file:// URL (a local folder) or an http:// URL "
        f"(used only with --allow-insecure), without spaces, got {url!r}"
    )
    assert problems == [want]


def test_the_shipped_recipes_have_no_insecure_sources() -> None:

    found = [
        (r.name, b.version, b.variant, insecure_sources(b)) for r in load_recipes(None) for b in r.builds
    ]
    assert [f for f in found if f[3]] == []


def test_the_users_own_http_index_is_not_the_recipes(tmp_path: Path) -> None:
    """The rule is about recipe sources: a PIP_INDEX_URL on loopback (the user's choice) plans fine."""
    path = write_recipe(tmp_path / "r", recipe_text())
    res = subprocess.run(
        [sys.executable, "-m", "fwsetup", "--recipes", str(path.parent), "plan", "evilfw", "--cpu", "--json"],
        check=False, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FWSETUP_NO_CACHE": "1", "PIP_INDEX_URL": "http://127.0.0.1:1/simple",
             "HOME": "/nonexistent"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["insecure_sources"] == []


# ---------------------------------------------------------------------------------------------------------
# Systematic: no recipe string adds a line to any rendered file

# Any text, weighted towards what breaks files: line breaks, quotes, $, backslashes, YAML and JSON syntax.
NASTY = st.sampled_from(list("\n\r\t\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\u202e\"'$\\`{}[]#:;&|<> =-/.%@!*"))
TEXT = st.lists(st.one_of(NASTY, st.characters(codec="utf-8")), max_size=24).map("".join)

# (field, how the fuzzed text goes into the recipe): the fields that reach a rendered file.
FIELDS = {
    "title": lambda v: {"title": "Evil" + v},
    "variant": lambda v: {"variant": "cpu" + v},
    "env_key": lambda v: {"env": {"EVIL" + v: "1"}},
    "env_value": lambda v: {"env": {"EVIL": v}},
    "requirement": lambda v: {"requirements": ["evilfw==1.0" + v]},
    "requirement_marker": lambda v: {"requirements": [f"evilfw==1.0 ; platform_release != {json.dumps(v)}"]},
    "index_url": lambda v: {"index_url": "https://mirror.example/" + v},
    "conda_channel": lambda v: {
        "extra": f"[builds.conda]\nchannels = [{toml_str('c' + v)}]\npackages = ['e=1']\n"
    },
    "conda_package": lambda v: {
        "extra": f"[builds.conda]\nchannels = ['c']\npackages = [{toml_str('e' + v)}]\n"
    },
    "conda_pip": lambda v: {
        "extra": f"[builds.conda]\nchannels = ['c']\npackages = ['e=1']\npip = [{toml_str('evilfw==1.0' + v)}]\n"
    },
}


def renders(plan: Plan, conda_plan: Plan) -> dict[str, str]:
    """Every file a plan is rendered into, and the printed shell commands."""
    import tomllib  # noqa: F401  (keeps the import cost out of the timed examples)

    venv_plan = msgspec.structs.replace(plan, method="venv", docker=None)  # the commands `plan` prints
    out = {"dockerfile": dockerfile_of(plan), "shell": "\n".join(plan_commands(venv_plan, NO_PIP))}
    out["shell_conda"] = "\n".join(plan_commands(conda_plan, NO_PIP))
    out["environment.yml"] = render_environment_yml(conda_env_for(conda_plan, {}, name="e"))
    return out


def bake_of(text: str) -> str:
    import tomllib

    recipe, _ = parse_recipe(tomllib.loads(text), path="evilfw.toml")
    assert recipe is not None
    entries = matrix_entries([recipe], pythons=("3.11",))
    return json.dumps(bake_file(entries, {e.target: f"/ctx/{e.target}" for e in entries}), indent=2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(FIELDS)), value=TEXT)
def test_no_recipe_string_adds_a_line_to_any_rendered_file(field: str, value: str) -> None:
    import tomllib

    text = recipe_text(**FIELDS[field](value))
    raw = tomllib.loads(text)
    recipe, problems = parse_recipe(raw, path="evilfw.toml")
    if recipe is None:
        # Refused at load: one message per problem, each naming the file and a key; RecipeError exits 2.
        assert problems and all(p.startswith("evilfw.toml: ") for p in problems)
        assert RecipeError.exit_code == 2
        return
    # Accepted: nothing a control character could hide in, and every file has the baseline's shape.
    assert control_character(json.dumps(raw, ensure_ascii=False)) is None
    baseline = recipe_text(**FIELDS[field](""))
    got = renders(plan_of(text, allow_insecure=True), plan_of(text, method="conda", allow_insecure=True))
    want = renders(
        plan_of(baseline, allow_insecure=True), plan_of(baseline, method="conda", allow_insecure=True)
    )
    for name in want:
        assert len(got[name].splitlines()) == len(want[name].splitlines()), (name, got[name])
    assert len(bake_of(text).splitlines()) == len(bake_of(baseline).splitlines())
    # ... and the value reads back as itself.
    conda_plan = plan_of(text, method="conda", allow_insecure=True)
    cenv = conda_env_for(conda_plan, {}, name="e")
    doc = yaml.safe_load(got["environment.yml"])
    assert doc.get("variables", {}) == dict(conda_plan.env)
    assert doc["channels"] == list(cenv.channels)
    assert [d for d in doc["dependencies"] if isinstance(d, str)] == list(cenv.specs)
    assert [d["pip"] for d in doc["dependencies"] if isinstance(d, dict)] == (
        [list(cenv.pip)] if cenv.pip else []
    )
    for line in got["shell"].splitlines():
        shlex.split(line, comments=True)  # well-formed shell words
    df_plan = plan_of(text, allow_insecure=True)
    for key, val in df_plan.env.items():
        (line,) = [ln for ln in got["dockerfile"].splitlines() if ln.strip().startswith(f"{key}=")]
        assert unquote_dq(line.strip().removeprefix(f"{key}=").removesuffix(" \\")) == val
    labels = [ln for ln in got["dockerfile"].splitlines() if "org.opencontainers.image.title=" in ln]
    assert len(labels) == 1
    title_word = labels[0].split("org.opencontainers.image.title=", 1)[1].removesuffix(" \\")
    assert unquote_dq(title_word) == f"{df_plan.title} {df_plan.version} ({df_plan.variant})"


# ---------------------------------------------------------------------------------------------------------
# Systematic: malformed recipes give exit 2 and one message naming the file and the key, never a traceback

MALFORMED = {
    "title": lambda v: recipe_text(title="T" + v),
    "variant": lambda v: recipe_text(variant=v),
    "env_key": lambda v: recipe_text(env={v: "1"}),
    "env_value": lambda v: recipe_text(env={"EVIL": v}),
    "requirement": lambda v: recipe_text(requirements=[v]),
    "index_url": lambda v: recipe_text(index_url=v),
    "version": lambda v: recipe_text().replace('version = "1.0"', f"version = {toml_str(v)}"),
    "python": lambda v: recipe_text().replace('python = ">=3.8"', f"python = {toml_str(v)}"),
    "arch": lambda v: recipe_text().replace('arch = ["x86_64", "aarch64"]', f"arch = [{toml_str(v)}]"),
    "name": lambda v: recipe_text().replace('name = "evilfw"', f"name = {toml_str(v)}"),
}
KEYS = {
    "title": "title", "variant": "builds[0].variant", "env_key": "builds[0].env", "env_value": "builds[0].env.EVIL",
    "requirement": "builds[0].requirements[0]", "index_url": "builds[0].index_url", "version": "builds[0].version",
    "python": "builds[0].python", "arch": "builds[0].arch[0]", "name": "name",
}  # fmt: skip
# Values each field refuses: control characters, or text its own rule refuses.
BAD = st.one_of(
    st.tuples(TEXT, st.sampled_from(["\n", "\r", "\x00", "\x1b", "\u2028", "\x85", "\t"]), TEXT).map("".join),
    st.sampled_from(["", " ", "a/b", "..", "$(id)", "x;y", "LD_PRELOAD", "ftp://x", "1 .0", "3.x", "a b"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(field=st.sampled_from(sorted(MALFORMED)), value=BAD)
def test_malformed_recipes_exit_2_with_one_message_naming_file_and_key(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], field: str, value: str
) -> None:
    folder = tmp_path_factory.mktemp("r")
    path = write_recipe(folder, MALFORMED[field](value))
    capsys.readouterr()
    code = main(["recipes", "validate", str(folder)])
    out, err = capsys.readouterr()
    if code == 0:
        # Only a value its field accepts: never one with a control character.
        assert control_character(value) is None, (field, value)
        assert out.strip() == "1 recipe OK"
        return
    assert code == 2, (field, value, out, err)
    assert "Traceback" not in err and out == ""
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    assert f"{path}: {KEYS[field]}" in err.replace("\n", ""), (KEYS[field], err)


def test_each_bad_value_of_the_fuzz_is_refused_where_its_rule_says() -> None:
    """The fuzz above accepts some of its plain values for some fields; these it must refuse."""
    must_refuse = [("variant", "a/b"), ("variant", ".."), ("env_key", "LD_PRELOAD"), ("env_key", "a b"),
                   ("index_url", "ftp://x"), ("version", "1 .0"), ("name", "LD_PRELOAD"), ("arch", "a b")]  # fmt: skip
    for field, value in must_refuse:
        import tomllib

        recipe, problems = parse_recipe(tomllib.loads(MALFORMED[field](value)), path="evilfw.toml")
        assert recipe is None and len(problems) == 1 and problems[0].startswith(f"evilfw.toml: {KEYS[field]}"), (
            field, value, problems,
        )  # fmt: skip


def test_validate_notes_insecure_sources_without_failing(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r", recipe_text(index_url="http://mirror.example/simple"))
    res = run_cli("recipes", "validate", path.parent)
    assert res.returncode == 0 and res.stdout.strip() == "1 recipe OK"
    assert "note:" in res.stderr and "'http://mirror.example/simple'" in res.stderr
    assert "--allow-insecure" in res.stderr
