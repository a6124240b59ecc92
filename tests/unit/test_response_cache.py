"""The example services' response cache (bounded LRU by body hash) and gzip negotiation."""

from __future__ import annotations

import gzip

import pytest

from workers.examples.response_cache import MIN_GZIP_BYTES, ResponseCache, accepts_gzip, gzip_body


def test_repeated_bodies_hit_and_the_least_recently_used_goes_first() -> None:
    cache = ResponseCache(max_entries=2)
    assert cache.get(b"a") is None
    cache.put(b"a", b"A")
    cache.put(b"b", b"B")
    assert cache.get(b"a") == b"A"  # a is now the most recent
    cache.put(b"c", b"C")  # evicts b
    assert cache.get(b"b") is None
    assert cache.get(b"c") == b"C"
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_zero_sized_cache_keeps_nothing() -> None:
    cache = ResponseCache(max_entries=0)
    cache.put(b"a", b"A")
    assert cache.get(b"a") is None
    with pytest.raises(ValueError, match="max_entries"):
        ResponseCache(max_entries=-1)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("br, gzip;q=0.5", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
        (None, False),
        ("gzip;q=bad", False),
    ],
)
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_gzip_only_when_asked_and_worth_it() -> None:
    big = b'{"outputs": [' + b"0.123456789, " * 100 + b"0.1]}"
    sent, headers = gzip_body(big, "gzip")
    assert headers == {"Vary": "Accept-Encoding", "Content-Encoding": "gzip"}
    assert gzip.decompress(sent) == big
    assert len(sent) < len(big)
    assert gzip_body(big, "identity") == (big, {"Vary": "Accept-Encoding"})
    small = b"x" * (MIN_GZIP_BYTES - 1)
    assert gzip_body(small, "gzip") == (small, {"Vary": "Accept-Encoding"})
