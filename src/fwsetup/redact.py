"""Credentials out of everything fwsetup shows or stores.

An index URL may carry a credential in its userinfo (`https://alice:TOKEN@host/simple`, PIP_INDEX_URL,
pip.conf, find-links), in its query string (`https://host/simple?token=TOKEN`, as some mirrors, proxies and
signed URLs do: any query key that looks like a credential, see _SECRET_KEY) or, for conda channels, in an
Anaconda token path segment (`.../t/TOKEN/channel`).
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

# scheme://userinfo@ — userinfo stops at the first "/", "@" (the last one wins), whitespace or quote. A scheme
# starts where a run of letters starts (the lookbehind), and text without "://" is not searched at all: else a
# long run of letters (an installer's progress line) costs time quadratic in its length - 12 s for 64 KB.
_USERINFO = re.compile(r"(?<![A-Za-z])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"<>`]*@)+")
# Anaconda channel tokens: https://conda.anaconda.org/t/<token>/<channel>
_CONDA_TOKEN = re.compile(r"(?P<head>://[^/\s'\"<>`]+/t/)(?P<token>[^/\s'\"<>`]+)")
# a URL in free text, and the query of one: ?key=value&key=value (";" too, as some servers take it)
_URL = re.compile(r"(?<![A-Za-z])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_QUERY_PAIR = re.compile(r"(?P<pre>(?:^|[&;])(?P<key>[^=&;#]*)=)(?P<value>[^&;#]*)")
# query keys whose value is a credential: token, access_token, api_key, key, secret, password, passwd, pwd,
# auth, authorization, sig, signature (Azure SAS), X-Amz-Signature / X-Amz-Credential / X-Amz-Security-Token,
# session, cookie. A key is matched after percent-decoding, case-insensitively, anywhere in its name: a value
# masked for nothing costs a less useful log line; a token missed is a leak.
_SECRET_KEY = re.compile(r"token|key|secret|passw|pwd|auth|sig|credential|session|cookie", re.I)


def _query_secrets(url: str) -> list[tuple[int, int]]:
    """(start, end) in `url` of each query value whose key looks like a credential."""
    q = url.find("?")
    if q < 0:
        return []
    end = url.find("#", q)
    query = url[q + 1 : end if end >= 0 else len(url)]
    spans = []
    for m in _QUERY_PAIR.finditer(query):
        if m.group("value") and _SECRET_KEY.search(unquote(m.group("key").replace("+", " "))):
            spans.append((q + 1 + m.start("value"), q + 1 + m.end("value")))
    return spans


def _redact_query(url: str) -> str:
    for start, end in reversed(_query_secrets(url)):
        url = url[:start] + MASK + url[end:]
    return url


def has_credentials(url: str) -> bool:
    """True when `url` carries a user name, a password or a conda token."""
    return redact_text(url) != url


def redact_url(url: str) -> str:
    """`url` with its userinfo, credential query values and a conda `/t/<token>/` segment replaced by ***:
    `https://***@host/simple`, `https://host/simple?token=***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))
    return _redact_query(_CONDA_TOKEN.sub(lambda m: m.group("head") + MASK, url))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Every URL credential in free text (a log line, a command line, a message) replaced by ***, and any
    of `secrets` (exact strings, e.g. from secrets_of) too, wherever they appear."""
    out = text
    if "://" in text:
        out = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", out)
        out = _CONDA_TOKEN.sub(lambda m: m.group("head") + MASK, out)
        out = _URL.sub(lambda m: _redact_query(m.group(0)), out)
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
        for start, end in _query_secrets(url):
            raw = url[start:end]
            out |= {raw, unquote(raw), unquote(raw.replace("+", " ")), quote(unquote(raw), safe="")}
    return {s for s in out if s}
