"""`fwsetup matrix`: every image the recipes define, as JSON, a GitHub Actions matrix and a bake file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from typer.testing import CliRunner

from fwsetup.cli import app, main
from fwsetup.ops.matrix import matrix_entries
from fwsetup.plan.container import base_python
from fwsetup.recipes.load import load_recipes

NO_PIP = {"PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "", "PIP_CERT": "", "SSL_CERT_FILE": ""}


@pytest.fixture(autouse=True)
def _no_network(fake_image_lock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """bake plans each image as build does: its lock (helpers/fake_lock.py) and the framework's index, here taken
    as reachable (the real probe and lock run in the docker integration tests)."""
    monkeypatch.setattr("fwsetup.backends.wheel_sources.probe_index", lambda *a, **k: None)


def run(*args: str, **env: str) -> str:
    result = CliRunner().invoke(app, ["matrix", *args], env={**NO_PIP, **env})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_entries_cover_frameworks_variants_and_pythons() -> None:
    recipes = load_recipes()
    entries = matrix_entries(list(recipes))
    assert {"pytorch", "tensorflow", "jax"} <= {e.framework for e in entries}
    assert len({e.target for e in entries}) == len(entries), "bake target names are unique"
    for e in entries:
        build = next(
            b for b in recipes.get(e.framework).builds if b.version == e.version and b.variant == e.variant
        )
        assert "linux" in build.os and build.installable
        assert SpecifierSet(build.python).contains(f"{e.python}.0"), e
        if e.accelerator == "cuda" and (e.framework, e.variant) == ("caffe2", "cu102"):
            assert e.base == "debian:bullseye", "torch 1.10.2's wheel brings its CUDA 10.2 runtime"
        elif e.accelerator == "cuda":
            assert e.base.startswith("nvidia/cuda:"), e
            assert base_python(e.base).version == e.python, "a CUDA image's Python is its base's"
        elif build.docker is not None and build.docker.base_image:
            # the recipe names its base (Caffe: Debian 11)
            assert e.base == build.docker.base_image and base_python(e.base).version == e.python, e
        else:
            assert e.base == f"python:{e.python}-slim-bookworm"
    # CPU images come for several Pythons (the python:X.Y-slim bases).
    assert len({e.python for e in entries if e.framework == "pytorch" and e.accelerator == "cpu"}) >= 3


def test_newest_n_releases_by_default_and_all_on_request() -> None:
    recipes = list(load_recipes())
    two = matrix_entries(recipes, newest=2)
    every = matrix_entries(recipes, newest=None)
    per_fw = Counter()
    for fw in {e.framework for e in two}:
        per_fw[fw] = len({e.version for e in two if e.framework == fw})
    assert max(per_fw.values()) <= 2
    assert len(every) > len(two)
    assert {e.version for e in every if e.framework == "pytorch"} > {
        e.version for e in two if e.framework == "pytorch"
    }


def test_json_format() -> None:
    data = json.loads(run("--format", "json", "--framework", "pytorch"))
    assert isinstance(data, list) and data
    first = data[0]
    assert set(first) >= {"name", "framework", "version", "variant", "python", "base", "tag", "gpu", "args"}
    assert first["args"].startswith("pytorch --version ")


def test_github_format_is_one_line_with_include() -> None:
    out = run("--format", "github", "--framework", "jax")
    assert out.count("\n") == 1, "one line, for $GITHUB_OUTPUT"
    data = json.loads(out)
    assert list(data) == ["include"] and data["include"]
    assert all(item["framework"] == "jax" for item in data["include"])


def test_bake_format_writes_contexts_and_a_default_group(tmp_path: Path) -> None:
    out_dir = tmp_path / "bake"
    bake = json.loads(
        run("--format", "bake", "--framework", "pytorch", "--newest", "1", "--out-dir", str(out_dir))
    )
    assert json.loads((out_dir / "docker-bake.json").read_text()) == bake
    targets = bake["target"]
    assert bake["group"]["default"]["targets"] == list(targets)
    assert any("cu" in name for name in targets) and any("cpu" in name for name in targets)
    # One context for the framework, shared by its targets: each target's files under its own name.
    assert {t["context"] for t in targets.values()} == {"./pytorch"}
    for name, t in targets.items():
        ctx = out_dir / t["context"]
        assert t["dockerfile"] == f"{name}.Dockerfile"
        dockerfile = (ctx / t["dockerfile"]).read_text()
        assert "RUN --mount=type=bind,source=build" in dockerfile, "BuildKit form"
        assert f"/tmp/fwsetup-build/{name}/requirements.txt" in dockerfile
        assert dockerfile.rstrip().endswith(f"COPY app/{name}/ /opt/fwsetup/")
        assert (ctx / "build" / name / "requirements.txt").is_file() and (
            ctx / "app" / name / "plan.json"
        ).is_file()
        assert (ctx / "app" / name / "sbom.cdx.json").is_file()
        assert not (ctx / "build" / name / "ca.pem").exists()
        assert t["tags"] and t["tags"][0].startswith("fwsetup/pytorch:")
        assert t["platforms"] == ["linux/amd64"]
        plan = json.loads((ctx / "app" / name / "plan.json").read_text())
        assert plan["status"] == "ok" and name.startswith(
            f"pytorch-{plan['version']}-{plan['variant']}".replace(".", "-")
        )


def test_bake_carries_the_ca_bundle_as_a_secret(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("CA")
    bake = json.loads(
        run("--format", "bake", "--framework", "jax", "--newest", "1", "--cpu-only", "--out-dir", str(tmp_path / "b"),
            PIP_CERT=str(ca))
    )  # fmt: skip
    for t in bake["target"].values():
        assert any(s.startswith("id=fwsetup-ca,src=") for s in t["secret"])
        assert not list((tmp_path / "b" / t["context"]).rglob("ca.pem"))


def test_bad_format_is_a_usage_error() -> None:

    assert main(["matrix", "--format", "yaml"]) == 2


@pytest.mark.parametrize("fmt", ["json", "github"])
def test_cpu_only(fmt: str) -> None:
    data = json.loads(run("--format", fmt, "--cpu-only"))
    items = data["include"] if fmt == "github" else data
    assert items and all(not i["gpu"] for i in items)


# -- bake --out-dir: never remove or overwrite what fwsetup did not write; no credential in a file --------

BAKE_JAX = ("--format", "bake", "--framework", "jax", "--newest", "1", "--cpu-only")


class Ran:
    def __init__(self, exit_code: int, stdout: str, output: str) -> None:
        self.exit_code, self.stdout, self.output = exit_code, stdout, output


@pytest.fixture
def bake_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`fwsetup matrix --format bake` as the console script runs it (one message and an exit code)."""

    def call(out_dir: Path, *extra: str, **env: str) -> Ran:
        for k, v in {**NO_PIP, **env}.items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(["matrix", *BAKE_JAX, "--out-dir", str(out_dir), *extra])
        out, err = capsys.readouterr()
        return Ran(code, out, out + err)

    return call


