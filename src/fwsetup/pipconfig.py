"""Carry the user's pip configuration across to uv, which does not read pip's files or PIP_* variables.

What is read, with pip's own precedence (later wins): the global files (each $XDG_CONFIG_DIRS/pip/pip.conf,
then /etc/pip.conf), the user files (~/.pip/pip.conf, then $XDG_CONFIG_HOME/pip/pip.conf; skipped when
PIP_CONFIG_FILE names an existing file), the site file ($VIRTUAL_ENV/pip.conf), the PIP_CONFIG_FILE file,
then the PIP_* environment variables. Within a file, the [install] section overrides [global].
PIP_CONFIG_FILE=/dev/null (os.devnull) turns the files off, as in pip.

What is carried: index-url, extra-index-url, find-links, no-index, cert, client-cert, trusted-host, proxy,
timeout, keyring-provider, and pip's trust: everything is passed in (env, home) so that tests use fake files;
nothing here runs pip.

Trust and auth as pip does them (https://pip.pypa.io/en/stable/topics/https-certificates/,
https://pip.pypa.io/en/stable/topics/authentication/):
- pip >= 24.2 verifies with the system trust store (truststore) in addition to its bundle, unless
  `use-deprecated = legacy-certs`; uv uses its bundled roots unless told: UV_SYSTEM_CERTS=true (uv >= 0.11,
  https://docs.astral.sh/uv/concepts/authentication/certificates/), UV_NATIVE_TLS=true before (the same
  setting under its old name, CHANGELOG 0.11.0). A UV_SYSTEM_CERTS / UV_NATIVE_TLS of the user's own wins.
- pip's `cert`, else REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE (requests' order), is the CA bundle: uv gets it
  as SSL_CERT_FILE (SSL_CERT_DIR for a folder).
- pip's `keyring-provider` (auto by default: the `keyring` command when one is on PATH) becomes
  UV_KEYRING_PROVIDER: uv has `disabled` and `subprocess` (it cannot import keyring, so `import` and `auto` use
  the `keyring` command, as pip's subprocess provider does). A UV_KEYRING_PROVIDER of the user's own wins.

Credentials: an index or find-links URL with a user name, password or token goes to uv through its
environment (UV_INDEX_URL, UV_EXTRA_INDEX_URL, UV_FIND_LINKS), never its command line, which any local user
can read (ps, /proc/PID/cmdline); what is kept for messages and lock.json is redacted (fwsetup.redact).
"""

from __future__ import annotations

import configparser
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from fwsetup.redact import has_credentials, redact_text, secrets_of

KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "no-index",
    "cert",
    "client-cert",
    "trusted-host",
    "proxy",
    "timeout",
    "keyring-provider",
    "use-deprecated",
)
# uv's name for "verify with the system trust store": UV_SYSTEM_CERTS from 0.11.0 on, UV_NATIVE_TLS before
# (uv CHANGELOG 0.11.0: "--native-tls ... has identical behavior to --system-certs")
UV_SYSTEM_CERTS_SINCE = "0.11.0"


@dataclass(frozen=True, kw_only=True)
class PipSettings:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cert: str | None = None
    client_cert: str | None = None
    trusted_hosts: tuple[str, ...] = ()
    proxy: str | None = None
    timeout: str | None = None
    keyring_provider: str | None = None  # auto (pip's default when None), disabled, import, subprocess
    legacy_certs: bool = False  # use-deprecated = legacy-certs: pip does not use the system trust store
    # where each value came from ("PIP_FIND_LINKS", "/root/.config/pip/pip.conf [global]"), for the log
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.index_url or self.extra_index_urls or self.find_links or self.no_index or self.cert)


def config_files(env: Mapping[str, str], *, home: Path | None = None) -> list[tuple[str, Path]]:
    """(kind, path) of pip's configuration files in the order pip loads them (later overrides earlier)."""
    home = Path(home) if home is not None else Path(env.get("HOME") or Path.home())
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file is not None and (env_file == os.devnull or env_file == ""):
        return []
    files: list[tuple[str, Path]] = []
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files += [("global", Path(d) / "pip" / "pip.conf") for d in xdg_dirs.split(os.pathsep) if d]
    files.append(("global", Path("/etc/pip.conf")))
    if not (env_file and Path(env_file).exists()):
        xdg_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [("user", home / ".pip" / "pip.conf"), ("user", xdg_home / "pip" / "pip.conf")]
    if env.get("VIRTUAL_ENV"):
        files.append(("site", Path(env["VIRTUAL_ENV"]) / "pip.conf"))
    if env_file:
        files.append(("env", Path(env_file)))
    return files


