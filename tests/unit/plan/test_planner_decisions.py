"""The right decision for each framework on each fixture machine (tests/fixtures/*.json), from the shipped
recipes and compatibility data. Each case cites the upstream fact it rests on.

The planner's rule (plan.py): the newest release that has a build for this platform (OS, arch, Python, CPU
instruction sets, method, --gpu/--cpu); then its best variant that runs here. An older release is never
picked because of the GPU or the driver: it is offered as a suggestion with the command that selects it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fwsetup.plan import Plan, Request, make_plan
from fwsetup.plan.container import plan_image
from fwsetup.profile import HostProfile, load
from fwsetup.recipes.load import load_recipes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWSETUP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def profile(name: str) -> HostProfile:
    return load(FIXTURES / f"{name}.json")


def plan(fixture: str, framework: str, **request: Any) -> Plan:
    recipe = load_recipes().get(framework)
    return make_plan(profile(fixture), recipe, Request(framework=framework, **request))


def text(items: list[str]) -> str:
    return "\n".join(items)


# ---- PyTorch ---------------------------------------------------------------------------------------------
# Sources: pytorch/pytorch RELEASE.md "Release Compatibility Matrix" (CUDA variants per release, arch lists),
# https://pytorch.org/get-started/previous-versions/ (index URLs), PyPI wheel tags (Python per release).


def test_pytorch_no_gpu_is_the_newest_cpu_build() -> None:
    p = plan("no-gpu", "pytorch")
    assert (p.status, p.variant, p.accelerator) == ("ok", "cpu", "cpu")
    assert p.version == "2.15.0"
    assert p.requirements == ["torch==2.15.0"]
    # The CPU wheel comes from PyTorch's cpu index (PyPI's Linux wheel is the CUDA build).
    assert p.index_urls == ["https://download.pytorch.org/whl/cpu"]
    assert p.smoke is not None and p.smoke.device == "cpu"
    assert "NVML: missing" in text(p.reasons)


def test_pytorch_no_gpu_with_gpu_refuses_and_offers_the_cpu() -> None:
    p = plan("no-gpu", "pytorch", want="gpu")
    assert p.status == "refused"
    assert "no usable NVIDIA GPU" in text(p.reasons)
    assert "`fwsetup plan pytorch --cpu`" in text(p.suggestions)


def test_pytorch_h100_driver_580_gets_cu130() -> None:
    # Driver 580.65.06 is CUDA 13.0's toolkit driver: cu130 runs natively; cu132 would lean on minor-version
    # compatibility. sm_90 (H100) is in every 2.15 CUDA arch list.
    p = plan("datacenter-h100", "pytorch")
    assert (p.status, p.version, p.variant, p.cuda) == ("ok", "2.15.0", "cu130", "13.0")
    assert p.index_urls == ["https://download.pytorch.org/whl/cu130"]
    assert p.min_driver == "580.65.06"
    assert p.gpus == [0, 1]  # every GPU the job sees is judged (issue 22), not GPU 0 alone
    assert p.smoke is not None and (p.smoke.device, p.smoke.all_gpus) == ("cuda", False)
    assert "Chose cu130 over cu132" in text(p.reasons)


def test_pytorch_h100_all_gpus_uses_both_over_nvlink() -> None:
    p = plan("datacenter-h100", "pytorch", want="gpu", all_gpus=True)
    assert p.status == "ok"
    assert p.gpus == [0, 1]
    assert p.smoke is not None and p.smoke.all_gpus
    assert "NVLink" in text(p.reasons)


def test_pytorch_gh200_gets_the_aarch64_cuda_wheel() -> None:
    # RELEASE.md: Linux aarch64 CUDA wheels (arch list 8.0;9.0;10.0;11.0;12.0) from 2.x cu12x/cu13x.
    p = plan("gh200", "pytorch")
    assert (p.status, p.variant, p.accelerator) == ("ok", "cu130", "cuda")
    assert "sm_90" in text(p.reasons)


def test_pytorch_pascal_on_driver_470_gets_the_newest_release_that_runs_on_its_gpu() -> None:
    # Driver 470 supports CUDA 11.4 at most: every CUDA 12 build needs >= 525.60.13 (MVC minimum of 12.x),
    # and the cu13x builds have no sm_6x kernels. PyTorch 2.7.1 cu118 (sm_60 in its list; CUDA 11.x runs on
    # >= 450.80.02) is the newest release that passes, so --gpu picks it; 2.14 cu126 needs a driver upgrade.
    p = plan("pascal-470", "pytorch", want="gpu")
    assert (p.status, p.version, p.variant) == ("ok", "2.7.1", "cu118")
    assert p.min_driver == "450.80.02"
    assert "470.256.02" in text(p.reasons)
    assert "2.14.1 has no GPU build that runs on this machine" in p.reasons[0]
    assert "Upgrade the NVIDIA driver to >= 525.60.13" in text(p.suggestions)


def test_pytorch_pascal_auto_uses_the_gpu_when_an_older_release_runs_on_it() -> None:
    # Neither --gpu nor --cpu: the GPU when usable. It is (NVML ok, driver 470), through 2.7.1 cu118.
    p = plan("pascal-470", "pytorch")
    assert (p.status, p.version, p.variant) == ("ok", "2.7.1", "cu118")
    q = plan("pascal-470", "pytorch", want="cpu")
    # Python 3.10: 2.15 needs >= 3.11, so 2.14.1 is the newest CPU release for this platform.
    assert (q.status, q.version, q.variant) == ("ok", "2.14.1", "cpu")
    assert "2.15.0 has none" in q.reasons[0]


def test_pytorch_pascal_with_the_suggested_release_uses_the_gpu() -> None:
    p = plan("pascal-470", "pytorch", want="gpu", version="2.7.1")
    assert (p.status, p.version, p.variant) == ("ok", "2.7.1", "cu118")
    assert p.min_driver == "450.80.02"
    assert p.index_urls == ["https://download.pytorch.org/whl/cu118"]


def test_pytorch_kepler_gets_the_last_release_with_sm37_kernels_and_a_cudnn_for_it() -> None:
    # Kepler (sm_37) left the arch lists with CUDA 12 (CUDA 12.0 removed Kepler); the cu118 wheels up to 2.7
    # still have sm_37 kernels (RELEASE.md / builder build_cuda.sh), but from 2.4 on they bring cuDNN 9.1,
    # which supports compute capability 5.0 and newer only (cuDNN support matrix, data/cudnn.toml): the last
    # that trains on a K80 is 2.3.1 cu118 with cuDNN 8.7 (3.5 and newer).
    p = plan("kepler", "pytorch", want="gpu")
    assert (p.status, p.version, p.variant) == ("ok", "2.3.1", "cu118")
    assert "compute capability 3.7" in text(p.reasons)
    assert "cuDNN 8.7.0.84" in text(p.reasons)
    # Pinned to a release without sm_37: refused, with the CPU as the way out.
    q = plan("kepler", "pytorch", want="gpu", version="2.15")
    assert q.status == "refused"
    assert "compute capability 3.7" in text(q.reasons)
    assert "--cpu" in text(q.suggestions)


def test_pytorch_apple_silicon_uses_mps() -> None:
    # macOS arm64 wheels ship the MPS backend (torch.backends.mps, macOS 12.3+).
    p = plan("apple-silicon", "pytorch")
    assert (p.status, p.variant, p.accelerator) == ("ok", "mps", "mps")
    assert p.smoke is not None and p.smoke.device == "mps"
    assert plan("apple-silicon", "pytorch", want="cpu").variant == "cpu"
    assert plan("apple-silicon", "pytorch", want="gpu").variant == "mps"


def test_pytorch_windows_driver_560_and_the_cuda13_only_release() -> None:
    # 2.15 publishes only CUDA 13 wheels (no cu126): they need a R580 driver; 560.94 runs cu126 (>= 528.33,
    # the Windows MVC minimum of 12.x), so 2.14.1 cu126 is the GPU answer.
    p = plan("windows-nvidia", "pytorch")
    assert (p.status, p.version, p.variant, p.min_driver) == ("ok", "2.14.1", "cu126", "528.33")
    assert "Upgrade the NVIDIA driver to >= 580" in text(p.suggestions)
    q = plan("windows-nvidia", "pytorch", want="cpu")
    assert (q.status, q.version, q.variant) == ("ok", "2.15.0", "cpu")


def test_pytorch_linux_aarch64_without_gpu_is_cpu() -> None:
    p = plan("linux-aarch64", "pytorch")
    assert (p.status, p.variant) == ("ok", "cpu")
    assert p.index_urls == ["https://download.pytorch.org/whl/cpu"]


def test_pytorch_cpu_needs_no_avx() -> None:
    # ATen dispatches CPU kernels by capability at run time (DEFAULT / AVX2 / AVX512): no AVX requirement.
    assert plan("no-avx", "pytorch").status == "ok"


def test_pytorch_python_314() -> None:
    # CPython 3.14 wheels from PyTorch 2.9 on.
    p = plan("new-python", "pytorch")
    assert (p.status, p.version, p.variant) == ("ok", "2.15.0", "cpu")


def test_pytorch_mig_gpus_are_planned_for_their_architecture() -> None:
    # MIG user guide: a GPU in MIG mode runs CUDA work on its MIG instances, one per process (issue 22): the
    # build is judged by the A100's architecture and the driver, and the plan says how a process picks one.
    p = plan("mig", "pytorch", want="gpu")
    assert (p.status, p.accelerator, p.variant) == ("ok", "cuda", "cu126")
    assert "in MIG mode" in text(p.reasons) and "CUDA_VISIBLE_DEVICES=MIG-" in text(p.reasons)
    assert plan("mig", "pytorch").variant == "cu126"
    assert (
        plan("mig", "pytorch", want="gpu", all_gpus=True).status == "refused"
    )  # one MIG instance per process


# ---- TensorFlow ------------------------------------------------------------------------------------------
# Sources: https://www.tensorflow.org/install/pip (hardware requirements: AVX; driver >= 525.60.13; Windows
# native GPU ended with 2.10; WSL2), https://www.tensorflow.org/install/source#gpu (tested configurations).


def test_tensorflow_no_gpu_is_tensorflow_cpu() -> None:
    p = plan("no-gpu", "tensorflow")
    assert (p.status, p.version, p.variant) == ("ok", "2.21.0", "cpu")
    assert p.requirements == ["tensorflow-cpu==2.21.0"]


def test_tensorflow_needs_avx() -> None:
    # "TensorFlow binaries use AVX instructions, which may not run on older CPUs."
    for want in ("auto", "cpu"):
        p = plan("no-avx", "tensorflow", want=want)
        assert p.status == "refused"
        assert "avx" in text(p.reasons)
    assert "source" in text(plan("no-avx", "tensorflow").suggestions)


def test_tensorflow_h100_is_the_and_cuda_build() -> None:
    # TF 2.21 is tested with CUDA 12.5 / cuDNN 9.3; official wheels carry compute_90 PTX, so Hopper JITs.
    p = plan("datacenter-h100", "tensorflow")
    assert (p.status, p.variant, p.cuda) == ("ok", "cu125", "12.5")
    assert p.requirements == ["tensorflow[and-cuda]==2.21.0"]
    assert p.min_driver == "525.60.13"
    assert "compute_90" in text(p.reasons)


def test_tensorflow_pascal_470_gets_2_14() -> None:
    # 2.21 needs driver >= 525.60.13; 2.14 was tested with CUDA 11.8 (runs on >= 450.80.02) and lists sm_60.
    p = plan("pascal-470", "tensorflow", want="gpu")
    assert (p.status, p.version, p.variant) == ("ok", "2.14.1", "cu118")
    assert "525.60.13" in text(p.reasons)


def test_tensorflow_kepler_with_2_14_runs_sm35_code() -> None:
    # sm_35 SASS runs on a 3.7 GPU (same major, higher minor).
    p = plan("kepler", "tensorflow", want="gpu", version="2.14.1")
    assert (p.status, p.variant) == ("ok", "cu118")


def test_tensorflow_windows_gpu_means_wsl2_or_tf_2_10() -> None:
    # "TensorFlow 2.10 was the last TensorFlow release that supported GPU on native-Windows. Starting with
    # TensorFlow 2.11, you will need to install TensorFlow in WSL2."
    p = plan("windows-nvidia", "tensorflow", want="gpu")
    assert p.status == "refused"
    sugg = text(p.suggestions)
    assert "Use WSL2" in sugg
    assert "--version 2.10.1 --python 3.10" in sugg
    q = plan("windows-nvidia", "tensorflow", want="gpu", python="3.10")
    assert (q.status, q.version, q.variant) == ("ok", "2.10.1", "cu112")
    r = plan("windows-nvidia", "tensorflow")
    assert (r.status, r.variant) == ("ok", "cpu")
    assert "Use WSL2" in text(r.suggestions)


def test_tensorflow_apple_silicon() -> None:
    # macOS: CPU wheels; the GPU through Apple's tensorflow-metal plugin (its newest pairing here is 2.18).
    # Apple's GPU counts as a GPU: with neither flag, the metal build.
    p = plan("apple-silicon", "tensorflow")
    assert (p.status, p.version, p.variant, p.accelerator) == ("ok", "2.18.1", "metal", "mps")
    assert "tensorflow-metal" in " ".join(p.requirements)
    q = plan("apple-silicon", "tensorflow", want="cpu")
    assert (q.status, q.version, q.variant) == ("ok", "2.21.0", "cpu")


def test_tensorflow_python_314_has_no_wheels() -> None:
    p = plan("new-python", "tensorflow")
    assert p.status == "refused"
    assert "Use Python 3.13" in text(p.suggestions)


def test_tensorflow_arm64_linux_is_cpu_only() -> None:
    # "Linux Arm64 (CPU-only)" in the pip download table.
    assert plan("linux-aarch64", "tensorflow").variant == "cpu"
    assert plan("gh200", "tensorflow", want="gpu").status == "refused"


# ---- JAX -------------------------------------------------------------------------------------------------
# Source: https://docs.jax.dev/en/latest/installation.html (jax[cuda13]: driver >= 580, SM >= 7.5;
# jax[cuda12]: driver >= 525, SM >= 5.2; NVIDIA GPUs on Linux x86_64 / aarch64 only).


def test_jax_h100_all_gpus_is_cuda13() -> None:
    p = plan("datacenter-h100", "jax", all_gpus=True)
    assert (p.status, p.variant) == ("ok", "cuda13")
    assert p.requirements == [f"jax[cuda13]=={p.version}"]
    assert p.gpus == [0, 1]
    assert plan("gh200", "jax").variant == "cuda13"


def test_jax_pascal_470_needs_a_newer_driver() -> None:
    """A GTX 1080 (6.1) with driver 470: jax[cuda12] needs driver >= 525.60.13. The driver is all it needs: its
    plugin's cuDNN range (>=9.8,<10) would resolve to 9.11+ (7.5 and newer only), and the plan caps it below 9.11
    (issue 22 class 2), so upgrading the driver is the right advice."""
    p = plan("pascal-470", "jax", want="gpu")
    assert p.status == "refused"
    assert "Upgrade the NVIDIA driver to >= 525.60.13" in text(p.suggestions)
    assert "which supports compute capability 7.5 and newer only, not" not in text(p.reasons)


def test_jax_kepler_is_too_old_for_cuda12() -> None:
    p = plan("kepler", "jax", want="gpu")
    assert p.status == "refused"
    assert "compute capability 3.7" in text(p.reasons)


def test_jax_windows_gpu_only_through_wsl2() -> None:
    p = plan("windows-nvidia", "jax", want="gpu")
    assert p.status == "refused"
    assert "Use WSL2" in text(p.suggestions)


def test_jax_python_311_gets_the_last_release_for_it() -> None:
    # jaxlib 0.11+ wheels start at CPython 3.12.
    p = plan("no-gpu", "jax")
    assert (p.status, p.version, p.variant) == ("ok", "0.10.2", "cpu")
    assert "Python 3.12" in text(p.suggestions)


def test_jax_needs_avx() -> None:
    assert plan("no-avx", "jax").status == "refused"


# ---- Keras 3 ---------------------------------------------------------------------------------------------
# Source: https://keras.io/getting_started/ (backends; KERAS_BACKEND before import; default TensorFlow).


def test_keras_default_backend_is_tensorflow() -> None:
    p = plan("no-gpu", "keras")
    assert (p.status, p.variant) == ("ok", "tensorflow-cpu")
    assert p.env == {"KERAS_BACKEND": "tensorflow"}
    assert p.smoke is not None and p.smoke.env == {"KERAS_BACKEND": "tensorflow"}
    q = plan("datacenter-h100", "keras")
    assert (q.status, q.variant) == ("ok", "tensorflow-cu125")


def test_keras_on_python_314_uses_a_backend_that_has_wheels() -> None:
    p = plan("new-python", "keras")
    assert p.status == "ok"
    assert p.variant in ("jax", "torch")
    assert p.env["KERAS_BACKEND"] == p.variant


def test_keras_without_avx_uses_the_torch_backend() -> None:
    p = plan("no-avx", "keras")
    assert (p.status, p.variant) == ("ok", "torch")


# ---- retired and legacy systems --------------------------------------------------------------------------


def test_mxnet_is_retired_but_runs_on_old_pythons_with_numpy_pinned() -> None:
    # MXNet 1.9.1 is the final release (Apache Attic, 2023); it fails to import with numpy >= 1.24.
    p = plan("pascal-470", "mxnet")
    assert (p.status, p.variant) == ("ok", "cu112")
    assert "numpy<1.24" in p.requirements
    assert "retired" in text(p.reasons)
    q = plan("new-python", "mxnet")
    assert q.status == "refused"
    assert "Use Python 3.11" in text(q.suggestions)


def test_mxnet_has_no_build_for_hopper() -> None:
    p = plan("datacenter-h100", "mxnet", want="gpu", python="3.11")
    assert p.status == "refused"
    assert "compute capability 9.0" in text(p.reasons)


def test_theano_and_pytensor() -> None:
    p = plan("no-gpu", "theano")
    assert (p.status, p.version) == ("ok", "1.0.5")
    assert "numpy<1.24" in p.requirements
    assert p.env.get("THEANO_FLAGS") == "blas.ldflags="
    assert plan("new-python", "theano").status == "refused"
    assert plan("new-python", "pytensor").status == "ok"
    assert "Use Python 3.11" in text(plan("pascal-470", "pytensor").suggestions)


def test_caffe_is_never_pip_installed() -> None:
    # PyPI `caffe` is an empty placeholder; Caffe comes from a distribution's packages (Debian 11's
    # python3-caffe, in a container elsewhere) or conda-forge.
    p = plan("no-gpu", "caffe")
    assert p.status == "refused"
    assert "`fwsetup plan caffe --method docker`" in text(p.suggestions)

    q, _ = plan_image(load_recipes().get("caffe"), profile("no-gpu"), Request(framework="caffe", want="cpu"))
    assert (q.status, q.variant, q.python) == ("ok", "apt-cpu", "3.9")
    assert q.requirements == [] and q.image is not None
    assert q.image.base == "debian:bullseye" and q.image.system_packages == ["python3-caffe"]


@pytest.mark.parametrize("name", ["deeplearning4j", "matconvnet", "amazon-ml"])
@pytest.mark.parametrize("fixture", ["no-gpu", "datacenter-h100", "apple-silicon", "windows-nvidia"])
def test_not_installable_systems_refuse_with_their_alternatives(name: str, fixture: str) -> None:
    p = plan(fixture, name)
    assert p.status == "refused"
    recipe = load_recipes().get(name)
    assert p.suggestions[: len(recipe.alternatives)] == recipe.alternatives
    assert p.requirements == []


@pytest.mark.parametrize("name", ["caffe2", "torch7"])
@pytest.mark.parametrize("fixture", ["no-gpu", "datacenter-h100", "apple-silicon", "windows-nvidia"])
def test_seed_systems_with_an_image_route_refuse_a_venv_here_and_name_the_image(
    name: str, fixture: str
) -> None:
    """Caffe2 (torch 1.10.2: Python <= 3.9) and Torch7 (Ubuntu 18.04's packages) install on none of these
    hosts directly: refused, with their alternatives; on Linux the image route is named with its command."""
    p = plan(fixture, name)
    assert p.status == "refused" and p.requirements == []
    for alt in load_recipes().get(name).alternatives:
        assert alt in p.suggestions
    linux = load(FIXTURES / f"{fixture}.json").os.system == "linux"
    assert (f"`fwsetup plan {name} --method docker`" in " ".join(p.suggestions)) == linux, p.suggestions


def test_amazon_ml_is_cloud_only() -> None:
    p = plan("no-gpu", "aml")
    assert p.status == "refused"
    assert "cloud-only" in text(p.reasons)
    assert "SageMaker" in text(p.suggestions)


@pytest.mark.parametrize(
    ("fixture", "framework", "want"),
    [("kepler", "pytorch", "gpu"), ("pascal-470", "pytorch", "gpu"), ("no-gpu", "pytorch", "gpu"),
     ("kepler", "tensorflow", "gpu"), ("driver-cuda129", "pytorch", "gpu")],
)  # fmt: skip
def test_every_release_not_chosen_says_why(fixture: str, framework: str, want: str) -> None:
    """`not chosen` printed "2.4.0 cu118, cu121, cu124: " with nothing after it on a Tesla K80: newer releases
    passed over only for a GPU reason (cuDNN 9's floor) showed no reason at all."""
    p = plan(fixture, framework, want=want)
    assert p.rejected, "the fixture has releases that were passed over"
    for rej in p.rejected:
        assert rej.why and all(w.strip() for w in rej.why), f"{rej.version} {rej.variant}: no reason"
