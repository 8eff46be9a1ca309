"""`fwsetup doctor` and `fwsetup profile` on the command line: exit codes, --json purity, --host-profile."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from doctor_cli import clean_env, cli
from typer.testing import CliRunner

from fwsetup.cli import app
from fwsetup.profile import GPU, HostProfile, NvidiaInfo, PythonInfo, dumps, loads


def write_profile(tmp_path: Path, profile: HostProfile) -> str:
    path = tmp_path / "host.json"
    path.write_text(dumps(profile))
    return str(path)


def test_doctor_json_is_pure_and_exit_code_matches(tmp_path: Path) -> None:
    cp = cli("doctor", "--json", env=clean_env())
    data = json.loads(cp.stdout)  # stdout is the JSON document and nothing else
    assert data["schema_version"] == 1
    assert set(data) >= {"host", "frameworks", "findings"}
    for f in data["findings"]:
        assert set(f) == {"id", "severity", "title", "detail", "remedy", "code"}
        assert f["severity"] in ("error", "warning", "info")
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert cp.returncode == (1 if errors else 0), cp.stderr
    assert loads(json.dumps(data["host"])).schema_version == 1


@pytest.mark.skipif(Path("/proc/driver/nvidia").exists(), reason="this machine has an NVIDIA driver")
def test_doctor_on_this_machine_says_there_is_no_driver() -> None:
    cp = cli("doctor", "--json", env=clean_env())
    data = json.loads(cp.stdout)
    assert data["host"]["nvidia"]["nvml"] == "missing"
    nv = [f for f in data["findings"] if f["id"].startswith("nvidia.")]
    assert nv and nv[0]["id"] in ("nvidia.none", "nvidia.driver-missing")
    human = cli("doctor", env=clean_env())
    assert "not installed" in human.stdout and "Findings" in human.stdout
    assert human.returncode == cp.returncode


def test_exit_1_when_a_gpu_has_no_driver(tmp_path: Path) -> None:
    broken = HostProfile(nvidia=NvidiaInfo(nvml="missing", pci_devices=("0000:17:00.0 10de:2330",)))
    result = CliRunner().invoke(app, ["doctor", "--host-profile", write_profile(tmp_path, broken),
                                      "--python", sys.executable])  # fmt: skip
    assert result.exit_code == 1
    assert "✘" in result.stdout and "no NVIDIA driver" in result.stdout


def test_exit_0_on_a_healthy_profile(tmp_path: Path) -> None:
    healthy = HostProfile(
        python=PythonInfo(version="3.11.7"),
        nvidia=NvidiaInfo(nvml="ok", driver_version="580.65.06", cuda_driver_version="13.0",
                          gpus=(GPU(index=0, name="NVIDIA H100", compute_capability="9.0"),)),
    )  # fmt: skip
    path = write_profile(tmp_path, healthy)
    result = CliRunner().invoke(app, ["doctor", "--json", "--host-profile", path, "--python", sys.executable])
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["host_source"] == path
    assert data["host"]["nvidia"]["gpus"][0]["name"] == "NVIDIA H100"


def test_python_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    path = write_profile(tmp_path, HostProfile())
    result = CliRunner().invoke(
        app, ["doctor", "--json", "--host-profile", path, "--python", "/no/such/python"]
    )
    assert result.exit_code == 1
    assert "env.inspect-failed" in [f["id"] for f in json.loads(result.stdout)["findings"]]


def test_unreadable_host_profile_is_one_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cp = cli("doctor", "--host-profile", str(bad))
    assert cp.returncode == 2 and "not valid JSON" in cp.stderr and "Traceback" not in cp.stderr
    assert cp.stdout == ""


def test_docker_host_pointing_nowhere(tmp_path: Path) -> None:
    cp = cli("doctor", "--json", env=clean_env(DOCKER_HOST=f"unix://{tmp_path}/nonexistent.sock"))
    data = json.loads(cp.stdout)
    docker = data["host"]["tools"]["docker"]
    assert docker["server"] is None and docker["error"]
    if docker["client"] is None and "not found" in docker["error"]:
        pytest.skip("no docker client here: the client-missing path is covered in detect/test_tools.py")
    f = next(f for f in data["findings"] if f["id"] == "docker.engine-unreachable")
    assert f["severity"] == "warning" and "unreachable" in f["title"]
    assert "scripts/start-docker-engine" in f["remedy"] and "systemctl start docker" in f["remedy"]
    assert f"{tmp_path}/nonexistent.sock" in f["title"]


def test_profile_prints_json_and_writes_files(tmp_path: Path) -> None:
    cp = cli("profile")
    assert cp.returncode == 0, cp.stderr
    host = loads(cp.stdout)
    assert host.os.system and host.cpu.arch and host.python.version
    out = tmp_path / "me.json"
    cp2 = cli("profile", "--output", str(out))
    assert cp2.returncode == 0 and cp2.stdout == "" and out.is_file()
    text = out.read_text()
    assert dumps(loads(text)) + "\n" == text
    # --host-profile reads it back unchanged
    cp3 = cli("profile", "--host-profile", str(out))
    assert cp3.stdout == text


def test_human_report_marks() -> None:
    result = CliRunner().invoke(app, ["doctor", "--python", sys.executable])
    for heading in ("Machine", "NVIDIA", "Tools", "Environment", "Findings"):
        assert heading in result.stdout
    assert "✔" in result.stdout