def _split(value: str) -> list[str]:
    # pip splits list options on whitespace (multi-line values included)
    return [v for v in shlex.split(value, posix=True) if v] if value.strip() else []


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def read_pip_settings(
    env: Mapping[str, str] | None = None, *, home: Path | None = None, files: Sequence[Path] | None = None
) -> PipSettings:
    """The pip settings in force for `pip install`, from files and PIP_* variables (see module doc)."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, str] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    paths = [("file", Path(p)) for p in files] if files is not None else config_files(env, home=home)
    for _kind, path in paths:
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            warnings.append(f"ignored pip configuration {path}: {exc}")
            continue
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            for key, value in parser.items(section):
                key = key.replace("_", "-")
                if key in KEYS:
                    raw[key] = value
                    sources[key] = f"{path} [{section}]"
    for key in KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if var in env:
            raw[key] = env[var]
            sources[key] = var
    if "timeout" not in raw and "PIP_DEFAULT_TIMEOUT" in env:
        raw["timeout"] = env["PIP_DEFAULT_TIMEOUT"]
        sources["timeout"] = "PIP_DEFAULT_TIMEOUT"
    if not raw.get("cert", "").strip():  # requests' own variables, which pip honours when cert is unset
        for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            if env.get(var, "").strip():
                raw["cert"] = env[var]
                sources["cert"] = var
                break

    def one(key: str) -> str | None:
        v = raw.get(key, "").strip()
        return v or None

    return PipSettings(
        index_url=one("index-url"),
        extra_index_urls=tuple(_split(raw.get("extra-index-url", ""))),
        find_links=tuple(_split(raw.get("find-links", ""))),
        no_index=_truthy(raw.get("no-index", "")),
        cert=one("cert"),
        client_cert=one("client-cert"),
        trusted_hosts=tuple(_split(raw.get("trusted-host", ""))),
        proxy=one("proxy"),
        timeout=one("timeout"),
        keyring_provider=(one("keyring-provider") or "").lower() or None,
        legacy_certs="legacy-certs" in _split(raw.get("use-deprecated", "").replace(",", " ")),
        sources=sources,
        warnings=tuple(warnings),
    )


def local_path(url_or_path: str) -> Path | None:
    """The local folder or file a find-links / index entry names (file:// URL or a path), else None."""
    if url_or_path.startswith("file:"):
        parsed = urlparse(url_or_path)
        return Path(unquote(parsed.path))
    if "://" in url_or_path:
        return None
    return Path(url_or_path).expanduser()


@dataclass(frozen=True, kw_only=True)
class UvConfig:
    """uv command-line flags and environment variables equivalent to some pip settings.

    args never holds a credential; env may (an index URL with a token), so show env only through
    fwsetup.redact. index_urls, find_links and warnings are redacted already."""

    args: tuple[str, ...]
    env: Mapping[str, str]
    index_urls: tuple[str, ...]  # every index in priority order (for messages; redacted)
    find_links: tuple[str, ...]  # what stays find-links (redacted)
    offline: bool
    warnings: tuple[str, ...]
    secrets: frozenset[str] = frozenset()  # the credentials in env, for redact_text on installer output


def wheel_index(folder: Path, cache: Path) -> str | None:
    """A PEP 503 "simple" index (file://) of the wheels in a local find-links folder, with their sha256.

    Why: uv hashes every find-links wheel again on each `uv pip compile --format pylock.toml` (a 190 MB torch
    wheel: ~1 s), while it takes the hash an index page states. The hashes are computed here once per file
    (cached by path, size and mtime in `cache`). None when the folder has anything but wheels (sdists stay
    find-links: an index cannot describe what they build) or cannot be read.
    """
    import hashlib
    import html
    import json
    import re

    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return None
    wheels = [p for p in entries if p.suffix == ".whl" and p.is_file()]
    if not wheels or len(wheels) != len([p for p in entries if p.is_file()]):
        return None
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    root = cache / "wheel-index" / key
    hashes_file = root / "hashes.json"
    try:
        known = json.loads(hashes_file.read_text())
    except (OSError, ValueError):
        known = {}
    projects: dict[str, list[tuple[str, str]]] = {}
    fresh: dict[str, list] = {}
    for whl in wheels:
        st = whl.stat()
        sig = [st.st_size, st.st_mtime_ns]
        entry = known.get(whl.name)
        if entry and entry[:2] == sig:
            digest = entry[2]
        else:
            h = hashlib.sha256()
            with open(whl, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            digest = h.hexdigest()
        fresh[whl.name] = [*sig, digest]
        project = re.sub(r"[-_.]+", "-", whl.name.split("-")[0]).lower()
        projects.setdefault(project, []).append((whl.name, digest))
    try:
        for project, files in projects.items():
            links = "".join(
                f'<a href="{(folder / name).resolve().as_uri()}#sha256={digest}">{html.escape(name)}</a>\n'
                for name, digest in files
            )
            page = root / project / "index.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            tmp = page.with_name(f".index.{os.getpid()}.tmp")
            tmp.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
            tmp.replace(page)
        tmp = hashes_file.with_name(f".hashes.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(fresh))
        tmp.replace(hashes_file)
    except OSError:
        return None
    return root.as_uri()


def trust_env(
    settings: PipSettings,
    env: Mapping[str, str],
    *,
    uv_version: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, str]:
    """uv's variables for pip's trust and auth: its cert (REQUESTS_CA_BUNDLE included), client cert, the
    system trust store and the keyring provider (see the module doc). Every uv call fwsetup makes gets
    these, to_uv's and the conda environment's pip section alike. Why a setting is not carried goes to
    `warnings`."""
    import shutil

    warnings = warnings if warnings is not None else []
    out: dict[str, str] = {}
    if settings.cert:
        cert = Path(settings.cert).expanduser()
        if cert.is_dir():
            out["SSL_CERT_DIR"] = str(cert)
        elif cert.is_file():
            out["SSL_CERT_FILE"] = str(cert)
        else:
            warnings.append(f"skipped cert {settings.cert} (from pip configuration): no such file")
    if settings.client_cert:
        out["SSL_CLIENT_CERT"] = str(Path(settings.client_cert).expanduser())
    if not settings.legacy_certs and not any(env.get(v) for v in ("UV_SYSTEM_CERTS", "UV_NATIVE_TLS")):
        out[_system_certs_var(uv_version)] = "true"
    if env.get("UV_KEYRING_PROVIDER"):
        return out
    provider = settings.keyring_provider or "auto"
    if provider == "disabled":
        out["UV_KEYRING_PROVIDER"] = "disabled"
    elif provider in ("subprocess", "import", "auto"):
        if shutil.which("keyring", path=env.get("PATH", os.defpath)):
            out["UV_KEYRING_PROVIDER"] = "subprocess"
        elif provider != "auto":
            warnings.append(
                f"pip's keyring-provider {provider} not carried to uv: uv calls the `keyring` command, and none "
                "is on PATH (pip install keyring, or uv tool install keyring)"
            )
    else:
        warnings.append(
            f"ignored pip keyring-provider {provider!r}: expected auto, disabled, import or subprocess"
        )
    return out


def _system_certs_var(uv_version: str | None) -> str:
    if uv_version:
        from packaging.version import InvalidVersion, Version

        try:
            if Version(uv_version) < Version(UV_SYSTEM_CERTS_SINCE):
                return "UV_NATIVE_TLS"
        except InvalidVersion:
            pass
    return "UV_SYSTEM_CERTS"


def to_uv(
    settings: PipSettings,
    *,
    plan_indexes: Sequence[str] = (),
    wheelhouse: Path | None = None,
    offline: bool = False,
    env: Mapping[str, str] | None = None,
    index_cache: Path | None = None,
    uv_version: str | None = None,
) -> UvConfig:
    """uv flags for `uv pip install/compile`: plan_indexes (the framework's own, e.g. PyTorch's) come first,
    then the user's extra indexes, then the default index (the user's index-url, or PyPI).

    Local entries (file:// indexes, find-links folders) that do not exist are skipped with a warning, so one
    stale line in pip.conf does not break every install. offline: no index at all, only local wheels.
    index_cache: where wheel_index() may write; local find-links folders of wheels then become indexes (only
    when every index is merged anyway: no plan index, not offline). uv_version: the uv that will run (the name
    of its system-trust setting depends on it; None: a current one).
    """
    env = dict(os.environ if env is None else env)
    warnings = list(settings.warnings)
    args: list[str] = []
    out_env: dict[str, str] = {}

    def usable_index(url: str, what: str) -> bool:
        p = local_path(url)
        if p is not None and not p.is_dir():
            warnings.append(f"skipped {what} {url} (from pip configuration): not a folder")
            return False
        return True

    find_links: list[str] = []
    if wheelhouse is not None:
        find_links.append(str(Path(wheelhouse).absolute()))
    for fl in settings.find_links:
        p = local_path(fl)
        if p is not None and not p.exists():
            warnings.append(f"skipped find-links {fl} (from pip configuration): no such file or folder")
            continue
        if str(p if p is not None else fl) not in find_links:
            find_links.append(str(p) if p is not None else fl)
    indexes: list[str] = []
    local_indexes: list[str] = []
    if index_cache is not None and not (offline or settings.no_index or plan_indexes):
        for fl in list(find_links):
            p = local_path(fl)
            url = wheel_index(p, index_cache) if p is not None and p.is_dir() else None
            if url:
                local_indexes.append(url)
                find_links.remove(fl)
    if offline or settings.no_index:
        args.append("--no-index")
        if offline:
            args.append("--offline")
    else:
        extra = (
            [u for u in plan_indexes]
            + local_indexes
            + [u for u in settings.extra_index_urls if usable_index(u, "extra index")]
        )
        default = (
            settings.index_url if settings.index_url and usable_index(settings.index_url, "index") else None
        )
        # One option goes either all on the command line or all in uv's variable (a flag hides the variable).
        if any(has_credentials(u) for u in extra):
            out_env["UV_EXTRA_INDEX_URL"] = " ".join(extra)  # space-separated, earlier wins, as the flags
        else:
            for url in extra:
                args += ["--extra-index-url", url]
        if default and has_credentials(default):
            out_env["UV_INDEX_URL"] = default
        elif default:
            args += ["--index-url", default]
        indexes = [*extra, default or "https://pypi.org/simple"]
        if len(indexes) > 1:
            # pip merges every index and picks the best version; uv's default stops at the first index that
            # has the package. The framework's own index (plan_indexes) must win for its packages (PyTorch's
            # advice), so: first-index when there is one, pip's semantics otherwise (a partial local mirror
            # listed before PyPI must not hide the versions PyPI has).
            args += ["--index-strategy", "first-index" if plan_indexes else "unsafe-best-match"]
    if any(has_credentials(fl) for fl in find_links):
        out_env["UV_FIND_LINKS"] = ",".join(find_links)  # comma-separated
    else:
        for fl in find_links:
            args += ["--find-links", fl]
    for host in settings.trusted_hosts:
        args += ["--allow-insecure-host", host]
    out_env.update(trust_env(settings, env, uv_version=uv_version, warnings=warnings))
    if settings.proxy:
        for var in ("HTTPS_PROXY", "HTTP_PROXY"):
            if not env.get(var) and not env.get(var.lower()):
                out_env[var] = settings.proxy
    if settings.timeout:
        try:
            out_env["UV_HTTP_TIMEOUT"] = str(int(float(settings.timeout)))
        except ValueError:
            warnings.append(f"ignored pip timeout {settings.timeout!r}: not a number")
    secrets = frozenset(
        secrets_of(
            [
                *indexes,
                *find_links,
                *settings.extra_index_urls,
                *settings.find_links,
                *([settings.index_url] if settings.index_url else []),
                *([settings.proxy] if settings.proxy else []),
            ]
        )
    )
    return UvConfig(
        args=tuple(args),
        env=out_env,
        index_urls=tuple(redact_text(u) for u in indexes),
        find_links=tuple(redact_text(u) for u in find_links),
        offline=offline,
        warnings=tuple(redact_text(w, secrets) for w in warnings),
        secrets=secrets,
    )