def test_bake_never_removes_a_folder_it_did_not_write(tmp_path: Path, bake_cli) -> None:
    out = tmp_path / "bake"
    first = json.loads(run(*BAKE_JAX, "--out-dir", str(out)))
    name = next(iter(first["target"].values()))["context"][2:]  # the framework's shared context folder
    # A repeat replaces only what fwsetup wrote: fine.
    assert json.loads(run(*BAKE_JAX, "--out-dir", str(out))) == first
    # A user's file inside a context folder fwsetup wrote: refused, kept, named.
    (out / name / "notes.md").write_text("mine")
    result = bake_cli(out)
    assert result.exit_code == 2, result.output
    assert "notes.md" in result.output and "did not write" in result.output
    assert (out / name / "notes.md").read_text() == "mine"
    # A folder named like a target that fwsetup never wrote (no manifest entry): refused, kept.
    other = tmp_path / "other"
    (other / name).mkdir(parents=True)
    (other / name / "Dockerfile").write_text("FROM scratch\n")
    result = bake_cli(other)
    assert result.exit_code == 2 and str(other / name) in result.output, result.output
    assert (other / name / "Dockerfile").read_text() == "FROM scratch\n"
    assert not (other / "docker-bake.json").exists()


def test_bake_never_overwrites_a_bake_file_it_did_not_write_without_force(tmp_path: Path, bake_cli) -> None:
    out = tmp_path / "bake"
    out.mkdir()
    (out / "docker-bake.json").write_text('{"target": {"mine": {}}}\n')
    result = bake_cli(out)
    assert result.exit_code == 2 and "docker-bake.json" in result.output and "--force" in result.output
    assert (out / "docker-bake.json").read_text() == '{"target": {"mine": {}}}\n'
    written = json.loads(run(*BAKE_JAX, "--out-dir", str(out), "--force"))
    assert json.loads((out / "docker-bake.json").read_text()) == written
    # Edited after fwsetup wrote it: refused again.
    (out / "docker-bake.json").write_text(json.dumps(written) + "\n# my edit\n")
    assert bake_cli(out).exit_code == 2


