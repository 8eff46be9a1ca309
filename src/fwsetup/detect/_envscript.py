# Run by fwsetup inside the inspected interpreter (`python -c`), which may be any Python from 2.7 on: it
# reads which frameworks are installed and what they were built for from files (dist-info folders,
# torch/version.py, tensorflow's build_info.py) without importing any of them, and prints one JSON object.
# Keep it dependency-free and free of f-strings.
import json
import os
import re
import sys

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "mxnet", "theano", "pytensor")
TF_DISTS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tensorflow-aarch64",
    "tensorflow-rocm",
    "tf-nightly",
    "tf-nightly-cpu",
    "intel-tensorflow",
)


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read(path, limit=None):
    try:
        with open(path, "rb") as f:
            data = f.read(limit) if limit else f.read()
        return data.decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def site_dirs():
    out = []
    for entry in sys.path:
        if entry and os.path.isdir(entry) and entry not in out:
            out.append(entry)
    return out


def distributions(dirs):
    found = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if not n.endswith((".dist-info", ".egg-info")):
                continue
            base = n.rsplit(".", 1)[0]
            name, _, version = base.partition("-")
            path = os.path.join(d, n)
            if not version or name == base:
                meta = read(os.path.join(path, "METADATA")) or read(os.path.join(path, "PKG-INFO")) or ""
                m = re.search(r"^Version:\s*(\S+)", meta, re.M)
                version = m.group(1) if m else None
            key = norm(name)
            if key not in found:
                found[key] = {"name": name, "version": version, "site": d, "path": path}
    return found


def record_check(dist):
    # Are the files the distribution's RECORD lists still there, at their recorded sizes? One stat each
    # (torch: ~16,000, a few tens of ms). Byte code (.pyc) is a cache: not counted. None without a RECORD.
    path = (dist or {}).get("path")
    if not path or not path.endswith(".dist-info"):
        return None
    text = read(os.path.join(path, "RECORD"))
    if text is None:
        return {"checked": 0, "missing": 1, "examples": [os.path.basename(path) + "/RECORD"]}
    checked, missing, examples = 0, 0, []  # type: int, int, list[str]
    for line in text.splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) < 3 or not parts[0] or parts[0].endswith(".pyc"):
            continue
        name = parts[0]
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('""', '"')
        checked += 1
        try:
            size = os.stat(os.path.join(dist["site"], name)).st_size
        except OSError:
            size = -1
        if size < 0 or (parts[2].strip().isdigit() and int(parts[2]) != size):
            missing += 1
            if len(examples) < 3:
                examples.append(os.path.normpath(name))
    return {"checked": checked, "missing": missing, "examples": examples}


def package_dir(dirs, name):
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(os.path.join(p, "__init__.py")):
            return p
    return None


def assign(text, var):
    # `cuda: Optional[str] = '12.8'`, `cuda = None`, `__version__ = "2.13.0"`
    m = re.search(r"^%s\s*(?::[^=\n]*)?=\s*(None|'([^']*)'|\"([^\"]*)\")" % re.escape(var), text or "", re.M)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(3)


def cuda_from_suffix(suffix):
    # mxnet-cu112 -> 11.2, cu92 -> 9.2, cu101 -> 10.1
    digits = re.match(r"(\d+)", suffix)
    if not digits or len(digits.group(1)) < 2:
        return None
    d = digits.group(1)
    return d[:-1] + "." + d[-1]


def torch_info(dirs, dists):
    d = package_dir(dirs, "torch")
    dist = dists.get("torch")
    if not d and not dist:
        return None
    text = read(os.path.join(d, "version.py")) if d else None
    cuda = assign(text, "cuda")
    hip = assign(text, "hip")
    xpu = assign(text, "xpu")  # torch/version.py of an XPU build: the SYCL toolchain's version
    version = assign(text, "__version__") or (dist or {}).get("version")
    build = "cuda" if cuda else "rocm" if hip else "xpu" if xpu else ("cpu" if text else "unknown")
    details = {"hip": hip} if hip else {"xpu": xpu} if xpu else {}
    return {
        "name": "torch",
        "distribution": (dist or {}).get("name", "torch"),
        "version": version,
        "build": build,
        "cuda": cuda,
        "location": d,
        "details": details,
    }


def tensorflow_info(dirs, dists):
    d = package_dir(dirs, "tensorflow")
    dist_name = next((n for n in TF_DISTS if n in dists), None)
    if not d and not dist_name:
        return None
    dist = dists.get(dist_name) or {}
    text = read(os.path.join(d, "python", "platform", "build_info.py")) if d else None
    details = {}
    build, cuda = "unknown", None
    if text:
        # Either a dict literal ('is_cuda_build': True) or OrderedDict pairs (('is_cuda_build', True)).
        m = re.search(r"['\"]is_cuda_build['\"]\s*[:,]\s*(True|False)", text)
        v = re.search(r"['\"]cuda_version['\"]\s*[:,]\s*['\"]([^'\"]*)['\"]", text)
        dnn = re.search(r"['\"]cudnn_version['\"]\s*[:,]\s*['\"]([^'\"]*)['\"]", text)
        rocm = re.search(r"['\"]is_rocm_build['\"]\s*[:,]\s*True", text)
        cuda = v.group(1) if v and v.group(1) else None
        if m and m.group(1) == "True":
            build = "cuda"
        elif rocm:
            build = "rocm"
        elif m:
            build = "cpu"
        if dnn and dnn.group(1):
            details["cudnn"] = dnn.group(1)
        caps = re.search(r"['\"]cuda_compute_capabilities['\"]\s*[:,]\s*\[([^\]]*)\]", text)
        if caps:
            details["compute_capabilities"] = re.findall(r"['\"]([^'\"]+)['\"]", caps.group(1))
    elif dist_name in ("tensorflow-cpu", "tf-nightly-cpu"):
        build = "cpu"
    # tensorflow-rocm 2.14.0.600: the fourth part is the ROCm it was built for (600 = ROCm 6.0)
    m = re.match(r"^\d+\.\d+\.\d+\.(\d)(\d)\d$", dist.get("version") or "")
    if dist_name == "tensorflow-rocm" and m:
        build = "rocm"
        details["rocm"] = m.group(1) + "." + m.group(2)
    return {
        "name": "tensorflow",
        "distribution": dist.get("name", dist_name or "tensorflow"),
        "version": dist.get("version"),
        "build": build,
        "cuda": cuda if build == "cuda" else None,
        "location": d,
        "details": details,
    }


