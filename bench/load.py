"""The load proof of issue 8: a local site of F section feeds x A articles ingested by the `make run` topology.

The site (demo/newssite.py's NewsSite on 127.0.0.1) serves real pages from `../shared/data`, each under many
URLs; the feeds file lifts the politeness limit for the one local host, which stands for the many sites of a real
run. The stack is the real one (`tasks.stack.Stack`: scheduler, worker and its extraction processes, default
settings) on a private append-only redis-server, run until every article is on the stream or recorded as a failure.
Pages the extractor rejects end as recorded failures: accounted for, not lost, and reported by stage/reason.

Figures: articles in / on the stream / duplicates (stream entries whose id or canonical URL came before) / lost
(neither on the stream nor failed); rate = articles / (last XADD or failure - first feed poll); peak RSS (the
kernel's high-water mark, VmHWM) and PSS per process type, sampled by psutil; Redis memory per article = INFO
used_memory after minus before, over the articles, with the stream's MEMORY USAGE and the keys grouped by pattern.
Last line: `load: articles=N published=P duplicates=D lost=L failures=F rate=R/s redis_bytes_per_article=B
peak_rss_mb=worker:W,extraction:E,scheduler:S,redis:R`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
import yaml
from kombu.transport.redis import Channel

from config import Settings, load_settings
from demo.newssite import SHARED_DATA, NewsSite, read_pages
from tasks.app import ARTICLES_QUEUE
from tasks.stack import PrivateRedis, Stack, free_port, role_under_worker
from worker.failures import failures_key
from worker.urls import article_id, canonical_url

MB = 2**20
SETTLE_S = 3.0  # once every article is accounted for and the queue is empty: a late duplicate would land now
UNACKED = Channel.unacked_key  # kombu's hash of delivered, unacked tasks
ID_PART = re.compile(r"^(?:[0-9a-f]{4,}|\d+)$")  # key segments that are ids, hashes or ports


def write_feeds(path: Path, feed_urls: list[str], interval: int) -> Path:
    path.write_text(yaml.safe_dump({
        "feeds": [{"url": u, "section": f"Mục {i}", "interval": interval} for i, u in enumerate(feed_urls)],
        "sites": {"127.0.0.1": {"name": "Load", "rate_limit": 10_000, "max_concurrency": 1000}},
    }, allow_unicode=True))
    return path


@dataclass
class Peak:
    rss: float = 0.0  # MB: the largest VmHWM (or sampled RSS) of any one process of the type
    pss: float = 0.0  # MB: the largest sampled PSS of any one process of the type
    processes: int = 0


class Sampler(threading.Thread):
    """Samples the stack's processes every `every` s: per process the kernel's RSS high-water mark and PSS.
    Types: the given roots (scheduler, worker, redis) and the worker's descendants (`tasks.stack.role_under_worker`:
    extraction processes, their fork server, multiprocessing's resource tracker). `now` holds each type's current
    largest RSS, for growth over the run."""

    def __init__(self, roots: dict[str, int], every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.roots = {role: psutil.Process(pid) for role, pid in roots.items()}
        self.every, self.done = every, threading.Event()
        self.peaks: dict[int, tuple[str, float, float]] = {}  # pid -> (type, peak RSS MB, peak PSS MB)
        self.now: dict[str, float] = {}
        self.start()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.sample()

    def sample(self) -> None:
        procs = list(self.roots.items())
        try:
            children = self.roots["worker"].children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                procs.append((role_under_worker(" ".join(child.cmdline()), child.ppid() == self.roots["worker"].pid),
                              child))
            except psutil.Error:
                continue
        now: dict[str, float] = {}
        for kind, proc in procs:
            try:
                mem = proc.memory_full_info()
            except psutil.Error:
                continue
            rss = max(mem.rss, _hwm(proc.pid)) / MB
            _, top_rss, top_pss = self.peaks.get(proc.pid, (kind, 0.0, 0.0))
            self.peaks[proc.pid] = (kind, max(top_rss, rss), max(top_pss, getattr(mem, "pss", mem.rss) / MB))
            now[kind] = max(now.get(kind, 0.0), mem.rss / MB)
        self.now = now

    def by_type(self) -> dict[str, Peak]:
        out: dict[str, Peak] = {}
        for kind, rss, pss in self.peaks.values():
            p = out.setdefault(kind, Peak())
            p.rss, p.pss, p.processes = max(p.rss, rss), max(p.pss, pss), p.processes + 1
        return out


def _hwm(pid: int) -> int:
    """The kernel's peak RSS of a process (VmHWM, Linux), 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class Tally:
    """What the stream and the failures hold about the expected articles."""

    expected: set[str]
    entries: int = 0
    on_stream: set[str] = field(default_factory=set)
    duplicates: int = 0
    unexpected: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # article id -> stage/reason
    reasons: Counter[str] = field(default_factory=Counter)  # every failure record, feeds too
    last_ms: int = 0  # time of the last stream entry or failure (ms since the epoch)

    @property
    def lost(self) -> int:
        return len(self.expected - self.on_stream - self.failed.keys())

    @property
    def failed_only(self) -> int:
        return len(self.failed.keys() - self.on_stream)


