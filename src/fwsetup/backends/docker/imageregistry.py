"""Image registries, as the engine sees them: references, credentials, and a check of a registry before a push.

- parse_ref: "HOST[:PORT]/REPO[:TAG][@sha256:…]" split as the docker CLI does (the first part is a registry when it
  has a dot or a port, or is `localhost`; else Docker Hub);
- credentials: FWSETUP_REGISTRY_USER with FWSETUP_REGISTRY_PASSWORD (or FWSETUP_REGISTRY_PASSWORD_FILE), else the
  user's docker configuration (DOCKER_CONFIG or ~/.docker/config.json: `auths`, `credHelpers`, `credsStore`, read by
  docker-py, which asks a credential helper over its stdin). The password goes to the engine in the X-Registry-Auth
  header of the push or pull over its socket, never in an argument, a log or a file of fwsetup's;
- check_registry: GET /v2/ the way the engine would talk to the registry (its insecure-registry rules from
  GET /info, its CAs from /etc/docker/certs.d/HOST/), so that an unreachable registry (exit 7), an untrusted
  certificate or refused credentials (exit 8) are said in one line before a build of minutes, and the engine's
  raw error after a failed push is explained by the same check.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fwsetup import proc
from fwsetup.errors import NetworkError, RegistryError, UsageError
from fwsetup.settings import registry_login

DOCKER_HUB: Final = "docker.io"
CERTS_D: Final = Path("/etc/docker/certs.d")
USER_VAR: Final = "FWSETUP_REGISTRY_USER"
PASSWORD_VAR: Final = "FWSETUP_REGISTRY_PASSWORD"
PASSWORD_FILE_VAR: Final = "FWSETUP_REGISTRY_PASSWORD_FILE"
CREDENTIALS_HINT: Final = (
    f"Log in with `docker login HOST` (a credential helper keeps the password out of files), or set {USER_VAR} "
    f"and {PASSWORD_VAR} (or {PASSWORD_FILE_VAR})."
)

_REPO_RE: Final = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE: Final = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # HOST[:PORT]; docker.io for Docker Hub
    repository: str  # path in the registry (library/x for Hub's official images)
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository as the engine names it (no docker.io/ prefix)."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_ref(text: str, *, what: str = "image reference") -> ImageRef:
    """An image reference as the docker CLI reads it; UsageError naming `what` when it is not one."""
    ref = text.strip()
    digest = None
    if "@" in ref:
        ref, _, digest = ref.partition("@")
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"{what} {text!r}: the digest must be sha256: and 64 hex digits.")
    tag = None
    head, sep, last = ref.rpartition(":")
    if sep and "/" not in last:
        ref, tag = head, last
        if not _TAG_RE.match(tag):
            raise UsageError(f"{what} {text!r}: {tag!r} is not a tag (letters, digits, '_', '.', '-').")
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, ref if slash else f"library/{ref}"
    if not repository or not _REPO_RE.match(repository):
        raise UsageError(
            f"{what} {text!r}: {repository!r} is not a repository name (lowercase letters, digits, '.', '_', '-', "
            "parts joined by '/')."
        )
    return ImageRef(registry, repository, tag, digest)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str  # or an identity token
    source: str  # where they came from, for messages (never the secret itself)
    token: bool = False

    def auth_config(self, registry: str) -> dict[str, str]:
        """docker-py's auth_config (sent to the engine in the X-Registry-Auth header)."""
        if self.token:
            return {"identitytoken": self.password, "serveraddress": registry}
        return {"username": self.username, "password": self.password, "serveraddress": registry}

    def __repr__(self) -> str:  # never the secret in a traceback or a log
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def credentials(registry: str, env: Mapping[str, str]) -> Credentials | None:
    """The credentials for registry: FWSETUP_REGISTRY_USER with FWSETUP_REGISTRY_PASSWORD or
    FWSETUP_REGISTRY_PASSWORD_FILE, else the user's docker configuration."""
    user, password, password_file = registry_login(env)
    if user and not password and password_file:
        path = Path(password_file).expanduser()
        try:
            password = path.read_text().strip()
        except OSError as exc:
            raise UsageError(f"{PASSWORD_FILE_VAR}={path}: cannot read it ({exc.strerror}).") from None
    if user and password:
        return Credentials(user, password, source=USER_VAR)
    if password and not user:
        raise UsageError(f"{PASSWORD_VAR} is set but {USER_VAR} is not: set both, or neither.")
    return _docker_config_credentials(registry, env)


