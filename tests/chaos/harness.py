"""The chaos suite's harness: a local news site of N articles over F section feeds, a private append-only
redis-server that can be killed and restarted, and the real `ingest` processes (run, scheduler, worker),
each in its own process group with its own log file, so a test can SIGKILL exactly what it means to.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis as redis_lib
import yaml
from kombu.transport.redis import Channel

from demo.site import LocalSite, rss
from tasks.stack import free_port
from tests.factories import article_urls, task_of
from worker.urls import article_id, canonical_url

# kombu's Redis transport keeps delivered, unacked tasks in UNACKED (and by delivery time in UNACKED_INDEX); a
# worker's periodic sweep re-queues those older than the visibility timeout, under the lock UNACKED_MUTEX.
UNACKED, UNACKED_INDEX, UNACKED_MUTEX = Channel.unacked_key, Channel.unacked_index_key, Channel.unacked_mutex_key
PAGES = sorted((Path(__file__).parents[1] / "data" / "site" / "pages").glob("*.html"))
STREAM = "articles"
PREFIX = "ingest:"

# Short timeouts so faults resolve within a test: tasks come back 10 s after their worker died (the floor of
# INGEST_REDELIVERY_TIMEOUT), so retries and deferrals must stay below 5 s.
CHAOS_ENV = {
    "INGEST_ALLOW_PRIVATE_NETWORKS": "true",
    "INGEST_REDELIVERY_TIMEOUT": "10",
    "INGEST_RETRY_BASE_DELAY": "0.5",
    "INGEST_RETRY_MAX_DELAY": "4",
    "INGEST_MAX_DEFER": "4",
    "INGEST_TICK_SECONDS": "1",
    "INGEST_RATE_LIMIT": "1000",
    "INGEST_HOST_CONCURRENCY": "64",
    "INGEST_EXTRACT_PROCESSES": "1",
    "INGEST_FETCH_CONCURRENCY": "4",
    # Batches scaled down with the 10 s timeout, as 10 entries are to the default 300 s: a batch of slow pages
    # (0.5 s each here) stays well inside half the timeout, past which it hands its rest to the queue's back.
    "INGEST_BATCH_SIZE": "4",
    "INGEST_METRICS_PORT": "0",
    "INGEST_LOG_FORMAT": "json",
}
REDELIVERY = int(CHAOS_ENV["INGEST_REDELIVERY_TIMEOUT"])
CONCURRENCY = int(CHAOS_ENV["INGEST_FETCH_CONCURRENCY"])
TICK = float(CHAOS_ENV["INGEST_TICK_SECONDS"])


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1,
               explain: Callable[[], str] | None = None) -> float:
    """Poll `check` until true; the seconds it took. Fails the test with `what` after `timeout`, and with what
    `explain` says about the state then (e.g. `broker_state`), so a timeout names its cause."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" ({explain()})" if explain else ""))
        time.sleep(step)
    return time.monotonic() - started


@dataclass
class NewsSite:
    """`n` article pages (real pages, cycled) listed by `feeds` RSS feeds, on one LocalSite."""

    site: LocalSite
    n: int
    feeds: int
    links: list[str] = field(default_factory=list)
    feed_urls: list[str] = field(default_factory=list)

    def build(self, prefix: str = "") -> NewsSite:
        bodies = [p.read_bytes() for p in PAGES]
        per_feed: list[list[dict[str, str]]] = [[] for _ in range(self.feeds)]
        for i in range(self.n):
            link = self.site.add(f"/{prefix}s{i % self.feeds}/a{i}.html", bodies[i % len(bodies)])
            self.links.append(link)
            per_feed[i % self.feeds].append({"title": f"Bài {i}", "link": link, "guid": link})
        for f, items in enumerate(per_feed):
            self.feed_urls.append(self.site.add(f"/{prefix}rss/s{f}.rss", rss(f"Mục {f}", self.site.base, items),
                                                "application/rss+xml; charset=utf-8"))
        return self

    def feed_requests(self) -> dict[str, list[float]]:
        """Arrival times of the requests for each feed."""
        paths = {u.removeprefix(self.site.base): u for u in self.feed_urls}
        out: dict[str, list[float]] = {u: [] for u in self.feed_urls}
        for when, path in list(self.site.log):
            if path in paths:
                out[paths[path]].append(when)
        return out


def write_feeds_file(path: Path, feed_urls: list[str], interval: int = 3600, min_interval: int | None = None) -> Path:
    feeds = []
    for i, url in enumerate(feed_urls):
        feed: dict[str, object] = {"url": url, "section": f"Mục {i}", "interval": interval}
        if min_interval is not None:
            feed["min_interval"] = min_interval
        feeds.append(feed)
    path.write_text(yaml.safe_dump({"feeds": feeds}, allow_unicode=True))
    return path


