"""Issue 9, item 4: index credentials never reach what fwsetup shows or stores: the one redaction rule
(fwsetup.redact) on URLs, text and data."""

from __future__ import annotations

import json

import pytest
from index_secrets import EXTRA, INDEX, TOKEN, clean_pip_env

from fwsetup.backends.docker.render import redact as docker_redact
from fwsetup.redact import has_credentials, redact_data, redact_text, redact_url, secrets_of

# `clean_pip_env` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["clean_pip_env"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:TOKEN@host/simple", "https://***@host/simple"),
        ("https://TOKEN@host:8443/simple/", "https://***@host:8443/simple/"),
        ("https://a:p@ss@host/", "https://***@host/"),
        ("https://conda.anaconda.org/t/ab-123/mychan", "https://conda.anaconda.org/t/***/mychan"),
        ("https://pypi.org/simple", "https://pypi.org/simple"),
        ("file:///srv/wheels", "file:///srv/wheels"),
        ("/srv/wheels", "/srv/wheels"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"x {url} y") == f"x {shown} y"
    assert has_credentials(url) == (url != shown)
    assert docker_redact(url) == shown  # the Docker path uses the same function


def test_redact_text_and_data() -> None:
    line = f"+ uv pip install --index-url {INDEX} '--extra-index-url={EXTRA}' fakefw==1.0 user@example.com"
    out = redact_text(line)
    assert TOKEN not in out and "https://***@mirror.example/simple" in out and "user@example.com" in out
    # a secret printed outside its URL (decoded, in a message) is hidden when it is known
    assert redact_text(f"401 for password {TOKEN}", secrets_of([INDEX])) == "401 for password ***"
    data = {"indexes": [INDEX], "packages": [{"url": f"{INDEX}/../files/fakefw-1.0.whl", "size": 3}], "n": 1}
    assert TOKEN not in json.dumps(redact_data(data))
    assert redact_data(data)["n"] == 1 and redact_data(data)["packages"][0]["size"] == 3
