"""news-please as a peer of the throughput benchmark, the second after newspaper4k (whose venv, run and check helpers
it reuses): its own venv, and a run of `newsplease_run.py` there on a site's feeds. Check it on a local site with
`.venv/bin/python -m bench.peers.news_please --feeds 4 --articles 10 --latency-ms 0,200`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import newspaper4k as peer  # relative: bench/throughput.py imports the peers as `peers.*`
from .newspaper4k import PeerError

__all__ = ["DEFAULT_VENV", "REQUIREMENTS", "VERSION", "PeerError", "ensure_venv", "run_newsplease"]

VERSION = "1.6.16"  # the version measured: the newest on PyPI, installs on Python 3.11 with no extra pin
REQUIREMENTS = (f"news-please=={VERSION}",)  # it brings newspaper4k (its extractor) and feedparser with it
SCRIPT = Path(__file__).with_name("newsplease_run.py")
# Apart from newspaper4k's .venv-peers: news-please pins its own newspaper4k range and brings Scrapy, boto3, ...
DEFAULT_VENV = peer.BENCH.parent / ".venv-peer-newsplease"


def ensure_venv(path: Path = DEFAULT_VENV) -> Path:
    """The python of a venv at `path` with news-please, made (from PyPI) only if it is missing or another version."""
    return peer.ensure_venv(path, package="news-please", version=VERSION, requirements=REQUIREMENTS)


def run_newsplease(python: Path, feed_urls: list[str], threads: int = 10, timeout: float = 600,
                   script: Path = SCRIPT) -> dict[str, Any]:
    """Run the peer on `feed_urls` with `python` (see `ensure_venv`), reading the feeds on `threads` threads (the
    articles are fetched as news-please does, a thread each): its JSON result plus `tree_peak_rss_mb`."""
    return peer.run_script("news-please", [str(python), str(script), "--threads", str(threads), *feed_urls], timeout)


def summary(r: dict[str, Any], latency_ms: int, served: int) -> str:
    how = (f"news-please {r.get('version', VERSION)} from_urls, {r.get('threads', '?')} download threads, "
           f"{r.get('processes', '?')} parse processes")
    return peer.summary(r, latency_ms, served, how)


def main(argv: list[str] | None = None) -> int:
    args = peer.site_parser("news-please", DEFAULT_VENV).parse_args(argv)
    python = ensure_venv(args.venv)
    return peer.check_on_local_site(args, lambda feeds: run_newsplease(python, feeds, args.threads), summary)


if __name__ == "__main__":
    sys.exit(main())
