"""conda backend, pure parts: the environment.yml a plan renders to (checked by reading it back with a YAML
parser), the `__cuda` virtual package, and the one-message explanations of solver output (canned outputs in
the formats of py-rattler, micromamba 1.x (libsolv), micromamba/mamba 2 (libmamba) and conda)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fwsetup.backends.base import InstallOptions
from fwsetup.backends.conda import CondaBackend
from fwsetup.backends.conda_env import (
    CondaEnv,
    conda_env_for,
    render_environment_yml,
    spec_name,
    virtual_cuda,
)
from fwsetup.backends.conda_tools import explain
from fwsetup.errors import InstallError, NetworkError, UsageError
from fwsetup.plan import Plan, SmokeSpec
from fwsetup.recipes.load import load_recipes
from fwsetup.recipes.schema import CondaSpec


def plan(**kw) -> Plan:
    conda = kw.pop("conda", CondaSpec(channels=["conda-forge"], packages=["pytorch=2.5.1"]))
    base = dict(
        status="ok",
        framework="pytorch",
        version="2.5.1",
        variant="cpu",
        accelerator="cpu",
        method="conda",
        python="3.11",
        conda=conda,
        smoke=SmokeSpec(script="pytorch"),
    )
    return Plan(**{**base, **kw})


def render(p: Plan, env: dict[str, str] | None = None, name: str = "torch-env") -> dict:
    text = render_environment_yml(conda_env_for(p, env or {}, name=name))
    return yaml.safe_load(text)


def test_environment_yml_for_a_cuda_build() -> None:
    p = plan(
        variant="cu126",
        accelerator="cuda",
        cuda="12.6",
        conda=CondaSpec(
            channels=["conda-forge", "nvidia"],
            packages=["pytorch=2.5.1=*cuda126*", "torchvision"],
            cuda_version="12.6",
            cuda_driver="12.8",
        ),
    )
    doc = render(p)
    assert doc == {
        "name": "torch-env",
        "channels": ["conda-forge", "nvidia"],
        "dependencies": ["python=3.11", "pytorch=2.5.1=*cuda126*", "torchvision", "cuda-version=12.6"],
    }
    text = render_environment_yml(conda_env_for(p, {}, name="torch-env"))
    assert "CONDA_OVERRIDE_CUDA=12.8" in text


def test_cpu_build_gets_no_cuda_pin_and_a_given_pin_is_not_repeated() -> None:
    cpu = plan(
        conda=CondaSpec(channels=["conda-forge"], packages=["pytorch=2.5.1=*cpu*"], cuda_version="12.6")
    )
    assert "cuda-version=12.6" not in render(cpu)["dependencies"]
    own = plan(
        accelerator="cuda",
        conda=CondaSpec(channels=["c"], packages=["x", "cuda-version>=12.4,<13"], cuda_version="12.6"),
    )
    deps = render(own)["dependencies"]
    assert [d for d in deps if d.startswith("cuda-version")] == ["cuda-version>=12.4,<13"]
    with_python = plan(conda=CondaSpec(channels=["c"], packages=["python=3.12", "x"]))
    assert render(with_python)["dependencies"] == ["python=3.12", "x"]


def test_mixed_build_gets_a_pip_section() -> None:
    # TensorFlow 2.10 on Windows: CUDA and cuDNN from conda-forge, TensorFlow itself from pip.
    p = plan(
        framework="tensorflow",
        requirements=["tensorflow==2.10.1", "numpy<2"],
        index_urls=["https://example.invalid/simple"],
        conda=CondaSpec(channels=["conda-forge"], packages=["cudatoolkit=11.2", "cudnn=8.1.0", "numpy=1.26"]),
    )
    doc = render(p)
    assert doc["dependencies"][:4] == ["python=3.11", "cudatoolkit=11.2", "cudnn=8.1.0", "numpy=1.26"]
    assert "pip" in doc["dependencies"]
    pip = next(d for d in doc["dependencies"] if isinstance(d, dict))["pip"]
    # numpy comes from conda already; the framework's own index goes first, as in a requirements file.
    assert pip == ["--extra-index-url https://example.invalid/simple", "tensorflow==2.10.1"]
    explicit = plan(
        conda=CondaSpec(channels=["c"], packages=["x"], pip=["onlythis==1"]), requirements=["other"]
    )
    assert next(d for d in render(explicit)["dependencies"] if isinstance(d, dict))["pip"] == ["onlythis==1"]


def test_pip_only_build_takes_python_from_conda_forge() -> None:
    p = plan(conda=None, requirements=["torch==2.13.0"])
    doc = render(p)
    assert doc["channels"] == ["conda-forge"]
    assert doc["dependencies"] == ["python=3.11", "pip", {"pip": ["torch==2.13.0"]}]


def test_variables_section() -> None:
    doc = render(plan(env={"KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "2"}))
    assert doc["variables"] == {"KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_no_conda_form_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no conda build"):
        conda_env_for(plan(conda=None), {}, name="e")
    with pytest.raises(UsageError, match="names no channel"):
        conda_env_for(plan(conda=CondaSpec(packages=["x"])), {}, name="e")
    with pytest.raises(UsageError, match="refused"):
        conda_env_for(plan(status="refused"), {}, name="e")


def test_virtual_cuda_follows_conda_override_semantics() -> None:
    p = plan(accelerator="cuda", conda=CondaSpec(channels=["c"], packages=["x"], cuda_driver="12.4"))
    assert virtual_cuda(p, {}) == ("12.4", "the host profile's NVIDIA driver")
    assert virtual_cuda(p, {"CONDA_OVERRIDE_CUDA": "12.8"}) == ("12.8", "CONDA_OVERRIDE_CUDA")
    assert virtual_cuda(p, {"CONDA_OVERRIDE_CUDA": ""}) == (None, "CONDA_OVERRIDE_CUDA")
    assert virtual_cuda(plan(), {})[0] is None
    env = conda_env_for(p, {}, name="e")
    assert env.solver_env() == {"CONDA_OVERRIDE_CUDA": "12.4"}
    assert conda_env_for(plan(), {}, name="e").solver_env() == {"CONDA_OVERRIDE_CUDA": ""}


def test_render_is_what_dry_run_prints(tmp_path) -> None:
    opts = InstallOptions(target=tmp_path / "envs" / "pt", env={"PATH": str(tmp_path)}, dry_run=True)
    text = CondaBackend().render(plan(), opts)
    doc = yaml.safe_load(text)
    assert doc["name"] == "pt" and doc["dependencies"] == ["python=3.11", "pytorch=2.5.1"]
    assert f"-p {tmp_path / 'envs' / 'pt'}" in text and "smoke test pytorch" in text
    assert not (tmp_path / "envs").exists()


@pytest.mark.parametrize(
    "spec",
    [
        "numpy >=1.24,<2",
        "conda-forge::pytorch=2.5.1=*cuda126*",
        "pytorch[version='>=2.5',build=*cuda*]",
        "python 3.11.* *_cpython",
        "yes",
        "1.10",
        "a: b",
        "x # not a comment",
        "- dash",
        "*star",
    ],
)
def test_specs_survive_yaml(spec: str) -> None:
    env = CondaEnv(
        name="e", channels=("file:///tmp/my channel", "https://mirror.example/conda-forge"), specs=(spec,)
    )
    doc = yaml.safe_load(render_environment_yml(env))
    assert doc["dependencies"] == [spec]
    assert doc["channels"] == list(env.channels)


@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
)
def test_any_spec_text_survives_yaml(spec: str) -> None:
    env = CondaEnv(name=spec, channels=(spec,), specs=(spec,), pip=(spec,), variables={"V": spec})
    doc = yaml.safe_load(render_environment_yml(env))
    assert doc["name"] == spec and doc["channels"] == [spec] and doc["dependencies"][0] == spec
    assert doc["dependencies"][1] == {"pip": [spec]} and doc["variables"] == {"V": spec}


def test_spec_name() -> None:
    assert spec_name("conda-forge::PyTorch=2.5.1=*cuda*") == "pytorch"
    assert spec_name("cuda-version>=12.4,<13") == "cuda-version"
    assert spec_name("python 3.11.*") == "python"


# -- every recipe build that has a conda form -------------------------------------------------------------


def _conda_builds():

    for recipe in load_recipes(None):
        for build in recipe.builds:
            if build.conda is not None and (build.conda.packages or build.conda.pip):
                yield pytest.param(recipe, build, id=f"{recipe.name}-{build.version}-{build.variant}")


@pytest.mark.parametrize(("recipe", "build"), list(_conda_builds()))
def test_recipe_conda_builds_render_what_the_recipe_says(recipe, build) -> None:
    p = Plan(
        status="ok",
        framework=recipe.name,
        version=build.version,
        variant=build.variant,
        accelerator=build.accelerator,
        cuda=build.cuda,
        method="conda",
        python="3.10",
        requirements=list(build.requirements),
        index_urls=[build.index_url] if build.index_url else [],
        env=dict(build.env),
        conda=build.conda,
    )
    doc = render(p, name=recipe.name)
    conda = build.conda
    assert doc["channels"] == (list(conda.channels) or ["conda-forge"])
    deps = [d for d in doc["dependencies"] if isinstance(d, str)]
    assert (
        deps[: 1 + len(conda.packages)]
        == (
            (["python=3.10"] if "python" not in {spec_name(s) for s in conda.packages} else [])
            + list(conda.packages)
        )[: 1 + len(conda.packages)]
    )
    for spec in conda.packages:
        assert spec in deps
    if conda.cuda_version and build.accelerator == "cuda":
        assert any(d.startswith("cuda-version") for d in deps)
    pip = [d["pip"] for d in doc["dependencies"] if isinstance(d, dict)]
    if pip:
        assert "pip" in deps
        for req in conda.pip or []:
            assert req in pip[0]


def test_there_is_a_recipe_with_a_conda_build() -> None:
    assert list(_conda_builds()), "no recipe has a conda build: the test above checks nothing"


# -- solver output -> one message ----------------------------------------------------------------------------

ENV = CondaEnv(
    name="e",
    channels=("conda-forge", "nvidia"),
    specs=("python=3.11", "needsgpu"),
    cuda_driver="12.4",
    cuda_source="the host profile's NVIDIA driver",
)

RATTLER_CUDA = """SolverError: Cannot solve the request because of: needsgpu * cannot be installed because there are no viable options:
└─ needsgpu 1.0 would require
   └─ __cuda >=12.8, for which no candidates were found.
