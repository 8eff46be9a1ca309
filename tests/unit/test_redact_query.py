"""Issue 21: credentials in an index URL's query string (`https://host/simple?token=…`, signed URLs) are
redacted by the one rule in fwsetup.redact, like userinfo credentials."""

from __future__ import annotations

import pytest

from fwsetup.redact import has_credentials, redact_data, redact_text, redact_url, secrets_of

TOKEN = "qs-7e1d9a0c44b2"


@pytest.mark.parametrize(
    "key",
    ["token", "access_token", "api_key", "apikey", "key", "secret", "password", "passwd", "pwd", "auth",
     "Authorization", "sig", "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
     "session_id", "private%5Ftoken"],
)  # fmt: skip
def test_credential_query_values_are_masked(key: str) -> None:
    url = f"https://mirror.example/simple/?{key}={TOKEN}&page=2#frag"
    shown = f"https://mirror.example/simple/?{key}=***&page=2#frag"
    assert redact_url(url) == shown
    assert redact_text(f"+ uv pip install --index-url {url} x") == f"+ uv pip install --index-url {shown} x"
    assert has_credentials(url)
    assert TOKEN in secrets_of([url])
    assert TOKEN not in str(redact_data({"indexes": [url], "n": [url]}))


def test_other_query_values_stay() -> None:
    url = "https://mirror.example/simple/?page=2&format=html"
    assert redact_url(url) == url and redact_text(url) == url and not has_credentials(url)


def test_query_and_userinfo_together_and_decoded_forms() -> None:
    url = f"https://alice:{TOKEN}@h.example/simple?sig=a%2Bb%2F{TOKEN}&sv=2024;token={TOKEN}"
    out = redact_text(f"GET {url} failed")
    assert TOKEN not in out and "sv=2024" in out
    assert out == "GET https://***@h.example/simple?sig=***&sv=2024;token=*** failed"
    # the decoded value, printed by an installer outside its URL, is known too
    assert redact_text(f"bad signature a+b/{TOKEN}", secrets_of([url])) == "bad signature ***"
