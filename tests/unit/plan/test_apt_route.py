"""The system-package route (`--method apt`): Caffe from the distribution's archive where the host's
release packages it (Debian 11, Ubuntu 20.04), the container route and the reason elsewhere (Ubuntu
22.04 and Debian 12 have no caffe packages), the exact apt-get argument lists in the plan. The apt backend
that runs them: backends/test_apt.py; the command: cli/test_install_apt.py.
"""

from __future__ import annotations

from pathlib import Path

from apt_world import _own_cache, caffe, profile

from fwsetup.plan import Request
from fwsetup.plan.container import plan_image
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.validate import parse_recipe

# `_own_cache` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["_own_cache"]

INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]


def test_debian_11_gets_python3_caffe_with_the_exact_apt_get_lines() -> None:
    p = caffe("debian11", method="apt")
    assert (p.status, p.method, p.variant, p.python) == ("ok", "apt", "apt-cpu", "3.9")
    assert p.apt is not None
    assert (p.apt.distro, p.apt.release, p.apt.component) == ("debian", "11", "main")
    assert p.apt.commands == [["apt-get", "update", "-q"], [*INSTALL, "python3-caffe"]]
    assert p.requirements == [] and p.smoke is not None and p.smoke.script == "caffe"
    assert p.smoke.device == "cpu"
    assert "apt_release" in {c["kind"] for c in p.reason_codes}
    assert any("Debian 11 packages it" in r and "python3-caffe" in r for r in p.reasons)


def test_ubuntu_20_04_gets_python3_caffe_cpu_from_universe() -> None:
    p = caffe("ubuntu2004", method="apt")
    assert p.status == "ok" and p.apt is not None and p.python == "3.8"
    assert p.apt.component == "universe"
    assert p.apt.commands[-1] == [*INSTALL, "python3-caffe-cpu"]


def test_ubuntu_22_04_has_no_caffe_packages_so_the_container_route_is_offered() -> None:
    # Read from the archive: jammy's main, universe and multiverse list no caffe package (focal's do).
    p = caffe("ubuntu2204", method="apt")
    assert p.status == "refused" and p.apt is None
    fails = [r for r in p.rejected if r.variant == "apt-cpu"]
    assert fails and "Ubuntu 22.04 does not package it" in fails[0].why[0]
    assert "Debian 11" in fails[0].why[0] and "Ubuntu 20.04" in fails[0].why[0]
    assert "`fwsetup plan caffe --method docker`" in "\n".join(p.suggestions)
    image, _ = plan_image(
        load_recipes().get("caffe"), profile("ubuntu2204"), Request(framework="caffe", want="cpu")
    )
    assert (image.status, image.variant, image.python) == ("ok", "apt-cpu", "3.9")
    assert image.image is not None and image.image.base == "debian:bullseye"


def test_this_debian_12_host_gets_the_image_route_with_the_reason() -> None:
    p = caffe("this-machine-cpu", method="apt")
    assert p.status == "refused"
    assert any("Debian 12 does not package it" in w for r in p.rejected for w in r.why)
    venv = caffe("this-machine-cpu")
    assert venv.status == "refused"
    assert "`fwsetup plan caffe --method docker`" in "\n".join(venv.suggestions)
    assert "`fwsetup plan caffe --method apt`" not in "\n".join(venv.suggestions)
    image, _ = plan_image(
        load_recipes().get("caffe"), profile("this-machine-cpu"), Request(framework="caffe", want="cpu")
    )
    assert image.status == "ok" and image.image is not None
    assert image.image.system_packages == ["python3-caffe"] and image.requirements == []


def test_the_default_method_on_debian_11_points_at_apt_and_never_at_pypi() -> None:
    p = caffe("debian11")
    assert p.status == "refused" and p.requirements == []
    assert "`fwsetup plan caffe --method apt`" in "\n".join(p.suggestions)


def test_apt_on_a_gpu_request_refuses_there_is_no_cuda_caffe_planned() -> None:
    p = caffe("debian11", method="apt", want="gpu")
    assert p.status == "refused" and p.apt is None


def test_recipe_apt_package_names_are_validated(tmp_path: Path) -> None:
    raw = {
        "name": "demo",
        "title": "Demo",
        "facts": {
            "developer": "x", "language": "C", "platforms": ["Linux"], "interfaces": ["Python"], "autograd": "no",
            "pretrained": "no", "cnn": "no", "rnn": "no", "multi_gpu": "no", "multi_node": "no", "status": "retired",
        },
        "builds": [
            {
                "version": "1.0",
                "variant": "apt-cpu",
                "apt": {"releases": [
                    {"distro": "debian", "release": "eleven", "component": "main", "packages": ["x; rm -rf /"], "python": "3.9"}
                ]},
            }
        ],
    }  # fmt: skip
    recipe, problems = parse_recipe(raw, path="demo.toml")
    assert recipe is None
    text = "\n".join(problems)
    assert "builds[0].apt.releases[0].release: expected an os-release VERSION_ID" in text
    assert "builds[0].apt.releases[0].packages[0]: expected a Debian package name" in text


# -- the backend ------------------------------------------------------------------------------------------
