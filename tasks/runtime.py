"""Per-process clients and settings the tasks use: Redis, the HTTP client, the feed registry, and the
local extraction processes (`tasks.extractors`; pages never travel through the broker).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

import redis
import urllib3
from protego import Protego

from config import Settings, Sources, load_sources
from tasks.extractors import ExtractorPool
from worker.article import Origin
from worker.errors import TemporaryError
from worker.fetch import FetchLimits, make_client
from worker.models import Extracted
from worker.politeness import HostPolicy
from worker.registry import Registry
from worker.robots import load_robots, robots_url
from worker.stream import Retention

EXTRACTIONS_PER_PROCESS = 20_000  # a backstop: they are replaced on their memory (`extract_max_memory_mb`)
ROBOTS_MEMORY_SECONDS = 60.0
ROBOTS_IN_MEMORY = 10_000  # sites; the cache starts afresh past this

log = logging.getLogger(__name__)


@dataclass
class _Loading:
    """A site's robots.txt rules being loaded by one thread, for the others that need them meanwhile."""

    done: threading.Event = field(default_factory=threading.Event)
    rules: Protego | None = None
    error: BaseException | None = None

    def result(self, timeout: float) -> Protego:
        if not self.done.wait(timeout):  # the loading thread is stuck past its own deadline
            raise TemporaryError("timeout", "robots.txt: still loading in another thread")
        if self.error is not None:
            raise copy.copy(self.error)  # a copy per thread: raising one object in many threads mixes tracebacks
        assert self.rules is not None
        return self.rules


@dataclass
class Runtime:
    settings: Settings
    _pool: ExtractorPool | None = field(default=None, repr=False)
    _robots: dict[str, tuple[float, Protego]] = field(default_factory=dict, repr=False)
    _robots_loading: dict[str, _Loading] = field(default_factory=dict, repr=False)  # one load per site at a time
    _robots_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def sources(self) -> Sources:
        return load_sources(self.settings.feeds_file)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url, decode_responses=True, health_check_interval=30,
            socket_timeout=30, socket_connect_timeout=10, retry_on_timeout=True,
        )

    @cached_property
    def http(self) -> urllib3.PoolManager:
        s = self.settings
        return make_client(s.user_agent, s.connect_timeout, s.read_timeout, pool_size=s.fetch_concurrency * 2)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.redis, self.settings.key_prefix)

    @property
    def retention(self) -> Retention:
        return Retention(self.settings.stream_maxlen, self.settings.stream_max_age_days * 86400)

    def limits(self, max_bytes: int) -> FetchLimits:
        s = self.settings
        return FetchLimits(max_bytes, s.allow_private_networks, s.max_redirects, s.total_timeout, s.allowed_hosts)

    def robots(self, url: str) -> Protego:
        """The site's robots.txt rules: from this process's memory for a minute, else from Redis (shared by all
        workers, `INGEST_ROBOTS_TTL`), else fetched. One thread of this process loads a site's rules at a time;
        the others that need them meanwhile wait for that answer, or its error, rather than each asking the site
        (one after the other, on a site that never answers)."""
        key = robots_url(url)
        if (rules := self._robots_in_memory(key)) is not None:
            return rules
        with self._robots_lock:
            loading = self._robots_loading.get(key)
            mine = loading is None
            if mine:
                loading = self._robots_loading[key] = _Loading()
        if not mine:
            return loading.result(self.settings.total_timeout + 5)
        try:
            s = self.settings
            loading.rules = load_robots(self.redis, self.http, s.key_prefix, url, self.limits(s.max_page_bytes),
                                        s.robots_ttl)
            with self._robots_lock:
                if len(self._robots) > ROBOTS_IN_MEMORY:
                    self._robots.clear()
                self._robots[key] = (time.monotonic() + ROBOTS_MEMORY_SECONDS, loading.rules)
            return loading.rules
        except BaseException as exc:
            loading.error = exc
            raise
        finally:
            with self._robots_lock:
                self._robots_loading.pop(key, None)
            loading.done.set()

    def prefetch_robots(self, url: str) -> None:
        """Start loading the site's robots.txt rules on a thread of their own unless this process has them, so the
        first articles of a feed poll find them ready instead of waiting one more round trip. A failure here is
        left for the articles' own attempt, which handles it."""
        key = robots_url(url)
        if self._robots_in_memory(key) is None and key not in self._robots_loading:
            threading.Thread(target=self._prefetch_robots, args=(url,), name="robots-prefetch", daemon=True).start()

    def _prefetch_robots(self, url: str) -> None:
        try:
            self.robots(url)
        except Exception as exc:  # noqa: BLE001 - see prefetch_robots
            log.debug("robots.txt prefetch failed: %s", exc, extra={"url": url})

    def _robots_in_memory(self, key: str) -> Protego | None:
        hit = self._robots.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def host_policy(self, host: str, crawl_delay: float | None = None) -> HostPolicy:
        found = self.sources.site_for(host.rsplit(":", 1)[0] if not host.endswith("]") else host)
        site = found[1] if found else None
        rate = (site.rate_limit if site and site.rate_limit else None) or self.settings.rate_limit
        cap = (site.max_concurrency if site and site.max_concurrency else None) or self.settings.host_concurrency
        return HostPolicy(interval=max(1.0 / rate, crawl_delay or 0.0), max_concurrency=cap)

    def origin(self, url: str, feed_url: str | None, section: str | None, feed_title: str | None,
               listed: tuple[str, ...]) -> Origin:
        """Where the article came from; `listed`: every feed that lists it (`worker.seen.listed_key`)."""
        found = self.sources.site_for(urlsplit(url).hostname or "")
        site = found[1] if found else None
        return Origin(
            feed_url=feed_url, section=section, feed_title=feed_title, also_listed_in=listed,
            site_name=site.name if site else None, timezone=site.timezone if site else "UTC",
            language=site.language if site else None,
        )

    def extract(self, body: bytes, content_type: str | None, url: str) -> Extracted:
        """Decode and extract a fetched page in an extraction process (inline when `extract_processes` is 0, and
        then without a deadline: a thread cannot be stopped). Past `extract_timeout` seconds of its own:
        `PermanentError("extract_timeout")`; a process that dies under it: `TemporaryError("extractor_crashed")`.
        worker.extract is imported here, not at the top, so the scheduler never loads trafilatura."""
        from worker.extract import extract_page

        found = self.sources.site_for(urlsplit(url).hostname or "")
        drop = found[1].drop if found else ()
        if self.settings.extract_processes == 0:
            return extract_page(body, content_type, url, drop)
        return self._extractors().run(extract_page, body, content_type, url, drop)

    def _extractors(self) -> ExtractorPool:
        with self._lock:
            if self._pool is None:
                from worker.extract import warm

                s = self.settings
                self._pool = ExtractorPool(s.extract_processes, s.extract_timeout, EXTRACTIONS_PER_PROCESS,
                                           initializer=warm, max_rss=s.extract_max_memory_mb * 2**20,
                                           preload=("tasks.extraction_preload",))
            return self._pool

    def warm_up(self) -> None:
        """Start the extraction processes now and load the extraction stack in each, so the first pages do not
        wait for their start-up."""
        if self.settings.extract_processes > 0:
            self._extractors().warm_up()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
