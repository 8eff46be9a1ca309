"""The registry sync against a fake PyPI (the HTTP fetch is the faked boundary; the real one is
tests/integration/network/test_registry_sync.py): what it reads, what it writes, and what it never does
(write anything when a request fails)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fwsetup.errors import FwsetupError, NetworkError
from fwsetup.recipes.load import load_recipes
from fwsetup.registry import load_registry, read_registry
from fwsetup.registry import sync as sync_mod
from fwsetup.registry.sync import run_sync, targets_of

PYPI = "https://pypi.org/pypi"


def wheel_bytes(name: str, version: str, requires: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}/__init__.py", "x = 1\n" * 2000)
        meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        z.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(meta) + "\n")
    return buf.getvalue()


class FakePyPI:
    """Project JSON pages and wheel files, with HTTP range reads; records every URL asked for."""

    def __init__(self) -> None:
        self.pages: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.asked: list[str] = []
        self.fail: str | None = None

    def add(
        self, dist: str, version: str, tags: list[str], requires: list[str] = (), pep658: bool = False
    ) -> None:  # type: ignore[assignment]
        page = self.pages.setdefault(dist, {"info": {"name": dist}, "releases": {}})
        files = page["releases"].setdefault(version, [])
        for tag in tags:
            fname = f"{dist.replace('-', '_')}-{version}-{tag}.whl"
            data = wheel_bytes(dist.replace("-", "_"), version, list(requires))
            url = f"../../packages/{fname}"  # relative, as this environment's PyPI serves them
            self.blobs[f"https://pypi.org/packages/{fname}"] = data
            if pep658:
                meta = "\n".join(f"Requires-Dist: {r}" for r in requires).encode()
                self.blobs[f"https://pypi.org/packages/{fname}.metadata"] = meta
            files.append(
                {
                    "filename": fname,
                    "packagetype": "bdist_wheel",
                    "size": len(data),
                    "digests": {"sha256": hashlib.sha256(data).hexdigest()},
                    "requires_python": ">=3.9",
                    "upload_time_iso_8601": "2026-01-02T03:04:05Z",
                    "yanked": False,
                    "url": url,
                    "core-metadata": {"sha256": "0" * 64} if pep658 else False,
                }
            )
        files.append({"filename": f"{dist}-{version}.tar.gz", "packagetype": "sdist", "url": "x", "size": 1})

    def __call__(self, url: str, span: tuple[int, int] | None = None) -> bytes:
        self.asked.append(url)
        if self.fail and self.fail in url:
            raise NetworkError(f"cannot reach {url} (fake); nothing was written.")
        if url.startswith(PYPI + "/") and url.endswith("/json"):
            dist = url[len(PYPI) + 1 : -len("/json")]
            if dist in self.pages:
                return json.dumps(self.pages[dist]).encode()
        if url in self.blobs:
            data = self.blobs[url]
            return data if span is None else data[span[0] : span[1] + 1]
        raise sync_mod._NotFound(url)


class R:  # the parts of a Recipe the sync reads
    def __init__(self, name: str, builds: list[Any]) -> None:
        self.name, self.builds = name, builds


class B:
    def __init__(self, version: str, requirements: list[str], index_url: str | None = None) -> None:
        self.version, self.requirements, self.index_url = version, requirements, index_url
        self.extra_index_urls: list[str] = []
        self.conda = None


@pytest.fixture
def pypi() -> FakePyPI:
    p = FakePyPI()
    p.add("demo", "1.0.0", ["cp311-cp311-manylinux_2_28_x86_64", "cp311-cp311-win_amd64"])
    p.add(
        "demo",
        "1.1.0",
        ["cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"],
        ["nvidia-cuda-runtime-cu12==12.8.90"],
    )
    p.add("demo", "0.9.0", ["cp39-cp39-manylinux_2_17_x86_64"])  # older than the recipe: not synced
    p.pages["demo"]["releases"]["2.0.0rc1"] = p.pages["demo"]["releases"]["1.0.0"]  # pre-release: skipped
    return p


def test_sync_writes_what_the_registry_publishes(tmp_path: Path, pypi: FakePyPI) -> None:
    recipes = [R("demo", [B("1.0.0", ["demo==1.0.0", "numpy<2"])])]
    fig = run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-28")
    assert (fig.files, fig.changed, fig.distributions, fig.releases, fig.wheels) == (1, 1, 1, 2, 3)
    reg = read_registry(tmp_path / "demo.json")
    assert reg.versions("demo") == ["1.0.0", "1.1.0"]  # from the oldest pinned release on, no rc, no older
    (w,) = [w for w in reg.wheels("demo", "1.0.0") if w.platform_tag == "win_amd64"]
    blob = pypi.blobs["https://pypi.org/packages/demo-1.0.0-cp311-cp311-win_amd64.whl"]
    assert (w.size, w.sha256, w.index) == (len(blob), hashlib.sha256(blob).hexdigest(), "pypi")
    rel = reg.release("demo", "1.1.0")
    assert rel is not None and rel.requires_python == ">=3.9" and rel.uploaded == "2026-01-02"
    assert rel.requires == ["nvidia-cuda-runtime-cu12==12.8.90"]  # read from the wheel by range requests
    assert not any("numpy" in u for u in pypi.asked)  # a constraint, not the recipe's distribution
    text = (tmp_path / "demo.json").read_text()
    assert text.count("\n        {") == 3  # one line per wheel: diffable
    assert not list(tmp_path.glob(".*tmp"))


def test_companions_follow_requires_dist_for_named_extras(tmp_path: Path) -> None:
    p = FakePyPI()
    reqs = ["jaxlib<=0.5.0,>=0.5.0", "jax-cuda12-plugin[with-cuda]==0.5.0; extra == 'cuda12'",
            "jax-cuda13-plugin==0.5.0; extra == 'cuda13'", "numpy>=2"]  # fmt: skip
    p.add("jax", "0.5.0", ["py3-none-any"], reqs, pep658=True)
    p.add("jaxlib", "0.5.0", ["cp312-cp312-manylinux_2_27_x86_64"])
    p.add("jaxlib", "0.4.0", ["cp312-cp312-manylinux_2_27_x86_64"])  # not the pinned one
    p.add("jax-cuda12-plugin", "0.5.0", ["cp312-cp312-manylinux_2_27_x86_64"], ["jax-cuda12-pjrt==0.5.0"])
    p.add("jax-cuda12-pjrt", "0.5.0", ["py3-none-manylinux_2_27_x86_64"])
    p.add("jax-cuda13-plugin", "0.5.0", ["cp312-cp312-manylinux_2_27_x86_64"])
    run_sync(tmp_path, recipes=[R("jax", [B("0.5.0", ["jax[cuda12]==0.5.0"])])], fetch=p, today="2026-11-28")
    reg = read_registry(tmp_path / "jax.json")
    assert reg.distributions() == ["jax", "jax-cuda12-pjrt", "jax-cuda12-plugin", "jaxlib"]
    assert reg.versions("jaxlib") == ["0.5.0"]
    assert any(u.endswith(".metadata") for u in p.asked)  # PEP 658 first where the index offers it


def test_no_network_changes_nothing(tmp_path: Path, pypi: FakePyPI) -> None:
    recipes = [R("demo", [B("1.0.0", ["demo==1.0.0"])]), R("other", [B("1.0.0", ["other==1.0.0"])])]
    pypi.add("other", "1.0.0", ["py3-none-any"])
    run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-01")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pypi.add("demo", "1.2.0", ["py3-none-any"])  # a change the failed run would have written
    pypi.fail = "/other/"  # the second recipe's request fails after the first one succeeded
    with pytest.raises(NetworkError, match="nothing was written"):
        run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-28")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_unchanged_data_keeps_the_file_and_its_date(tmp_path: Path, pypi: FakePyPI) -> None:
    recipes = [R("demo", [B("1.0.0", ["demo==1.0.0"])])]
    run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-01")
    fig = run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-28")
    assert fig.changed == 0 and '"synced": "2026-11-01"' in (tmp_path / "demo.json").read_text()
    pypi.add("demo", "1.2.0", ["py3-none-any"])
    fig = run_sync(tmp_path, recipes=recipes, fetch=pypi, today="2026-11-28")
    assert fig.changed == 1 and '"synced": "2026-11-28"' in (tmp_path / "demo.json").read_text()


def test_saved_index_copy_is_read_and_unsaved_ones_are_named(tmp_path: Path, pypi: FakePyPI) -> None:
    saved = tmp_path / "saved"
    page = saved / "cu128" / "demo"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        "<html><body>"
        '<a href="/whl/cu128/demo-1.0.0%2Bcu128-cp311-cp311-manylinux_2_28_aarch64.whl#sha256='
        + "b"
        * 64
        + '" data-requires-python="&gt;=3.9">demo-1.0.0+cu128-cp311-cp311-manylinux_2_28_aarch64.whl</a>'
        '<a href="/whl/cu128/demo-9.9.9%2Bcu128-cp311-cp311-manylinux_2_28_aarch64.whl">not synced: no such release</a>'
        "</body></html>"
    )
    recipes = [
        R(
            "demo",
            [
                B("1.0.0", ["demo==1.0.0"], "https://download.example.org/whl/cu128"),
                B("1.0.0", ["demo==1.0.0"], "https://download.example.org/whl/cu126"),
            ],
        )
    ]
    out = tmp_path / "out"
    run_sync(
        out,
        recipes=recipes,
        fetch=pypi,
        saved={"https://download.example.org/whl": saved},
        today="2026-11-28",
    )
    reg = read_registry(out / "demo.json")
    (w,) = [w for w in reg.wheels("demo", "1.0.0") if w.index != "pypi"]
    assert w.index == "https://download.example.org/whl/cu128" and w.sha256 == "b" * 64 and w.size is None
    assert w.filename == "demo-1.0.0+cu128-cp311-cp311-manylinux_2_28_aarch64.whl"
    assert reg.not_synced == ("https://download.example.org/whl/cu126",)
    assert any("saved copy" in s and "cu128" in s for s in reg.sources)


def test_distributions_come_from_the_recipes() -> None:
    owned = {t.recipe: set(t.floors) for t in targets_of(load_recipes(None))}
    assert owned["pytorch"] == {"torch"}
    assert owned["keras"] == {"keras"}  # its torch/jax/tensorflow pins are the other recipes' frameworks
    assert owned["tensorflow"] >= {"tensorflow", "tensorflow-cpu", "tensorflow-metal"}
    assert owned["mxnet"] == {"mxnet", "mxnet-cu112", "mxnet-cu117"}  # numpy<1.24 is a constraint
    assert "caffe" not in owned  # installs no pinned distribution
    assert "caffe2" not in owned  # pins torch 1.10.2 (PyTorch's distribution) and companions, none of its own
    # and the committed data holds exactly those (plus companions)
    for name, dists in owned.items():
        reg = load_registry(name)
        assert reg is not None and dists <= set(reg.distributions()), name


def test_main_without_network_exits_7_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sync_mod, "PYPI_JSON", "http://127.0.0.1:9/pypi")  # nothing listens on port 9
    monkeypatch.setattr(sync_mod.time, "sleep", lambda s: None)
    rc = sync_mod.main(["--out", str(tmp_path), "--only", "theano", "--timeout", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 7
    # progress, then the one message (and its hint)
    assert err[-2].startswith("sync-registry: cannot reach http://127.0.0.1:9/pypi/theano/json")
    assert err[-2].endswith("nothing was written.") and err[-1] == "Run the sync where pypi.org is reachable."
    assert "Traceback" not in "\n".join(err) and list(tmp_path.iterdir()) == []


def test_main_rejects_bad_options(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert sync_mod.main(["--out", str(tmp_path), "--saved-index", "no-equals-sign"]) == 2
    assert "expected URL=DIR" in capsys.readouterr().err
    assert sync_mod.main(["--out", str(tmp_path), "--only", "caffe"]) == 2
    assert "no recipe pins a distribution for caffe" in capsys.readouterr().err


def test_saved_pep691_json_copy_is_read(tmp_path: Path, pypi: FakePyPI) -> None:
    page = tmp_path / "saved" / "cu130" / "demo"
    page.mkdir(parents=True)
    files = [
        {
            "filename": "demo-1.1.0+cu130-cp312-cp312-win_amd64.whl",
            "url": "https://download.example.org/whl/cu130/demo-1.1.0%2Bcu130-cp312-cp312-win_amd64.whl",
            "hashes": {"sha256": "c" * 64},
            "size": 1234,
            "requires-python": ">=3.10",
            "yanked": False,
        },
        {"filename": "demo-1.1.0.tar.gz", "url": "x", "hashes": {}},  # not a wheel: left out
    ]
    (page / "index.json").write_text(
        json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": files})
    )
    recipes = [R("demo", [B("1.0.0", ["demo==1.0.0"], "https://download.example.org/whl/cu130")])]
    run_sync(
        tmp_path / "out",
        recipes=recipes,
        fetch=pypi,
        saved={"https://download.example.org/whl": tmp_path / "saved"},
        today="2026-11-28",
    )
    reg = read_registry(tmp_path / "out" / "demo.json")
    (w,) = [w for w in reg.wheels("demo", "1.1.0") if w.index != "pypi"]
    assert (w.size, w.sha256, w.requires_python, w.platform_tag) == (1234, "c" * 64, ">=3.10", "win_amd64")
    assert reg.not_synced == ()


def test_unwritable_output_is_one_message_and_no_temp_file(tmp_path: Path, pypi: FakePyPI) -> None:
    recipes = [R("demo", [B("1.0.0", ["demo==1.0.0"])])]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FwsetupError, match=r"cannot write the registry data in .*nothing was changed"):
        run_sync(blocker / "sub", recipes=recipes, fetch=pypi, today="2026-11-28")
    out = tmp_path / "out"
    (out / "demo.json").mkdir(parents=True)  # a folder where the file goes: the rename fails
    with pytest.raises(FwsetupError, match=r"cannot replace .*demo.json.*files replaced before it: none"):
        run_sync(out, recipes=recipes, fetch=pypi, today="2026-11-28")
    assert [p.name for p in out.iterdir()] == ["demo.json"]  # no temporary file left


def test_main_rejects_bad_numbers(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert sync_mod.main(["--out", str(tmp_path), "--timeout", "-1"]) == 2
    assert sync_mod.main(["--out", str(tmp_path), "--jobs", "0"]) == 2
    assert "--timeout must be in" in capsys.readouterr().err
