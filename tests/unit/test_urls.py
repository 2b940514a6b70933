import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import PermanentError
from worker.urls import article_id, canonical_url, site_domain


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        pytest.param("HTTPS://WWW.Example.com:443/a.html?utm_source=x&id=3&fbclid=z#top", None,
                     "https://www.example.com/a.html?id=3", id="tracking-fragment-port-case"),
        pytest.param("/tin/bai-1.html?gclid=1", "https://vnexpress.net/rss/x.rss",
                     "https://vnexpress.net/tin/bai-1.html", id="relative-link"),
        pytest.param("http://example.com", None, "http://example.com/", id="empty-path"),
        pytest.param("  https://example.com/b?z=1&a=2  ", None, "https://example.com/b?a=2&z=1", id="query-order"),
    ],
)
def test_canonical_url(raw: str, base: str | None, expected: str) -> None:
    assert canonical_url(raw, base=base) == expected


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "file:///etc/passwd", "ftp://x.org/a", "", "http://",
                                 "https://example.com/" + "a" * 3000])
def test_non_web_urls_are_refused(bad: str) -> None:
    with pytest.raises(PermanentError) as err:
        canonical_url(bad)
    assert err.value.reason == "bad_url"


def test_same_article_same_id() -> None:
    a = canonical_url("https://vnexpress.net/x-1.html?utm_medium=rss#c")
    b = canonical_url("https://VNEXPRESS.net/x-1.html")
    assert article_id(a) == article_id(b)
    assert len(article_id(a)) == 32
    assert article_id(a) != article_id(canonical_url("https://vnexpress.net/x-2.html"))


def test_site_domain_drops_www() -> None:
    assert site_domain("https://www.dantri.com.vn/a") == "dantri.com.vn"
    assert site_domain("https://phapluat.tuoitrethudo.vn/a") == "phapluat.tuoitrethudo.vn"


@given(st.text(max_size=200))
def test_canonicalisation_is_idempotent_and_only_raises_our_error(text: str) -> None:
    try:
        once = canonical_url("https://example.com/" + text)
    except PermanentError:
        return
    assert canonical_url(once) == once
