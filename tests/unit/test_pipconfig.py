"""pip configuration carried to uv: files and PIP_* variables, pip's precedence, uv flags and variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fwsetup import pipconfig


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def _env(home: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    # XDG_CONFIG_DIRS points at an empty folder so that the machine's /etc/xdg is not read; /etc/pip.conf
    # is passed explicitly where a test needs a global file (files=...).
    return {"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "xdg-none"), **extra}


def test_this_machines_layout(tmp_path: Path, home: Path) -> None:
    """The layout of this machine: cert in the global file; find-links and two file:// indexes in the user file."""
    glob = _write(tmp_path / "etc" / "pip.conf", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    user = _write(
        home / ".config" / "pip" / "pip.conf",
        "[global]\nfind-links = /opt/wheels\nextra-index-url = file:///opt/pypi/simple file:///opt/pypi-more/simple\n",
    )
    s = pipconfig.read_pip_settings(_env(home, tmp_path), files=[glob, user])
    assert s.cert == "/etc/ssl/certs/ca-certificates.crt"
    assert s.find_links == ("/opt/wheels",)
    assert s.extra_index_urls == ("file:///opt/pypi/simple", "file:///opt/pypi-more/simple")
    assert s.index_url is None and not s.no_index


def test_file_order_and_install_section(tmp_path: Path, home: Path) -> None:
    xdg = tmp_path / "xdg"
    _write(xdg / "pip" / "pip.conf", "[global]\nindex-url = https://global.example/simple\ntimeout = 5\n")
    _write(home / ".pip" / "pip.conf", "[global]\nindex-url = https://legacy-user.example/simple\n")
    _write(
        home / ".config" / "pip" / "pip.conf",
        "[global]\nindex-url = https://user.example/simple\n[install]\ntrusted-host = a.example\n  b.example\n",
    )
    env = {"HOME": str(home), "XDG_CONFIG_DIRS": str(xdg)}
    s = pipconfig.read_pip_settings(env)
    assert s.index_url == "https://user.example/simple"  # the newer user file wins over ~/.pip
    assert s.trusted_hosts == ("a.example", "b.example")  # [install] section, multi-line list
    assert s.timeout == "5"
    assert s.sources["index-url"].endswith(".config/pip/pip.conf [global]")


def test_env_vars_win_and_pip_config_file(tmp_path: Path, home: Path) -> None:
    _write(home / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://user.example/simple\n")
    cfg = _write(tmp_path / "custom.conf", "[global]\nfind-links = /custom/wheels\n")
    env = _env(
        home,
        tmp_path,
        PIP_CONFIG_FILE=str(cfg),
        PIP_EXTRA_INDEX_URL="https://a.example/simple https://b.example/simple",
    )
    s = pipconfig.read_pip_settings(env)
    # PIP_CONFIG_FILE (existing) replaces the user files, as in pip
    assert s.index_url is None
    assert s.find_links == ("/custom/wheels",)
    assert s.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert s.sources["extra-index-url"] == "PIP_EXTRA_INDEX_URL"


def test_pip_config_file_devnull_disables_files(tmp_path: Path, home: Path) -> None:
    _write(home / ".config" / "pip" / "pip.conf", "[global]\nindex-url = https://user.example/simple\n")
    s = pipconfig.read_pip_settings(_env(home, tmp_path, PIP_CONFIG_FILE="/dev/null", PIP_NO_INDEX="1"))
    assert s.index_url is None and s.no_index


def test_underscore_keys_and_default_timeout(tmp_path: Path, home: Path) -> None:
    _write(home / ".config" / "pip" / "pip.conf", "[global]\nextra_index_url = https://u.example/simple\n")
    s = pipconfig.read_pip_settings(_env(home, tmp_path, PIP_DEFAULT_TIMEOUT="180"))
    assert s.extra_index_urls == ("https://u.example/simple",)
    assert s.timeout == "180"


def test_broken_file_is_a_warning(tmp_path: Path, home: Path) -> None:
    _write(home / ".config" / "pip" / "pip.conf", "index-url = no section header\n")
    s = pipconfig.read_pip_settings(_env(home, tmp_path))
    assert s.warnings and "ignored pip configuration" in s.warnings[0]


def test_to_uv_flags(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    mirror = tmp_path / "mirror" / "simple"
    mirror.mkdir(parents=True)
    cert = _write(tmp_path / "ca.crt", "x")
    s = pipconfig.PipSettings(
        index_url="https://corp.example/simple",
        extra_index_urls=(mirror.as_uri(), "file:///no/such/simple"),
        find_links=(str(wheels), "/no/such/wheels", "https://wheels.example/"),
        cert=str(cert),
        trusted_hosts=("corp.example",),
        proxy="http://proxy:3128",
        timeout="180",
    )
    cfg = pipconfig.to_uv(s, env={})
    args = list(cfg.args)
    assert args[args.index("--index-url") + 1] == "https://corp.example/simple"
    assert args[args.index("--extra-index-url") + 1] == mirror.as_uri()
    assert "file:///no/such/simple" not in args and "/no/such/wheels" not in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "--find-links"] == [
        str(wheels),
        "https://wheels.example/",
    ]
    assert args[args.index("--allow-insecure-host") + 1] == "corp.example"
    assert (
        args[args.index("--index-strategy") + 1] == "unsafe-best-match"
    )  # pip's semantics for a partial mirror
    assert cfg.env["SSL_CERT_FILE"] == str(cert)
    assert cfg.env["HTTPS_PROXY"] == "http://proxy:3128"
    assert cfg.env["UV_HTTP_TIMEOUT"] == "180"
    assert len(cfg.warnings) == 2 and all("skipped" in w for w in cfg.warnings)
    assert cfg.index_urls == (mirror.as_uri(), "https://corp.example/simple")


def test_to_uv_plan_index_first_and_first_index(tmp_path: Path) -> None:
    s = pipconfig.PipSettings(extra_index_urls=("https://mirror.example/simple",))
    cfg = pipconfig.to_uv(s, plan_indexes=["https://download.pytorch.org/whl/cpu"], env={})
    extra = [cfg.args[i + 1] for i, a in enumerate(cfg.args) if a == "--extra-index-url"]
    assert extra == ["https://download.pytorch.org/whl/cpu", "https://mirror.example/simple"]
    assert cfg.args[cfg.args.index("--index-strategy") + 1] == "first-index"


def test_to_uv_offline_and_wheelhouse(tmp_path: Path) -> None:
    s = pipconfig.PipSettings(
        extra_index_urls=("https://mirror.example/simple",), find_links=(str(tmp_path),)
    )
    wh = tmp_path / "wh"
    wh.mkdir()
    cfg = pipconfig.to_uv(s, plan_indexes=["https://x.example"], wheelhouse=wh, offline=True, env={})
    assert "--offline" in cfg.args and "--no-index" in cfg.args
    assert "--extra-index-url" not in cfg.args
    assert [cfg.args[i + 1] for i, a in enumerate(cfg.args) if a == "--find-links"] == [
        str(wh),
        str(tmp_path),
    ]


def test_proxy_not_overriding_existing_env() -> None:
    cfg = pipconfig.to_uv(pipconfig.PipSettings(proxy="http://p:1"), env={"HTTPS_PROXY": "http://mine:2"})
    assert "HTTPS_PROXY" not in cfg.env and cfg.env["HTTP_PROXY"] == "http://p:1"


def test_cert_dir(tmp_path: Path) -> None:
    cfg = pipconfig.to_uv(pipconfig.PipSettings(cert=str(tmp_path)), env={})
    # a folder of CA certificates; the system trust store stays on as with pip >= 24.2 (issue 21)
    assert cfg.env == {"SSL_CERT_DIR": str(tmp_path), "UV_SYSTEM_CERTS": "true"}


def test_local_path() -> None:
    assert pipconfig.local_path("file:///opt/pypi/simple") == Path("/opt/pypi/simple")
    assert pipconfig.local_path("/opt/wheels") == Path("/opt/wheels")
    assert pipconfig.local_path("https://pypi.org/simple") is None


def test_wheel_folder_becomes_an_index_with_hashes(tmp_path: Path) -> None:
    import hashlib

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    whl = wheels / "Foo_Bar-1.0+cpu-py3-none-any.whl"
    whl.write_bytes(b"wheel bytes")
    cache = tmp_path / "cache"
    url = pipconfig.wheel_index(wheels, cache)
    assert url is not None and url.startswith("file://")
    page = (pipconfig.local_path(url) / "foo-bar" / "index.html").read_text()
    assert f"#sha256={hashlib.sha256(b'wheel bytes').hexdigest()}" in page
    assert "Foo_Bar-1.0%2Bcpu-py3-none-any.whl#" in page
    # the hash is cached by size and mtime; a changed file is hashed again
    whl.write_bytes(b"other bytes!")
    os.utime(whl, ns=(1, 1))
    pipconfig.wheel_index(wheels, cache)
    page = (pipconfig.local_path(url) / "foo-bar" / "index.html").read_text()
    assert hashlib.sha256(b"other bytes!").hexdigest() in page
    # a folder with an sdist stays find-links
    (wheels / "baz-1.0.tar.gz").write_bytes(b"")
    assert pipconfig.wheel_index(wheels, cache) is None


def test_to_uv_turns_wheel_folders_into_indexes_only_when_indexes_merge(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "foo-1.0-py3-none-any.whl").write_bytes(b"x")
    s = pipconfig.PipSettings(find_links=(str(wheels),))
    cfg = pipconfig.to_uv(s, env={}, index_cache=tmp_path / "cache")
    assert "--find-links" not in cfg.args and cfg.find_links == ()
    assert cfg.args[cfg.args.index("--extra-index-url") + 1].startswith("file://")
    assert cfg.args[cfg.args.index("--index-strategy") + 1] == "unsafe-best-match"
    # a plan index (first-index) or offline (--no-index ignores indexes): find-links as given
    for kw in ({"plan_indexes": ["https://x.example/simple"]}, {"offline": True}):
        cfg = pipconfig.to_uv(s, env={}, index_cache=tmp_path / "cache", **kw)
        assert cfg.find_links == (str(wheels),)