class Processes:
    """The `ingest` processes of one test, each in its own session (process group), logging to a file."""

    def __init__(self, tmp: Path, redis_url: str, feeds_file: Path, **env: str) -> None:
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
        self.env.update(CHAOS_ENV)
        self.env.update({"REDIS_URL": redis_url, "INGEST_FEEDS_FILE": str(feeds_file),
                         "INGEST_VAR_DIR": str(tmp / "var")})
        self.env.update(env)
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.counter: Counter[str] = Counter()

    def start(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """`role` is the `ingest` sub-command (run, scheduler, worker); its log is <tmp>/<role>-<n>.log."""
        self.counter[role] += 1
        log = self.tmp / f"{role}-{self.counter[role]}.log"
        argv = [sys.executable, "-m", "tasks.cli", role, *args]
        if role == "worker" and "--name" not in args:
            argv += ["--name", f"w{self.counter[role]}@%h"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append((str(log), proc))
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> Path:
        return Path(next(log for log, p in self.procs if p is proc))

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGKILL a process with its whole tree: its own group, and the groups its children started.
        Returns how many processes died."""
        victims = tree(proc.pid)
        groups = set()
        for p in victims:
            try:
                groups.add(os.getpgid(p.pid))
            except ProcessLookupError:
                pass
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in victims:  # a child that left its group (none do today) dies too
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(10)
        _gone, alive = psutil.wait_procs(victims, timeout=10)
        assert not alive, f"survived SIGKILL: {alive}"
        return len(victims)

    def stop_all(self) -> None:
        """Warm shutdown of what is still running, then SIGKILL of every process group it left."""
        alive = [p for _log, p in self.procs if p.poll() is None]
        victims = [q for p in alive for q in tree(p.pid)]
        for p in alive:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for p in alive:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for q in victims:
            try:
                os.killpg(q.pid, signal.SIGKILL) if os.getpgid(q.pid) == q.pid else q.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        for _log, p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        psutil.wait_procs(victims, timeout=10)

    def log_records(self, proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
        """The JSON log records (INGEST_LOG_FORMAT=json) a process wrote; other output is skipped."""
        records = []
        for line in self.log_of(proc).read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def peak_rss(pids: list[int]) -> int:
    total = 0
    for p in pids:
        for q in tree(p):
            try:
                total += q.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total


def stream_ids(r: redis_lib.Redis) -> list[str]:
    return [f["id"] for _id, f in r.xrange(STREAM)]


@dataclass
class Tally:
    """Articles in / out / duplicates / lost, for the assertions and for docs/reliability.md."""

    expected: set[str]
    published: list[str]

    @property
    def duplicates(self) -> int:
        return len(self.published) - len(set(self.published))

    @property
    def lost(self) -> int:
        return len(self.expected - set(self.published))

    @property
    def unexpected(self) -> int:
        return len(set(self.published) - self.expected)

    def line(self) -> str:
        return (f"in={len(self.expected)} out={len(self.published)} unique={len(set(self.published))} "
                f"duplicates={self.duplicates} lost={self.lost}")


def tally(r: redis_lib.Redis, links: list[str]) -> Tally:
    return Tally({article_id(canonical_url(u)) for u in links}, stream_ids(r))


def report(name: str, **figures: object) -> None:
    """Print a scenario's figures (`pytest -s` shows them; docs/reliability.md records them)."""
    print(f"\n[chaos] {name}: " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def task_events(records: list[dict[str, object]]) -> dict[str, list[str]]:
    """Task id -> what the worker logged about it, in order: received, succeeded, retry, raised, ..."""
    events: dict[str, list[str]] = {}
    pattern = re.compile(r"Task news\.ingest_(?:article|batch)\[([0-9a-f-]+)\] (\w+)")
    for rec in records:
        m = pattern.search(str(rec.get("message", "")))
        if m:
            events.setdefault(m.group(1), []).append(m.group(2))
    return events


def in_flight(records: list[dict[str, object]]) -> int:
    """Article tasks (one article, or a batch of a feed's new entries) a worker received and has not finished
    (by its own log)."""
    return sum(1 for ev in task_events(records).values() if ev[-1] == "received")


def message_articles(message: dict[str, Any]) -> list[str]:
    """Article ids a task message carries: news.ingest_article's URL, news.ingest_batch's entries; else none."""
    return [article_id(url) for url in article_urls(*task_of(message))]


def unacked_articles(r: redis_lib.Redis) -> set[str]:
    """Article ids of the article tasks the broker holds as delivered and not yet acknowledged."""
    return {aid for raw in r.hvals(UNACKED) for aid in message_articles(json.loads(raw)[0])}


def broker_state(r: redis_lib.Redis) -> str:
    """What the broker holds: queued and unacked tasks (and the oldest one's age), and the lock of kombu's sweep
    that re-queues expired unacked tasks (held by a worker that died mid-sweep, it stops every sweep)."""
    oldest = r.zrange(UNACKED_INDEX, 0, 0, withscores=True)
    ttl = r.pttl(UNACKED_MUTEX)
    return (f"queued: {r.llen('news.articles')} article, {r.llen('news.feeds')} feed tasks; unacked: "
            f"{r.hlen(UNACKED)}, oldest {f'{time.time() - oldest[0][1]:.1f} s' if oldest else '-'}; "
            f"{UNACKED_MUTEX}: {f'held, expires in {ttl / 1000:.1f} s' if ttl > 0 else 'free'}")


def queued_articles(r: redis_lib.Redis, queue: str = "news.articles") -> set[str]:
    return {aid for raw in r.lrange(queue, 0, -1) for aid in message_articles(json.loads(raw))}


class Partition:
    """A TCP proxy on 127.0.0.1 in front of Redis: the processes connect through it, the test talks to Redis
    directly. `cut()` drops every connection and refuses new ones (a network partition: Redis itself keeps
    running and keeps its state); `heal()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def heal(self) -> Partition:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._stop.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass
