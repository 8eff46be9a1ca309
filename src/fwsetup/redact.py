"""Credentials out of everything fwsetup shows or stores.

An index URL may carry a credential in its userinfo (`https://alice:TOKEN@host/simple`, PIP_INDEX_URL,
pip.conf, find-links) or, for conda channels, in an Anaconda token path segment (`.../t/TOKEN/channel`).
Such a URL reaches the installers through their environment, never their command line (pipconfig.to_uv);
everywhere it is shown or written to disk (logs, lock.json, plan.json, --dry-run, messages) it goes
through one of these functions first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"

# scheme://userinfo@ — userinfo stops at the first "/", "@" (the last one wins), whitespace or quote
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"<>`]*@)+")
# Anaconda channel tokens: https://conda.anaconda.org/t/<token>/<channel>
_CONDA_TOKEN = re.compile(r"(?P<head>://[^/\s'\"<>`]+/t/)(?P<token>[^/\s'\"<>`]+)")


def has_credentials(url: str) -> bool:
    """True when `url` carries a user name, a password or a conda token."""
    return redact_text(url) != url


def redact_url(url: str) -> str:
    """`url` with its userinfo (and a conda `/t/<token>/` segment) replaced by ***: `https://***@host/simple`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))
    return _CONDA_TOKEN.sub(lambda m: m.group("head") + MASK, url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Every URL credential in free text (a log line, a command line, a message) replaced by ***, and any
    of `secrets` (exact strings, e.g. from secrets_of) too, wherever they appear."""
    out = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    out = _CONDA_TOKEN.sub(lambda m: m.group("head") + MASK, out)
    for s in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        out = out.replace(s, MASK)
    return out


def redact_data(value: Any, secrets: Iterable[str] = ()) -> Any:
    """The same over JSON-like data (dicts, lists, strings), for lock.json and plan.json."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: redact_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v, secrets) for v in value]
    return value


def secrets_of(urls: Iterable[str]) -> set[str]:
    """The passwords (and tokens) in `urls`, as written and percent-decoded, so that an installer that prints
    one outside its URL (an error message, a decoded form) is redacted too."""
    out: set[str] = set()
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            user, sep, password = userinfo.partition(":")
            # a lone user name is often the token itself (https://TOKEN@host)
            raw = password if sep else user
            if raw:
                out |= {raw, unquote(raw), quote(unquote(raw), safe="")}
        for m in _CONDA_TOKEN.finditer(url):
            out.add(m.group("token"))
    return {s for s in out if s}