def test_bake_writes_no_credential_and_references_it_by_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bake_cli
) -> None:
    monkeypatch.chdir(tmp_path)
    token = "s3cret-tok-9f2"
    env = {
        "PIP_INDEX_URL": f"https://alice:{token}@mirror.example/simple",
        "PIP_EXTRA_INDEX_URL": f"https://bob:{token}@extra.example/simple https://plain.example/simple",
    }
    result = bake_cli(Path("fwsetup-bake"), **env)
    assert result.exit_code == 0, result.output
    bake = json.loads(result.stdout)
    for name, t in bake["target"].items():
        assert "id=fwsetup-index-url,env=PIP_INDEX_URL" in t["secret"]
        assert "id=fwsetup-extra-index-urls,env=PIP_EXTRA_INDEX_URL" in t["secret"]
        assert not any("src=" in s and "index" in s for s in t["secret"])
        # the settings without a credential travel in the context's builder files
        assert (
            "https://plain.example/simple"
            in (Path("fwsetup-bake") / t["context"] / "build" / name / "index.env").read_text()
        )
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and not [p for p in files if token.encode() in p.read_bytes()]
    assert not (tmp_path / "fwsetup-bake" / ".secrets").exists()
    assert token not in result.output


# -- options that change the build reach every format -------------------------------------------------

BASE = "fwsetup/bookworm-base:latest"


@pytest.mark.parametrize("fmt", ["json", "github"])
def test_base_is_carried_into_the_build_arguments(fmt: str) -> None:
    import shlex

    data = json.loads(
        run("--format", fmt, "--framework", "pytorch", "--newest", "1", "--cpu-only", "--base", BASE)
    )
    items = data["include"] if fmt == "github" else data
    assert items
    for item in items:
        args = shlex.split(item["args"])
        assert args[args.index("--base") + 1] == BASE, item["args"]
        assert item["base"] == BASE
    # without --base, the arguments name none (the recipe's base is the build's default)
    plain = json.loads(run("--format", fmt, "--framework", "pytorch", "--newest", "1", "--cpu-only"))
    assert all(
        "--base" not in shlex.split(i["args"]) for i in (plain["include"] if fmt == "github" else plain)
    )


def test_base_reaches_the_bake_targets(tmp_path: Path) -> None:
    bake = json.loads(run(*BAKE_JAX, "--base", "python:3.12-slim-bookworm", "--out-dir", str(tmp_path / "b")))
    assert bake["target"]
    for t in bake["target"].values():
        dockerfile = (tmp_path / "b" / t["context"] / t["dockerfile"]).read_text()
        froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
        assert froms and set(froms) == {"python:3.12-slim-bookworm"}, froms


def test_bake_has_no_absolute_path(tmp_path: Path) -> None:
    """The bake file can be committed and built from another checkout: contexts relative to it, no path of
    this machine in it (no CA bundle configured here: a CA bundle is a secret read from where it is)."""
    out_dir = tmp_path / "bake"
    no_ca = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    text = run(
        "--format", "bake", "--framework", "pytorch", "--newest", "1", "--out-dir", str(out_dir), **no_ca
    )
    assert str(tmp_path) not in text and str(out_dir) not in (out_dir / "docker-bake.json").read_text()
    bake = json.loads(text)
    for name, t in bake["target"].items():
        assert (
            t["context"] == "./pytorch"
            and t["dockerfile"] == f"{name}.Dockerfile"
            and (out_dir / t["context"] / t["dockerfile"]).is_file()
        )

    def strings(node: object) -> list[str]:
        if isinstance(node, dict):
            return [x for v in node.values() for x in strings(v)]
        if isinstance(node, list):
            return [x for v in node for x in strings(v)]
        return [node] if isinstance(node, str) else []

    assert not [s for s in strings(bake) if s.startswith("/") or "=/" in s]