def docker_config_file(env: Mapping[str, str]) -> Path:
    folder = env.get("DOCKER_CONFIG")
    return Path(folder).expanduser() / "config.json" if folder else Path.home() / ".docker" / "config.json"


def _docker_config_credentials(registry: str, env: Mapping[str, str]) -> Credentials | None:
    # lazy: the docker SDK takes ~0.1-0.4 s to import (-X importtime)
    import docker.auth
    import docker.errors

    path = docker_config_file(env)
    if not path.is_file():
        return None
    try:
        config = docker.auth.load_config(config_path=str(path), credstore_env=proc.child_environ(env))
        found = config.resolve_authconfig(registry)
    except docker.errors.DockerException as exc:  # a credential helper that failed
        raise RegistryError(
            f"the credential helper in {path} could not give the credentials for {registry}: "
            f"{str(exc).splitlines()[0][:300]}",
            hint="Run `docker login "
            + registry
            + "` again, or set FWSETUP_REGISTRY_USER and FWSETUP_REGISTRY_PASSWORD.",
        ) from None
    if not found:
        return None
    store = config.get_credential_store(registry)
    source = f"docker-credential-{store}" if store else str(path)
    # a credential helper's answer has Username/Password, an `auths` entry username/password (docker-py)
    got = {k.lower(): v for k, v in found.items()}
    if got.get("identitytoken"):
        return Credentials(got.get("username") or "<token>", got["identitytoken"], source=source, token=True)
    if got.get("username") and got.get("password"):
        return Credentials(got["username"], got["password"], source=source)
    return None


# ---------------------------------------------------------------------------------------------------
# The check of a registry before (and after a failed) push


@dataclass(frozen=True)
class EngineRegistryConfig:
    """What the engine says of registries in GET /info (RegistryConfig): its insecure CIDRs and index configs."""

    insecure_cidrs: tuple[str, ...] = ("127.0.0.0/8",)
    secure_index: Mapping[str, bool] | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any] | None) -> EngineRegistryConfig:
        reg = (info or {}).get("RegistryConfig") or {}
        cidrs = tuple(str(c) for c in reg.get("InsecureRegistryCIDRs") or ()) or ("127.0.0.0/8",)
        index = {
            str(k): bool((v or {}).get("Secure", True)) for k, v in (reg.get("IndexConfigs") or {}).items()
        }
        return cls(insecure_cidrs=cidrs, secure_index=index)

    def secure(self, registry: str) -> bool:
        """The engine's rule (moby registry.isSecureIndex): a configured index says; else insecure when an
        address of the host is in an insecure CIDR (127.0.0.0/8 by default)."""
        if self.secure_index and registry in self.secure_index:
            return self.secure_index[registry]
        host = _host_of(registry)
        try:
            addrs = {str(ai[4][0]) for ai in socket.getaddrinfo(host, None)}
        except OSError:
            return True
        for addr in addrs:
            try:
                ip = ipaddress.ip_address(addr.split("%")[0])
            except ValueError:
                continue
            for cidr in self.insecure_cidrs:
                try:
                    if ip in ipaddress.ip_network(cidr, strict=False):
                        return False
                except ValueError:
                    continue
        return True


def _host_of(registry: str) -> str:
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def _port_of(registry: str, default: int) -> int:
    tail = registry.rsplit("]", 1)[-1]
    if ":" in tail:
        try:
            return int(tail.rsplit(":", 1)[1])
        except ValueError:
            return default
    return default


