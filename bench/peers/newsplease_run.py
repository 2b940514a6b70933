"""Peer of bench/throughput.py, run inside its own venv (bench/peers/newsplease.py makes it): reads a site's RSS
feeds, then downloads and parses every article they list with news-please's `NewsPlease.from_urls`. Of this project it
imports only its sibling newspaper4k_run.py (self-contained; news-please brings the newspaper4k it needs), for the
feed reading and the loopback guard. Prints one JSON line with the same keys as that script.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from typing import IO, Any

# First: it sets TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS before newspaper (news-please's extractor) imports tldextract.
import newspaper4k_run as base
from newsplease import NewsPlease


class ForkCounter(Counter[str]):
    """Counts that also reach a file shared with forked processes: from_urls parses in a process pool, and what a
    child counts in its own memory dies with it."""

    def __init__(self, log: IO[bytes]) -> None:
        super().__init__()
        self.log = log  # O_APPEND (TemporaryFile's mode "a" only seeks): each process writes at the end
        fcntl.fcntl(log, fcntl.F_SETFL, fcntl.fcntl(log, fcntl.F_GETFL) | os.O_APPEND)

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key, value)
        os.write(self.log.fileno(), key.encode() + b"\n")  # one line a count, whole

    def everywhere(self) -> Counter[str]:
        self.log.seek(0)
        return Counter(self.log.read().decode().splitlines())


class DownloadErrors(logging.Handler):
    """news-please logs each failed download and gives no article for it: count them by kind."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.kinds: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.kinds[str(record.msg).split(":")[0][:100]] += 1  # e.g. "connection/timeout error", without its URL


def run(feed_urls: list[str], feed_threads: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryFile() as log:
        blocked = ForkCounter(log)
        base.loopback_only(blocked)
        multiprocessing.set_start_method("fork")  # the parse processes inherit the guard (spawned ones would not)
        base.network.session.trust_env = False  # the feeds: never through a proxy from the environment
        os.environ["no_proxy"] = "*"  # nor the articles, which news-please gets with a bare requests.get
        errors = DownloadErrors()
        logging.getLogger("newsplease").addHandler(errors)
        t0 = time.perf_counter()
        urls = base.article_urls(feed_urls, feed_threads)
        t_feeds = time.perf_counter()
        # request_args is needed: from_urls reads its "timeout" for every result of a many-URL call, and with None
        # it loses them all (an AttributeError it swallows as "no article").
        done = NewsPlease.from_urls(urls, request_args={"timeout": timeout}, fetch_images=False)
        wall = time.perf_counter() - t0
        blocked_anywhere = blocked.everywhere()
    parsed = [article for url in urls if (article := done.get(url))]  # a failure is missing, None or {}
    ok = sum(1 for article in parsed if (getattr(article, "maintext", None) or "").strip())
    if (silent := len(urls) - len(parsed) - errors.kinds.total()) > 0:
        errors.kinds["no article from the parse pool (news-please drops its exception)"] = silent
    peak_kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    many = len(urls) > 1  # from_urls fetches and parses a single URL in place, with no thread or pool
    return {
        "articles": ok, "empty": len(parsed) - ok, "failed": len(urls) - len(parsed), "urls": len(urls),
        "feeds": len(feed_urls), "threads": len(urls) if many else 1, "processes": os.cpu_count() if many else 0,
        "feed_threads": feed_threads, "request_timeout": timeout, "seconds": wall, "feed_seconds": t_feeds - t0,
        "rate": ok / wall if wall else 0.0, "peak_rss_mb": peak_kib / 1024,  # ru_maxrss is in KiB on Linux
        "errors": dict(errors.kinds.most_common(5)), "blocked": dict(blocked_anywhere),
        "version": importlib.metadata.version("news-please"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("feeds", nargs="+", help="RSS feed URLs")
    ap.add_argument("--threads", type=int, default=10,
                    help="threads reading the feeds (default 10); news-please downloads the articles a thread each")
    ap.add_argument("--timeout", type=float, default=7, help="seconds per article request (newspaper4k's default, 7)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.timeout <= 0:
        ap.error("give --threads >= 1 and --timeout > 0")
    print(json.dumps(run(args.feeds, args.threads, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