def _read(client: redis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while batch := client.xrange(key, min=start, count=1000):  # type: ignore[arg-type]
        out += batch  # type: ignore[arg-type]
        start = "(" + batch[-1][0]  # type: ignore[index]
    return out


def tally(client: redis.Redis, settings: Settings, expected: set[str]) -> Tally:
    t = Tally(expected)
    urls: set[str] = set()
    for entry_id, fields in _read(client, settings.stream):
        t.entries += 1
        aid, url = fields.get("id", ""), fields.get("url", "")
        t.duplicates += aid in t.on_stream or url in urls
        t.unexpected += aid not in expected
        t.on_stream.add(aid)
        urls.add(url)
        t.last_ms = max(t.last_ms, int(entry_id.split("-")[0]))
    for entry_id, fields in _read(client, failures_key(settings.key_prefix)):
        reason = f"{fields.get('stage')}/{fields.get('reason')}"
        t.reasons[reason] += 1
        aid = article_id(canonical_url(fields["url"]))
        if aid in expected:
            t.failed[aid] = reason
            t.last_ms = max(t.last_ms, int(entry_id.split("-")[0]))
    return t


def key_groups(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Every key grouped by pattern (id, hash and port segments as *): how many, and their MEMORY USAGE."""
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    groups: dict[str, tuple[int, int]] = {}
    for key, size in zip(keys, pipe.execute(), strict=True):
        pattern = ":".join("*" if ID_PART.match(part) else part for part in str(key).split(":"))
        n, total = groups.get(pattern, (0, 0))
        groups[pattern] = (n + 1, total + int(size or 0))
    return groups


@dataclass
class LoadResult:
    feeds: int
    articles: int
    pages: int
    tally: Tally
    complete: bool  # every article accounted for before the timeout, the stack still running
    first_poll_s: float  # after the stack's start
    done_s: float  # the last XADD or failure, after the stack's start
    peaks: dict[str, Peak]
    growth: dict[int, dict[str, float]]  # % of articles accounted for -> RSS MB per type then
    redis_before: int
    redis_after: int
    redis_peak: int  # used_memory_peak: with every task queued
    groups: dict[str, tuple[int, int]]
    stream: str
    page_of: dict[str, int] = field(default_factory=dict)  # article id -> index of its page

    @property
    def rate(self) -> float:
        span = self.done_s - self.first_poll_s
        return self.articles / span if span > 0 else 0.0

    @property
    def redis_per_article(self) -> float:
        return (self.redis_after - self.redis_before) / self.articles

    def peak_rss(self, kind: str) -> float:
        return self.peaks[kind].rss if kind in self.peaks else 0.0

    def line(self) -> str:
        t = self.tally
        return (f"load: articles={self.articles} published={len(t.on_stream)} duplicates={t.duplicates} "
                f"lost={t.lost} failures={t.failed_only} rate={self.rate:.1f}/s "
                f"redis_bytes_per_article={self.redis_per_article:.0f} peak_rss_mb="
                + ",".join(f"{k}:{self.peak_rss(k):.0f}" for k in ("worker", "extraction", "scheduler", "redis")))


def run_load(pages: list[bytes], feeds: int, per_feed: int, workdir: Path, *, timeout: float = 1800.0,
             latency: float = 0.0, interval: int = 60, env: dict[str, str] | None = None,
             progress: Callable[[str], None] | None = None) -> LoadResult:
    """Serve the site, run the stack until every article is accounted for (or `timeout`), and measure."""
    n = feeds * per_feed
    site = NewsSite(latency, feeds)
    try:
        links = [site.add_article(i % feeds, f"/s{i % feeds:03d}/a{i:05d}.html", pages[i % len(pages)])
                 for i in range(n)]
        page_of = {article_id(u): i % len(pages) for i, u in enumerate(links)}  # add_article: canonical URLs
        server = PrivateRedis(workdir / "redis", free_port()).start()
        try:
            result = _run(site, server, set(page_of), workdir, timeout=timeout, interval=interval, env=env or {},
                          progress=progress or (lambda _line: None), pages=len(pages))
            result.page_of = page_of
            return result
        finally:
            server.stop()
    finally:
        site.stop()


def _run(site: NewsSite, server: PrivateRedis, expected: set[str], workdir: Path, *, timeout: float,
         interval: int, env: dict[str, str], progress: Callable[[str], None], pages: int) -> LoadResult:
    n, feeds = len(expected), len(site.feed_urls)
    stack_env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    stack_env |= {"REDIS_URL": server.url, "INGEST_FEEDS_FILE": str(write_feeds(workdir / "feeds.yaml",
                  site.feed_urls, interval)), "INGEST_VAR_DIR": str(workdir / "var"),
                  "INGEST_ALLOW_PRIVATE_NETWORKS": "true", "INGEST_METRICS_PORT": "0",
                  "INGEST_LOG_LEVEL": "WARNING", **env}
    settings = load_settings(stack_env)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    redis_before = int(client.info("memory")["used_memory"])
    growth: dict[int, dict[str, float]] = {}
    with (workdir / "stack.log").open("wb") as log:
        started = time.time()
        stack = Stack(stack_env, stdout=log.fileno()).start()
        sampler = Sampler({"scheduler": stack.procs[0].pid, "worker": stack.procs[1].pid,
                           "redis": server.proc.pid if server.proc else 0})

        def milestone(pct: int) -> None:
            rss = ", ".join(f"{k} {v:.0f}" for k, v in sorted(sampler.now.items()))
            progress(f"{pct}% after {time.time() - started:.0f} s, RSS MB {rss}")

        try:
            complete = wait_accounted(client, settings, expected, stack, sampler, growth, timeout, milestone)
            drain = time.monotonic() + 60  # let what is still queued run: a duplicate would show
            while complete and time.monotonic() < drain and (client.llen(ARTICLES_QUEUE) or client.hlen(UNACKED)):
                time.sleep(0.2)
            time.sleep(SETTLE_S if complete else 0)
            growth[100] = dict(sampler.now)
            result = tally(client, settings, expected)
            memory = client.info("memory")
            groups = key_groups(client)
        finally:
            stack.stop()
            sampler.stop()
    if not complete:
        print((workdir / "stack.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    return LoadResult(
        feeds=feeds, articles=n, pages=pages, tally=result, complete=complete and not result.lost,
        first_poll_s=min(site.found.values(), default=started) - started, done_s=result.last_ms / 1000 - started,
        peaks=sampler.by_type(), growth=growth, redis_before=redis_before, redis_after=int(memory["used_memory"]),
        redis_peak=int(memory["used_memory_peak"]), groups=groups, stream=settings.stream,
    )


def wait_accounted(client: redis.Redis, settings: Settings, expected: set[str], stack: Stack, sampler: Sampler,
                   growth: dict[int, dict[str, float]], timeout: float, milestone: Callable[[int], None]) -> bool:
    """Wait until every expected article is on the stream or failed (True), the timeout, or a process's exit.
    Notes each type's RSS in `growth` at 25, 50 and 75 % of the articles."""
    n, deadline, next_tally = len(expected), time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline and not stack.any_exited():
        done = client.xlen(settings.stream) + client.xlen(failures_key(settings.key_prefix))
        for pct in (25, 50, 75):
            if done >= n * pct // 100 and pct not in growth:
                growth[pct] = dict(sampler.now)
                milestone(pct)
        if done >= n and time.monotonic() >= next_tally:  # the full count reads the whole stream: not too often
            if not tally(client, settings, expected).lost:
                return True
            next_tally = time.monotonic() + 5
        time.sleep(0.5)
    return False


def report(r: LoadResult) -> str:
    t, n = r.tally, r.articles
    reasons = ", ".join(f"{k} {v}" for k, v in t.reasons.most_common()) or "none"
    mem = ", ".join(f"{k} {p.rss:.0f}/{p.pss:.0f}" + (f" ({p.processes} processes)" if p.processes > 1 else "")
                    for k, p in sorted(r.peaks.items()))
    growth = "; ".join(f"{k}: " + "/".join(f"{r.growth.get(pct, {}).get(k, 0):.0f}" for pct in (25, 50, 75, 100))
                       for k in ("scheduler", "worker", "extraction", "redis"))
    delta = r.redis_after - r.redis_before
    stream_b = r.groups.get(r.stream, (0, 0))[1]
    keys_b = sum(b for k, (_, b) in r.groups.items() if k != r.stream)
    top = sorted(r.groups.items(), key=lambda kv: -kv[1][1])[:8]
    return "\n".join([
        f"load: {r.feeds} feeds x {n // r.feeds} articles = {n} ({r.pages} distinct pages), "
        f"{os.cpu_count()} cores{'' if r.complete else '; INCOMPLETE'}",
        f"  articles in {n}; on stream {len(t.on_stream)} ({t.entries} entries); duplicates {t.duplicates}; "
        f"lost {t.lost}; unexpected {t.unexpected}; failed (not on stream) {t.failed_only}",
        f"  failure records by stage/reason: {reasons}",
        f"  time: first feed poll {r.first_poll_s:.1f} s after start, last article {r.done_s:.1f} s after start; "
        f"rate {r.rate:.1f} articles/s (first poll -> last XADD or failure)",
        f"  peak MB RSS (high-water) / PSS per process: {mem}",
        f"  RSS MB at 25/50/75/100% of the articles: {growth}",
        f"  redis used_memory {r.redis_before / MB:.1f} MB before, {r.redis_after / MB:.1f} MB after "
        f"(peak {r.redis_peak / MB:.1f} MB): {r.redis_per_article:.0f} bytes/article; MEMORY USAGE of the stream "
        f"{stream_b / n:.0f} B/article, of the other keys {keys_b / n:.0f} B/article "
        f"(together {100 * (stream_b + keys_b) / max(delta, 1):.0f}% of the growth)",
        "  largest key groups: " + "; ".join(f"{k} {c} x {b / c:.0f} B = {b / MB:.1f} MB" for k, (c, b) in top),
        r.line(),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--articles", type=int, default=50, help="articles per feed")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for every article")
    ap.add_argument("--interval", type=int, default=60, help="seconds between polls of a feed")
    ap.add_argument("--latency-ms", type=int, default=0, help="the site's delay before each answer")
    ap.add_argument("--data", type=Path, default=SHARED_DATA, help="folder of the real pages (../shared/data)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the stack")
    args = ap.parse_args(argv)
    if not (pages := read_pages(args.data)):
        sys.exit(f"no pages under {args.data}: see --data")
    print(f"{args.feeds} feeds x {args.articles} articles, {len(pages)} pages", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        result = run_load(pages, args.feeds, args.articles, Path(tmp), timeout=args.timeout,
                          latency=args.latency_ms / 1000, interval=args.interval,
                          env=dict(kv.split("=", 1) for kv in args.env), progress=lambda s: print(s, flush=True))
    print(report(result), flush=True)
    return 0 if result.complete and not result.tally.duplicates else 1


if __name__ == "__main__":
    sys.exit(main())
