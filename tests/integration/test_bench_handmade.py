"""The throughput benchmark's hand-made reference program (bench/throughput.py `handmade`): it reads the feeds of a
site on 127.0.0.1, fetches every listed page and extracts it in its own processes, and counts what it extracted."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from demo.newssite import NewsSite

BENCH = Path(__file__).resolve().parents[2] / "bench"
PAGES = Path(__file__).resolve().parents[1] / "data" / "site" / "pages"


def test_handmade_extracts_every_article_its_feeds_list() -> None:
    # Imported by its plain name, with bench/ on the path that spawned processes inherit: they import the module
    # again to find the functions they run.
    sys.path.insert(0, str(BENCH))
    try:
        throughput = importlib.import_module("throughput")
        site = NewsSite(0.0, 2)
        try:
            pages = [p.read_bytes() for p in sorted(PAGES.glob("*.html"))]
            for i, page in enumerate(pages):
                site.add_article(i % 2, f"/a{i}.html", page)
            site.add_article(0, "/empty.html", b"<html><body><p>no article here</p></body></html>")
            rate, done = throughput.handmade(site.feed_urls, threads=4)
        finally:
            site.stop()
    finally:
        sys.path.remove(str(BENCH))
    assert len(pages) >= 5
    assert done == len(pages)  # every real article, and not the empty page
    assert rate > 0
