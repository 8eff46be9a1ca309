"""The system-package route (`--method apt`): Caffe from the distribution's archive where the host's
release packages it (Debian 11, Ubuntu 20.04), the container route and the reason elsewhere (Ubuntu
22.04 and Debian 12 have no caffe packages), the exact apt-get argument lists in the plan, and the apt
backend (root only, apt's own simulation shown first, the plan's commands and nothing else, then the
smoke test on the distribution's python3). apt-get itself is faked here (a runner); the image test
(tests/integration/docker/test_images.py) installs python3-caffe from Debian 11's archive for real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from fwsetup import proc
from fwsetup.backends.apt import AptBackend, describe, require_root, simulate
from fwsetup.backends.base import InstallOptions
from fwsetup.cli import app, main
from fwsetup.errors import InstallError, UsageError
from fwsetup.plan import Plan, Request, make_plan
from fwsetup.plan.container import plan_image
from fwsetup.profile import HostProfile, load
from fwsetup.recipes import load_recipes, parse_recipe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def caffe(fixture: str, **request: Any) -> Plan:
    return make_plan(profile(fixture), load_recipes().get("caffe"), Request(framework="caffe", **request))


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
    assert image.status == "ok" and image.docker is not None
    assert image.docker.system_packages == ["python3-caffe"] and image.requirements == []


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


class FakeApt:
    """apt-get and python3 as a runner: records every argv, answers --simulate with `Inst` lines."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Any, **kw: Any) -> proc.Result:
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        if self.fail and self.fail in argv:
            return proc.Result(
                argv=tuple(argv),
                returncode=100,
                stdout="",
                stderr="E: Unable to locate package python3-caffe",
            )
        out = ""
        if "--simulate" in argv:
            out = (
                "NOTE: This is only a simulation!\n"
                "Inst libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])\n"
                "Inst python3-numpy [1:1.19.4-1] (1:1.19.5-1 Debian:11.11/oldoldstable [amd64])\n"
                "Conf libcaffe1 (1.0.0+git20180821.99bd997-8+b2 Debian:11.11/oldoldstable [amd64])\n"
            )
        elif argv[0] == "/usr/bin/python3":
            report = {"ok": True, "framework": "caffe", "version": "1.0.0", "device": "cpu", "devices": 1,
                      "steps": 30, "loss_before": 0.44, "loss_after": 0.06}  # fmt: skip
            out = json.dumps(report) + "\n"
        return proc.Result(argv=tuple(argv), returncode=0, stdout=out, stderr="")


def test_simulate_shows_what_apt_would_install_and_upgrade() -> None:
    plan = caffe("debian11", method="apt")
    fake = FakeApt()
    changes = simulate(plan, runner=fake)
    assert fake.calls == [
        ["apt-get", "--simulate", "install", "-y", "-q", "--no-install-recommends", "python3-caffe"]
    ]
    assert [(c.package, c.version, c.replaces) for c in changes] == [
        ("libcaffe1", "1.0.0+git20180821.99bd997-8+b2", None),
        ("python3-numpy", "1:1.19.5-1", "1:1.19.4-1"),
    ]


def test_simulate_names_the_component_when_apt_cannot_find_the_package() -> None:
    plan = caffe("ubuntu2004", method="apt")
    with pytest.raises(InstallError, match="cannot install python3-caffe-cpu") as exc:
        simulate(plan, runner=FakeApt(fail="--simulate"))
    assert "'universe' component" in str(exc.value.hint)


def test_install_runs_the_plans_commands_in_order_then_the_smoke_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    plan = caffe("debian11", method="apt")
    fake = FakeApt()
    result = AptBackend(runner=fake).install(
        plan, InstallOptions(target=Path("/usr"), env={"PATH": "/usr/bin"})
    )
    assert fake.calls[:2] == plan.apt.commands  # type: ignore[union-attr]
    assert fake.calls[2][0] == "/usr/bin/python3" and fake.calls[2][1].endswith("train_caffe.py")
    assert result.changed and result.smoke is not None and result.smoke["ok"] is True


def test_install_is_root_only_and_a_failed_apt_is_an_install_error(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = caffe("debian11", method="apt")
    with pytest.raises(UsageError, match="needs root"):
        require_root(1000)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    fake = FakeApt()
    with pytest.raises(UsageError, match="needs root"):
        AptBackend(runner=fake).install(plan, InstallOptions(target=Path("/usr")))
    assert fake.calls == [], "nothing runs before the root check"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with pytest.raises(InstallError, match="apt-get install") as exc:
        AptBackend(runner=FakeApt(fail="install")).install(plan, InstallOptions(target=Path("/usr")))
    assert exc.value.exit_code == 5


def test_a_plan_from_a_file_runs_only_apt_get() -> None:
    plan = caffe("debian11", method="apt")
    assert plan.apt is not None
    evil = msgspec.structs.replace(
        plan, apt=msgspec.structs.replace(plan.apt, commands=[["sh", "-c", "reboot"]])
    )
    with pytest.raises(UsageError, match="not an apt-get command"):
        describe(evil)


def test_cli_dry_run_prints_the_commands_and_changes_nothing() -> None:
    res = CliRunner().invoke(
        app,
        [
            "install",
            "caffe",
            "--method",
            "apt",
            "--dry-run",
            "--host-profile",
            str(FIXTURES / "debian11.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "apt-get update -q" in res.stdout
    assert "apt-get install -y -q --no-install-recommends python3-caffe" in res.stdout
    res = CliRunner().invoke(
        app,
        ["plan", "caffe", "--method", "apt", "--json", "--host-profile", str(FIXTURES / "ubuntu2204.json")],
    )
    assert res.exit_code == 3
    assert json.loads(res.stdout)["status"] == "refused"


def test_cli_install_apt_asks_first_and_needs_yes_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    fake = FakeApt()
    monkeypatch.setattr("fwsetup.backends.apt.proc.run", fake)
    monkeypatch.setattr(simulate, "__kwdefaults__", {"runner": fake, "env": None})
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    args = ["install", "caffe", "--method", "apt", "--host-profile", str(FIXTURES / "debian11.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "apt-get install -y -q --no-install-recommends python3-caffe" in err
    )  # said before anything changes
    assert "libcaffe1" in err and "replacing 1:1.19.4-1" in err
    assert "confirm with --yes" in err
    assert fake.calls[0] == ["apt-get", "update", "-q"] and "--simulate" in fake.calls[1]
    assert len(fake.calls) == 2, "only apt's lists were refreshed and its simulation ran: nothing installed"