def jax_info(dirs, dists):
    d = package_dir(dirs, "jax")
    dist = dists.get("jax")
    if not d and not dist:
        return None
    jaxlib = dists.get("jaxlib") or {}
    details = {"jaxlib": jaxlib.get("version")}
    build, cuda = ("cpu" if jaxlib else "unknown"), None
    plugins = sorted(k for k in dists if re.match(r"jax-(cuda|rocm)\d+-(plugin|pjrt)$", k))
    if plugins:
        details["plugins"] = plugins
        m = re.match(r"jax-(cuda|rocm)(\d+)-", plugins[0])
        if m:  # always: `plugins` matched the same pattern
            build = m.group(1)
            cuda = m.group(2) if build == "cuda" else None
            if build == "rocm":
                details["rocm"] = m.group(2)  # jax-rocm7-plugin: ROCm 7
    else:
        # jaxlib < 0.4.16 had CUDA in the local version: 0.4.7+cuda12.cudnn88
        m = re.search(r"\+cuda(\d+)", jaxlib.get("version") or "")
        if m:
            build, cuda = "cuda", m.group(1)
    version = (dist or {}).get("version") or assign(
        read(os.path.join(d, "version.py")) if d else None, "_version"
    )
    return {
        "name": "jax",
        "distribution": "jax",
        "version": version,
        "build": build,
        "cuda": cuda,
        "location": d,
        "details": details,
    }


def keras_info(dirs, dists):
    d = package_dir(dirs, "keras")
    dist = dists.get("keras")
    if not d and not dist:
        return None
    version = (dist or {}).get("version")
    backend = os.environ.get("KERAS_BACKEND")
    if not backend:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            backend = json.loads(read(os.path.join(home, "keras.json")) or "{}").get("backend")
        except ValueError:
            backend = None
    if not backend:
        backend = "tensorflow"
    return {
        "name": "keras",
        "distribution": "keras",
        "version": version,
        "build": "backend",
        "cuda": None,
        "location": d,
        "details": {"backend": backend},
    }


def mxnet_info(dirs, dists):
    d = package_dir(dirs, "mxnet")
    names = sorted(k for k in dists if k == "mxnet" or k.startswith("mxnet-"))
    if not d and not names:
        return None
    name = names[0] if names else "mxnet"
    dist = dists.get(name) or {}
    m = re.match(r"mxnet-cu(\d+)", name)
    cuda = cuda_from_suffix(m.group(1)) if m else None
    return {
        "name": "mxnet",
        "distribution": dist.get("name", name),
        "version": dist.get("version"),
        "build": "cuda" if cuda else "cpu",
        "cuda": cuda,
        "location": d,
        "details": {},
    }


def simple_info(dirs, dists, name, gpu_dist=None):
    d = package_dir(dirs, name)
    dist = dists.get(name)
    if not d and not dist:
        return None
    details = {}
    if gpu_dist and gpu_dist in dists:
        details["gpu_backend"] = gpu_dist
    return {
        "name": name,
        "distribution": name,
        "version": (dist or {}).get("version"),
        "build": "cpu",
        "cuda": None,
        "location": d,
        "details": details,
    }


def main():
    dirs = site_dirs()
    dists = distributions(dirs)
    frameworks = []
    for info in (
        torch_info(dirs, dists),
        tensorflow_info(dirs, dists),
        jax_info(dirs, dists),
        keras_info(dirs, dists),
        mxnet_info(dirs, dists),
        simple_info(dirs, dists, "theano", "pygpu"),
        simple_info(dirs, dists, "pytensor"),
    ):
        if info:
            dist = dists.get(norm(info.get("distribution") or info["name"]))
            info["files"] = record_check(dist)
            frameworks.append(info)
    # CUDA libraries from pip (nvidia-cudnn-cu12, nvidia-cuda-runtime ...), not the NVML bindings
    nvidia = dict(
        (k, v["version"])
        for k, v in sorted(dists.items())
        if k.startswith("nvidia-") and not k.startswith("nvidia-ml-py")
    )
    prefix = sys.prefix
    kind = (
        "conda"
        if os.path.isdir(os.path.join(prefix, "conda-meta"))
        else (
            "venv"
            if getattr(sys, "base_prefix", prefix) != prefix or hasattr(sys, "real_prefix")
            else "system"
        )
    )
    out = {
        "python": {
            "executable": sys.executable,
            "version": "%d.%d.%d" % sys.version_info[:3],
            "implementation": getattr(getattr(sys, "implementation", None), "name", "cpython"),
            "prefix": prefix,
            "kind": kind,
        },
        "frameworks": frameworks,
        "nvidia_packages": nvidia,
        "numpy": (dists.get("numpy") or {}).get("version"),
    }
    sys.stdout.write("FWSETUP-JSON:" + json.dumps(out) + "\n")


main()
