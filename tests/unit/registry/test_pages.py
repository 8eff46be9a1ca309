"""The simple-index pages an index publishes (fwsetup.registry.pages): PEP 691 JSON and PEP 503 HTML read alike,
one request per (index, project) within one deadline, and the cache (TTL, ETag, refresh, offline, credentials).

The indexes here are real HTTP servers on 127.0.0.1 (tests/simple_index.py) serving PEP 691 JSON and PEP 503
HTML; no outside network.
"""

from __future__ import annotations

import time
from pathlib import Path

from simple_index import SimpleFile, SimpleIndex, future_jax

from fwsetup.registry.pages import parse_html_page, parse_json_page, read_pages

# ---- pages ------------------------------------------------------------------------------------------------


def test_json_and_html_pages_give_the_same_files() -> None:
    files = [
        SimpleFile("jaxlib-0.99.0-cp312-cp312-manylinux_2_27_x86_64.whl", ">=3.11"),
        SimpleFile("jaxlib-0.98.0-cp312-cp312-manylinux_2_27_x86_64.whl", ">=3.10", yanked=True),
        SimpleFile("jaxlib-0.98.0.tar.gz", None),
    ]
    idx = SimpleIndex({"jaxlib": files})
    from_json = parse_json_page(idx.json_page("jaxlib"))
    from_html = parse_html_page(idx.html_page("jaxlib"))
    assert [f.filename for f in from_json] == [f.filename for f in from_html] == [f.filename for f in files]
    assert [f.sha256 for f in from_json] == [f.sha256 for f in from_html] == [f.sha256 for f in files]
    # data-requires-python is HTML-escaped in PEP 503 (&gt;=3.11): read back as written
    assert [f.requires_python for f in from_html] == [">=3.11", ">=3.10", None]
    assert [f.yanked for f in from_json] == [f.yanked for f in from_html] == [False, True, False]
    assert from_json[0].uploaded == "2027-03-01" and from_json[0].size  # PEP 700, JSON only


# ---- the cache: TTL, ETag, refresh, offline ------------------------------------------------------------------


def test_cold_warm_and_revalidated_reads(tmp_path: Path) -> None:
    with SimpleIndex(future_jax()) as idx:
        pairs = [(idx.url, "jax"), (idx.url, "jaxlib")]
        now = 1_800_000_000.0
        cold = read_pages(pairs, cache_dir=tmp_path, ttl=3600, now=now)
        assert [o.page.kind for o in cold if o.page] == ["live", "live"]
        assert len(idx.requests) == 2  # one request per (index, project), no more
        assert all("application/vnd.pypi.simple.v1+json" in h["accept"] for _, h in idx.requests)
        assert any(f.filename == "jax-0.99.0-py3-none-any.whl" for f in cold[0].page.files)  # type: ignore[union-attr]

        warm = read_pages(pairs, cache_dir=tmp_path, ttl=3600, now=now + 60)
        assert [o.page.kind for o in warm if o.page] == ["cache", "cache"]
        assert len(idx.requests) == 2  # within the TTL: no network at all
        assert warm[1].page.files == cold[1].page.files  # type: ignore[union-attr]

        later = read_pages(pairs, cache_dir=tmp_path, ttl=3600, now=now + 3601)
        assert len(idx.requests) == 4
        assert all("if-none-match" in h for _, h in idx.requests[2:])  # conditional: the server said 304
        assert [o.page.kind for o in later if o.page] == ["live", "live"]
        assert later[1].page.files == cold[1].page.files  # type: ignore[union-attr]
        assert later[0].page.fetched == now + 3601  # type: ignore[union-attr]  # the 304 renewed the copy

        read_pages(pairs, mode="refresh", cache_dir=tmp_path, ttl=3600, now=now + 3602)
        assert len(idx.requests) == 6  # --refresh asks within the TTL too

        off = read_pages(pairs, mode="offline", cache_dir=tmp_path, ttl=3600, now=now + 99999)
        assert len(idx.requests) == 6 and [o.page for o in off] == [None, None]
        assert {o.note for o in off} == {"offline"}


def test_a_mirror_that_serves_only_pep503_html(tmp_path: Path) -> None:
    with SimpleIndex(future_jax(), formats=("html",)) as idx:
        (out,) = read_pages([(idx.url, "jaxlib")], cache_dir=tmp_path)
    assert out.page is not None and out.page.kind == "live"
    assert len(out.page.files) == 12 and {f.requires_python for f in out.page.files} == {">=3.11"}


def test_a_hanging_index_costs_the_deadline_once(tmp_path: Path) -> None:
    with SimpleIndex(future_jax(), hang=True) as idx:
        start = time.monotonic()
        (out,) = read_pages([(idx.url, "jax")], cache_dir=tmp_path, deadline=0.5)
        took = time.monotonic() - start
        assert took < 1.5, took
        assert out.page is None and out.note == "did not answer within 0.5 s"
        asked = len(idx.requests)
        (again,) = read_pages([(idx.url, "jax")], cache_dir=tmp_path, deadline=0.5)
        assert len(idx.requests) == asked  # not asked again for a while: a warm plan costs no network
        assert again.page is None and again.note == out.note


def test_a_stale_copy_stands_in_for_an_index_that_stopped_answering(tmp_path: Path) -> None:
    with SimpleIndex(future_jax()) as good:
        url = good.url
        read_pages([(url, "jax")], cache_dir=tmp_path, ttl=0.0)
    # the same URL now answers nothing at all (the server is gone): the last good copy, marked as such
    (out,) = read_pages([(url, "jax")], cache_dir=tmp_path, ttl=0.0, deadline=1.0)
    assert out.page is not None and out.page.kind == "cache" and out.note
    assert any(f.filename.startswith("jax-0.99.0") for f in out.page.files)


def test_credentials_go_as_basic_auth_and_never_into_the_cache(tmp_path: Path) -> None:
    with SimpleIndex(future_jax(), auth=("alice", "s3cr3t-token")) as idx:
        url = idx.url.replace("http://", "http://alice:s3cr3t-token@")
        (out,) = read_pages([(url, "jax")], cache_dir=tmp_path)
        assert "authorization" in idx.requests[0][1]
        assert "s3cr3t" not in idx.requests[0][0]
    assert out.page is not None and out.page.kind == "live" and out.page.shown.startswith("http://***@")
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"s3cr3t" not in f.read_bytes(), f


def test_an_index_url_with_a_query_token_keeps_it_at_the_end_and_out_of_the_cache(tmp_path: Path) -> None:
    with SimpleIndex(future_jax()) as idx:
        (out,) = read_pages([(idx.url + "/?token=q-s3cr3t", "jax")], cache_dir=tmp_path)
        assert idx.requests[0][0] == "/simple/jax/?token=q-s3cr3t"
    assert out.page is not None and out.page.kind == "live" and "q-s3cr3t" not in out.page.shown
    assert not any(b"q-s3cr3t" in f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())