"""
LIBSOLV_CUDA = "nothing provides __cuda >=12.8 needed by needsgpu-1.0-0"
LIBMAMBA_CUDA = """error    libmamba Could not solve for environment specs
    The following package could not be installed
    └─ needsgpu =* * is not installable because it requires
       └─ __cuda >=12.8 *, which is missing on the system.
critical libmamba Could not solve for environment specs"""
CONDA_CUDA = """UnsatisfiableError: The following specifications were found to be incompatible with your system:

  - feature:/linux-64::__cuda==12.4=0
  - needsgpu -> __cuda[version='>=12.8']

Your installed version is: 12.4
"""


@pytest.mark.parametrize(
    "text",
    [RATTLER_CUDA, LIBSOLV_CUDA, LIBMAMBA_CUDA, CONDA_CUDA],
    ids=["rattler", "libsolv", "libmamba", "conda"],
)
def test_driver_too_old_in_every_dialect(text: str) -> None:
    err = explain(text, ENV, tool="t")
    assert isinstance(err, InstallError)
    assert "needsgpu" in err.message and "__cuda >=12.8" in err.message
    assert "supports CUDA 12.4" in err.message
    assert "Update the NVIDIA driver" in str(err)


def test_no_driver_at_all() -> None:
    env = CondaEnv(
        name="e",
        channels=("c",),
        specs=("x",),
        cuda_driver=None,
        cuda_source="the host profile has no NVIDIA driver",
    )
    err = explain(RATTLER_CUDA, env, tool="t")
    assert "there is no CUDA driver" in err.message and "needsgpu 1.0" in err.message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (
            "SolverError: Cannot solve the request because of: No candidates were found for nosuch *.\n",
            "nosuch *",
        ),
        ("nothing provides requested nosuch 1.0\n", "nosuch 1.0"),
        (
            "error libmamba Could not solve\n    The following package could not be installed\n    └─ nosuch =* * does not exist (perhaps a typo or a missing channel).\n",
            "nosuch =* *",
        ),
        (
            "PackagesNotFoundError: The following packages are not available from current channels:\n\n  - nosuch\n",
            "nosuch",
        ),
    ],
)
def test_missing_package_in_every_dialect(text: str, what: str) -> None:
    err = explain(text, ENV, tool="t")
    assert isinstance(err, InstallError)
    assert err.message == f"no package in conda channel(s) conda-forge, nvidia matches {what}."


def test_conflict_is_short() -> None:
    text = (
        "SolverError: Cannot solve the request because of: The following packages are incompatible\n"
        "├─ legacy-only * can be installed with any of the following options:\n"
        "│  └─ legacy-only 1.0 would require\n"
        "│     └─ python <3.8, which can be installed with any of the following options:\n"
        "│        └─ python 3.7.12\n"
        "└─ python 3.11.* cannot be installed because there are no viable options:\n"
        "   └─ python 3.11.7 would constrain\n" * 30
    )
    err = explain(text, ENV, tool="t")
    assert err.message.startswith("the conda packages python=3.11, needsgpu cannot be installed together: ")
    assert "legacy-only 1.0 would require" in err.message and len(err.message) < 600


def test_network_and_channel_errors() -> None:
    net = explain(
        "GatewayError: error sending request for url (https://conda.anaconda.org/conda-forge/noarch/repodata.json)\n"
        "Caused by: client error (Connect)\nCaused by: dns error\nCaused by: failed to lookup address information",
        ENV,
        tool="t",
    )
    assert isinstance(net, NetworkError) and "cannot reach conda channel conda-forge" in net.message
    curl = explain(
        "Could not resolve host: conda.anaconda.org\ncurl error 6 for url https://conda.anaconda.org/nvidia/",
        ENV,
        tool="t",
    )
    assert isinstance(curl, NetworkError)
    gone = explain(
        "GatewayError: could not find subdir 'noarch' in channel 'https://conda.anaconda.org/nvidia/'\n404 Not Found",
        ENV,
        tool="t",
    )
    assert isinstance(gone, InstallError) and gone.message.startswith("conda channel nvidia does not exist")


def test_crash_shows_its_last_line() -> None:
    err = explain(
        "Traceback (most recent call last):\n  File x\nRuntimeError: boom", ENV, tool="micromamba 2.0"
    )
    assert err.message == "micromamba 2.0 failed: RuntimeError: boom."
