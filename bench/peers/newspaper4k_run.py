"""Peer of bench/throughput.py, run inside its own venv (bench/peers/newspaper4k.py makes it): reads a site's RSS
feeds, then downloads and parses every article they list with newspaper4k's `fetch_news` thread pool. Imports
nothing of this project. Prints one JSON line: articles (parsed, with text), empty, failed, seconds, rate, ...
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import socket
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# tldextract (used by newspaper4k) reads this when imported: empty means its bundled suffix list, no download.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
warnings.filterwarnings("ignore", message="nltk is not installed")  # only its NLP step needs nltk; we skip it

import feedparser  # noqa: E402
import newspaper  # noqa: E402
from newspaper import network  # noqa: E402
from newspaper.article import Article, ArticleDownloadState  # noqa: E402
from newspaper.mthreading import fetch_news  # noqa: E402

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback(host: Any) -> bool:
    host = host.decode() if isinstance(host, bytes) else host
    if host is None or host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def loopback_only(blocked: Counter[str]) -> None:
    """Refuse, and count, every connection or name lookup beyond loopback: a benchmark on 127.0.0.1 must never
    reach the internet, where the real pages' images and links point."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            blocked[str(address[0])] += 1
            raise ConnectionRefusedError(f"blocked: {address[0]} is not loopback")
        connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            blocked[str(host)] += 1
            raise socket.gaierror(socket.EAI_NONAME, f"blocked: {host} is not loopback")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = guarded_getaddrinfo


class CountedArticle(Article):
    """An Article whose failures are recorded instead of raised: `fetch_news` maps its threads over the list, so a
    single raising article would abort the whole run and lose every result."""

    error: str | None = None

    def download(self, *args: Any, **kwargs: Any) -> Article:
        try:
            return super().download(*args, **kwargs)
        except Exception as exc:  # e.g. ArticleBinaryDataException, which download() lets through
            self.error = f"{type(exc).__name__}: {exc}"
            return self

    def parse(self) -> Article:
        if self.error is None and self.download_state != ArticleDownloadState.SUCCESS:
            self.error = self.download_exception_msg or "download failed"
        if self.error is not None:
            return self
        try:
            return super().parse()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return self


def article_urls(feed_urls: list[str], threads: int) -> list[str]:
    """The article links of every feed, in feed order, each once; the feeds are read on the same thread count."""

    def links(url: str) -> list[str]:
        resp = network.session.get(url, timeout=30)
        resp.raise_for_status()
        return [entry.link for entry in feedparser.parse(resp.content).entries if entry.get("link")]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(dict.fromkeys(url for urls in pool.map(links, feed_urls) for url in urls))


def run(feed_urls: list[str], threads: int) -> dict[str, Any]:
    blocked: Counter[str] = Counter()
    loopback_only(blocked)
    network.session.trust_env = False  # loopback: never through a proxy from the environment
    config = newspaper.Config()
    config.fetch_images = False  # it would download the pages' images from their real (non-local) hosts
    t0 = time.perf_counter()
    urls = article_urls(feed_urls, threads)
    t_feeds = time.perf_counter()
    done = fetch_news([CountedArticle(url, config=config) for url in urls], threads=threads)
    wall = time.perf_counter() - t0
    errors = Counter(a.error[:100] for a in done if isinstance(a, CountedArticle) and a.error)
    parsed = [a for a in done if isinstance(a, CountedArticle) and not a.error]
    ok = sum(1 for a in parsed if a.text.strip())
    peak_kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {
        "articles": ok, "empty": len(parsed) - ok, "failed": len(urls) - len(parsed), "urls": len(urls),
        "feeds": len(feed_urls), "threads": threads, "seconds": wall, "feed_seconds": t_feeds - t0,
        "rate": ok / wall if wall else 0.0, "peak_rss_mb": peak_kib / 1024,  # ru_maxrss is in KiB on Linux
        "errors": dict(errors.most_common(5)), "blocked": dict(blocked), "version": newspaper.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("feeds", nargs="*", help="RSS feed URLs")
    ap.add_argument("--feeds-file", type=Path, help="a JSON list of feed URLs, read in addition")
    ap.add_argument("--threads", type=int, default=10, help="fetch_news threads (default 10)")
    args = ap.parse_args(argv)
    feeds = list(args.feeds) + (json.loads(args.feeds_file.read_text()) if args.feeds_file else [])
    if not feeds or args.threads < 1:
        ap.error("give at least one feed URL and --threads >= 1")
    print(json.dumps(run(feeds, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
