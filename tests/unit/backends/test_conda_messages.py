"""The conda solvers' own words (fwsetup.backends.conda_messages): one test per form the adapter reads, each
with a message a solver printed, named by where it was seen. How fwsetup says each code is
tests/unit/test_conda_render.py's (explain)."""

from __future__ import annotations

import pytest

from fwsetup.backends import conda_messages

# KosinskiLab/AlphaPulldownSnakemake#28 (conda with the libmamba solver: a __cuda with no version)
LIBMAMBA_UNSATISFIABLE = """Solving environment: failed
LibMambaUnsatisfiableError: Encountered problems while solving:
  - nothing provides __cuda needed by jaxlib-0.3.10-cuda112py310h59d0295_0
  - nothing provides __cuda needed by jaxlib-0.3.10-cuda112py310h59d0295_0
Could not solve for environment specs
The following package could not be installed
└─ jaxlib * *cuda* is uninstallable because it requires
   └─ __cuda  , which is missing on the system.
"""
# torchmd/torchmd-net#249 (mamba: a conflict tree)
MAMBA_CONFLICT = """Could not solve for environment specs
The following packages are incompatible
├─ cuda-version 12.2**  is installable and it requires
│  └─ cudatoolkit 12.2|12.2.* , which can be installed;
└─ cudatoolkit is not installable because it conflicts with any installable versions previously reported.
"""
# mamba-org/mamba#3699 (micromamba 2: a spec no channel has)
LIBMAMBA_MISSING = """error    libmamba Could not solve for environment specs
    The following package could not be installed
    └─ pytorch =2.3.1 ^py3.10_cuda11.8*$ does not exist (perhaps a typo or a missing channel).
"""
# prefix-dev/pixi#2645 (rattler's resolvo, as py-rattler raises it)
RATTLER_MISSING = "Cannot solve the request because of: No candidates were found for tes *.\n"
# conda's PackagesNotFoundError (conda/exceptions.py)
CONDA_MISSING = """PackagesNotFoundError: The following packages are not available from current channels:

  - nosuch

Current channels:

  - https://conda.anaconda.org/conda-forge/linux-64
"""
# libmamba's libsolv message with a versioned __cuda (micromamba 1.x; the form of mamba-org/mamba's
# "nothing provides __cuda >=11.8 needed by ..." reports)
LIBSOLV_CUDA = "nothing provides __cuda >=12.8 needed by needsgpu-1.0-0"
# rattler's gateway (reqwest) when the channel's host does not resolve (prefix-dev/pixi#5092's chain)
RATTLER_NETWORK = """GatewayError: error sending request for url (https://conda.anaconda.org/conda-forge/noarch/repodata.json)
Caused by: client error (Connect)
Caused by: dns error: failed to lookup address information: Temporary failure in name resolution
"""
# conda's UnavailableInvalidChannel (conda/exceptions.py) for a channel that does not exist
NO_CHANNEL = """UnavailableInvalidChannel: HTTP 404 NOT FOUND for channel nosuch <https://conda.anaconda.org/nosuch>

The channel is not accessible or is invalid.
"""
# conda's InvalidMatchSpec (conda/exceptions.py)
INVALID_SPEC = "InvalidMatchSpec: Invalid spec 'numpy=>1.0': Invalid version '>1.0': invalid operator\n"


def test_a_versioned_cuda_need_names_the_package_and_the_constraint() -> None:
    assert conda_messages.read_failure(LIBSOLV_CUDA) == conda_messages.CondaFailure(
        "needs_cuda", ">=12.8", "needsgpu 1.0"
    )


def test_a_cuda_need_without_a_version_is_a_conflict() -> None:
    got = conda_messages.read_failure(LIBMAMBA_UNSATISFIABLE)
    assert got.code == "unsatisfiable" and "jaxlib" in got.detail


def test_a_conflict_tree_is_unsatisfiable_and_short() -> None:
    got = conda_messages.read_failure(MAMBA_CONFLICT)
    assert got.code == "unsatisfiable"
    assert got.detail.startswith("The following packages are incompatible; cuda-version 12.2**")


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (LIBMAMBA_MISSING, "pytorch =2.3.1 ^py3.10_cuda11.8*$"),
        (RATTLER_MISSING, "tes *"),
        (CONDA_MISSING, "nosuch"),
    ],
    ids=["libmamba", "rattler", "conda"],
)
def test_a_missing_package_names_the_spec(text: str, spec: str) -> None:
    assert conda_messages.read_failure(text) == conda_messages.CondaFailure("missing_package", spec)


def test_an_unreachable_channel_is_network() -> None:
    got = conda_messages.read_failure(RATTLER_NETWORK)
    assert got == conda_messages.CondaFailure("network", "client error (Connect)")  # its first network line
    assert conda_messages.channel_named(RATTLER_NETWORK, ["nvidia", "conda-forge"]) == "conda-forge"


def test_a_channel_that_does_not_exist() -> None:
    got = conda_messages.read_failure(NO_CHANNEL)
    assert got.code == "no_channel" and "HTTP 404 NOT FOUND for channel nosuch" in got.detail


def test_an_invalid_spec() -> None:
    got = conda_messages.read_failure(INVALID_SPEC)
    assert got.code == "invalid_spec" and "Invalid spec 'numpy=>1.0'" in got.detail


def test_a_crash_is_other_with_its_last_line() -> None:
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: boom\n'
    assert conda_messages.read_failure(text) == conda_messages.CondaFailure("other", "RuntimeError: boom")
    assert conda_messages.read_failure("") == conda_messages.CondaFailure("other", "no output")