def _ssl_context(registry: str, certs_d: Path, verify: bool) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    folder = certs_d / registry
    if folder.is_dir():  # the engine's extra CAs for this registry (*.crt), as dockerd reads them
        for crt in sorted(folder.glob("*.crt")):
            try:
                ctx.load_verify_locations(cafile=str(crt))
            except (OSError, ssl.SSLError):
                continue
    return ctx


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _get(url: str, ctx: ssl.SSLContext | None, timeout: float, auth: str | None = None) -> _Answer:
    req = urllib.request.Request(url, headers={"User-Agent": "fwsetup"})
    if auth:
        req.add_header("Authorization", auth)
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # the engine reaches the registry, not a proxy
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return _Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read(65536))
    except urllib.error.HTTPError as exc:
        return _Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read(65536))


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def check_registry(
    ref: ImageRef,
    creds: Credentials | None,
    *,
    engine: EngineRegistryConfig | None = None,
    certs_d: Path = CERTS_D,
    push: bool = True,
    timeout: float = 10.0,
) -> None:
    """Talk to ref's registry as the engine would; NetworkError (7) when it cannot be reached, RegistryError (8)
    when its certificate is not trusted or it refuses (or wants) credentials. Returns when a push (or pull) can go."""
    registry = ref.registry
    api = "registry-1.docker.io" if registry == DOCKER_HUB else registry
    engine = engine or EngineRegistryConfig()
    secure = engine.secure(registry) if registry != DOCKER_HUB else True
    attempts = [("https", True)] if secure else [("https", False), ("http", False)]
    answer: _Answer | None = None
    base = ""
    unreachable: str | None = None
    for scheme, verify in attempts:
        base = f"{scheme}://{api}"
        try:
            answer = _get(
                f"{base}/v2/", _ssl_context(registry, certs_d, verify) if scheme == "https" else None, timeout
            )
            break
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise RegistryError(
                    f"the registry {registry} presents a certificate the Docker engine does not trust "
                    f"({reason.verify_message or reason}).",
                    hint=f"Give the engine the CA that signed it: {certs_d / registry / 'ca.crt'} on the engine's "
                    "machine (read at each push and pull), or use a certificate from a public CA.",
                ) from None
            if isinstance(reason, ssl.SSLError):
                unreachable = f"TLS failed: {reason}"
                continue  # an insecure registry that speaks plain HTTP: the engine tries http next
            unreachable = str(getattr(reason, "strerror", None) or reason)
        except (OSError, ValueError) as exc:
            unreachable = str(exc) or type(exc).__name__
    if answer is None:
        raise NetworkError(
            f"the registry {registry} cannot be reached ({unreachable}).",
            hint=f"Check that it runs and that this machine reaches it (curl {base}/v2/); "
            "for a registry of your own: ./scripts/start-registry.",
        )
    if answer.status == 200:
        return
    if answer.status != 401:
        raise RegistryError(
            f"the registry {registry} answered {answer.status} to GET /v2/: it does not speak the registry API "
            "(Docker Registry HTTP API V2) there.",
            hint="Check the host and port of the image reference.",
        )
    scheme, params = _challenge(answer.headers.get("www-authenticate", ""))
    if creds is None:
        raise RegistryError(
            f"the registry {registry} needs credentials to {'push' if push else 'pull'} {ref.repository}, "
            "and none were given.",
            hint=CREDENTIALS_HINT.replace("HOST", registry),
        )
    basic = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    if scheme == "basic":
        ok = _get(f"{base}/v2/", _ssl_context(registry, certs_d, secure) if base.startswith("https") else None,
                  timeout, auth=basic).status  # fmt: skip
    elif scheme == "bearer" and params.get("realm"):
        scope = f"repository:{ref.repository}:{'push,pull' if push else 'pull'}"
        query = urlencode({k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v})
        realm = params["realm"]
        ctx = _ssl_context(registry, certs_d, True) if realm.startswith("https") else None
        try:
            got = _get(f"{realm}?{query}", ctx, timeout, auth=None if creds.token else basic)
        except (urllib.error.URLError, OSError) as exc:
            raise NetworkError(
                f"the token service of {registry} ({realm}) cannot be reached ({getattr(exc, 'reason', exc)})."
            ) from None
        ok = got.status
        if ok == 200:
            try:
                token = json.loads(got.body or b"{}")
            except ValueError:
                token = {}
            if not (token.get("token") or token.get("access_token")):
                ok = 401
    else:
        return  # an auth scheme fwsetup does not speak: the engine may; let the push say
    if ok != 200:
        raise RegistryError(
            f"the registry {registry} refused the credentials of {creds.username!r} (from {creds.source}) "
            f"(HTTP {ok}).",
            hint=CREDENTIALS_HINT.replace("HOST", registry),
        )


def platform_of(attrs: Mapping[str, Any]) -> str:
    """os/arch[/variant] of an image's inspect data."""
    parts = [str(attrs.get("Os") or "linux"), str(attrs.get("Architecture") or "unknown")]
    if attrs.get("Variant"):
        parts.append(str(attrs["Variant"]))
    return "/".join(parts)


def local_engine(env: Mapping[str, str]) -> bool:
    """Whether the engine runs on this machine (a unix socket): only then does a check from here see the
    registry as the engine does."""
    host = env.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")
