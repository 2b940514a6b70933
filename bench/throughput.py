"""Throughput of the whole pipeline against the machine's limit, measured side by side (issue 9).

Per latency (`--latency-ms 0,50,200`) a site on 127.0.0.1 serves S section feeds x A articles (real pages from
`../shared/data`, gunzipped into memory, each under its own URL; ETags). On those articles, one after the other:
- ceiling: `extract_article(decode_html(page), url)` from memory in a warm Pool of one process per core (no
  Redis, Celery or HTTP), CHUNK pages a task (one a task left the processes idle between pages: 1.2-1.5x slower
  on a busy machine), before and after the pipeline, averaged;
- naive: one process, per feed a plain GET + feedparser, per entry a plain GET + `trafilatura.extract`, for
  at most `--naive-seconds` (its pace is constant);
- hand-made: the program issue 9's targets were set from ("level with the hand-made split"), measured here beside
  the rest: in a process of its own, HANDMADE_THREADS threads GET the feeds (feedparser) and then every entry's
  page, each page handed to a Pool of one process per core running the ceiling's extraction; articles/s from its
  first feed request to its last page extracted. No Redis, Celery, politeness or deduplication;
- pipeline: the real stack (`tasks.stack.Stack`: beat, the threaded worker, its extraction processes) from a
  cold start on a fresh private redis-server until every article is on the stream; the one local host stands
  for the many sites of a real run, so its politeness limits are lifted in the feeds file.
Method. Pages our extractor rejects are left out. The site notes, per article, the arrival of the feed request
whose answer (200, not 304) first listed it: the poll that found it (answer time minus the latency the site
waits first). XADD time = stream entry id (ms since the epoch). Rate = N / (last XADD - first poll); "steady" =
80% of N between the 10th and 90th percentile XADD. Latency p50/p95 = XADD - poll, under load (the bulk) and
under light load (`--light` articles added after the bulk, LIGHT_GAP s apart). Feeds are polled every `--poll-seconds`
(5; in production every 60 s or more, adaptive): every second, the polls were as many Celery messages as the bulk's.
psutil samples the stack twice a second: peak RSS/PSS per process type, peak PSS of scheduler + worker +
extraction (Redis apart), CPU ms per article (first poll to last XADD) per type and for the rest of the machine
("others": it is shared, so read figures as ratios to the same run's ceiling); and Redis's command time per
article over the whole run (`INFO commandstats`; one thread serves every worker). Last line(s), medians over
`--repeat`: `throughput: pipeline=X/s ceiling=Y/s ratio=Z naive=W/s latency_ms=L handmade=H/s share=S` (L: light-load
p50; S: extraction's share of the machine's CPU during the run, which the machine's drift does not move; then the
peers' rates with `--peers`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import feedparser
import psutil
import redis
import trafilatura
import yaml

from config import load_settings
from demo.newssite import SHARED_DATA, NewsSite, read_pages
from tasks.stack import PrivateRedis, Stack, free_port, role_under_worker
from worker.charset import decode_html
from worker.errors import IngestError
from worker.extract import extract_article
from worker.failures import failures_key

PEERS = ("newspaper4k", "news-please")  # --peers, in the order they run
PROCS, LIGHT_GAP = os.cpu_count() or 1, 0.7  # ceiling processes; seconds between light-load articles
HANDMADE_THREADS = 32  # the hand-made program's fetch threads, as in the table
CHUNK = 8  # the ceiling's pages per task: the tail it leaves is at most 8 pages on one core, ~2% of 600
PRESETS = {"quick": dict(feeds=4, articles=25, latency_ms="50", light=5, naive_seconds=4.0, timeout=40.0),
           "full": dict(feeds=12, articles=50, latency_ms="0,50,200", light=12, naive_seconds=15.0, timeout=180.0)}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, linear between closest ranks (numpy's default); nan when there is no value."""
    if not values:
        return float("nan")
    ordered, pos = sorted(values), (len(values) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latencies_ms(found: dict[str, float], xadds: dict[str, int], urls: list[str]) -> list[float]:
    """XADD time (ms) minus the time of the poll that found each URL (s), in ms, for URLs that have both."""
    return [xadds[u] - found[u] * 1000 for u in urls if u in xadds and u in found]


def _extract(job: tuple[bytes, str]) -> bool:
    try:
        return bool(extract_article(decode_html(job[0]), job[1]))
    except IngestError:
        return False


def redis_time(commandstats: dict[str, dict[str, float]], n: int, top: int = 3) -> tuple[float, str]:
    """Redis's command time per article (us), and the `top` commands by time with their share of it, from
    `INFO commandstats` (Redis runs every worker's commands on one thread: this sets a cluster's limit)."""
    usec = {name.removeprefix("cmdstat_"): stats["usec"] for name, stats in commandstats.items()}
    total = sum(usec.values())
    lead = sorted(usec.items(), key=lambda kv: -kv[1])[:top]
    return total / max(n, 1), ", ".join(f"{name} {100 * t / total:.0f}%" for name, t in lead) if total else ""


def extraction_share(cpu_ms: dict[str, float]) -> float:
    """Extraction's share of all the CPU the machine used in the run (`cpu_ms`: per process type and `others`).
    Measured in the same seconds as the rest, it does not drift with the machine's speed as a ratio to a ceiling
    measured before and after does; a run reaches `share x busy` of the ceiling when extraction costs per page
    what it costs alone."""
    total = sum(cpu_ms.values())
    return cpu_ms.get("extraction", 0.0) / total if total > 0 else 0.0


def ceiling(pool: Any, jobs: list[tuple[bytes, str]]) -> tuple[float, float]:
    """Articles/s, and CPU ms per article of the pool's processes (this process's only children now)."""
    pool.map(_extract, jobs[: PROCS * 4], chunksize=1)  # warm up every process
    kids = psutil.Process().children()
    cpu0, t0 = sum(sum(k.cpu_times()[:2]) for k in kids), time.perf_counter()
    pool.map(_extract, jobs, chunksize=CHUNK)
    wall, cpu = time.perf_counter() - t0, sum(sum(k.cpu_times()[:2]) for k in kids) - cpu0
    return len(jobs) / wall, cpu * 1000 / len(jobs)


def _plain_get() -> Any:
    """urllib's `open` as a plain script would use it, except that the site is on the loopback: never a proxy."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def handmade(feed_urls: list[str], threads: int = HANDMADE_THREADS) -> tuple[float, int]:
    """The hand-made program (see the module's docstring) on the site's feeds, in a spawned process of its own (its
    threads would otherwise share a GIL with the site's): articles/s, and how many entries it extracted."""
    ctx = multiprocessing.get_context("spawn")
    answer, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_handmade, args=(feed_urls, threads, child), name="hand-made")
    proc.start()
    child.close()
    try:
        rate, done = answer.recv()
    finally:
        proc.join(30)
    return rate, done


def _handmade(feed_urls: list[str], threads: int, out: Any) -> None:
    get = _plain_get()
    with multiprocessing.get_context("spawn").Pool(PROCS) as pool, ThreadPoolExecutor(threads) as fetchers:
        pool.map(int, range(PROCS))  # the processes are up (and have imported this module) before the clock starts
        extracting = list[Any]()

        def fetch(link: str) -> None:
            extracting.append(pool.apply_async(_extract, ((get(link).read(), link),)))

        t0 = time.perf_counter()
        feeds = list(fetchers.map(lambda url: feedparser.parse(get(url).read()), feed_urls))
        for fetched in [fetchers.submit(fetch, e.link) for feed in feeds for e in feed.entries]:
            fetched.result()
        done = sum(bool(job.get()) for job in extracting)
        out.send((done / (time.perf_counter() - t0), done))


def naive(feed_urls: list[str], budget: float) -> float:
    get = _plain_get()
    done, t0 = 0, time.perf_counter()
    for link in (e.link for feed in feed_urls for e in feedparser.parse(get(feed).read()).entries):
        trafilatura.extract(get(link).read(), url=link, with_metadata=True)
        done += 1
        if time.perf_counter() - t0 > budget:
            break
    return done / (time.perf_counter() - t0)


class Sampler(threading.Thread):
    """Peak RSS/PSS (MB) per process type, peak PSS of the stack (Redis apart), CPU seconds. RSS and CPU are cheap
    to read and read twice a second; PSS (the kernel walks every page table) and the worker's descendants (a scan of
    /proc) cost milliseconds a process, on the cores the pipeline runs on, so they are read every PSS_EVERY
    samples: memory plateaus within a second of start-up, so the peaks stand."""

    PSS_EVERY = 4

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.procs = {role: psutil.Process(pid) for role, pid in pids.items()}
        self.rss, self.pss, self.stack_pss, self.done = dict[str, float](), dict[str, float](), 0.0, threading.Event()
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (type, CPU seconds when last seen)
        self.children: list[tuple[str, psutil.Process]] = []
        self.samples = 0
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def sample(self, full: bool = False) -> dict[str, float]:
        """Sample now (PSS too if `full` or its turn); CPU seconds so far per type (the dead at their last sample),
        and the machine's."""
        full, total = full or self.samples % self.PSS_EVERY == 0, 0.0
        self.samples += 1
        if full:  # the worker's descendants: the extraction processes, their fork server, a tiny resource tracker
            with contextlib.suppress(psutil.Error):
                worker = self.procs["worker"]
                self.children = [(process_role(c, worker.pid), c) for c in worker.children(recursive=True)]
        procs = [*self.procs.items(), *self.children]
        for role, proc in procs:
            try:
                cpu, rss = proc.cpu_times(), proc.memory_info().rss / 2**20
                pss = getattr(proc.memory_full_info(), "pss", rss * 2**20) / 2**20 if full else 0.0
            except psutil.Error:
                continue
            self.rss[role] = max(self.rss.get(role, 0.0), rss)
            self.pss[role] = max(self.pss.get(role, 0.0), pss)
            self.cpu[proc.pid] = (role, cpu.user + cpu.system)
            total += pss if role not in ("redis", "bench") else 0.0
        self.stack_pss, t = max(self.stack_pss, total), psutil.cpu_times()
        out = {"machine": sum(t) - t.idle - getattr(t, "iowait", 0.0)}
        for role, seconds in self.cpu.values():
            out[role] = out.get(role, 0.0) + seconds
        return out


def process_role(proc: psutil.Process, worker: int) -> str:
    try:
        return role_under_worker(" ".join(proc.cmdline()), proc.ppid() == worker)
    except psutil.Error:
        return "extraction"


def profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the worker's main process with py-spy until stopped: collapsed stacks of the thread holding the GIL
    (where its CPU goes), for flame graphs."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "-p", str(pid), "-r", "200", "-f", "raw", "--gil", "-o", str(out),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_pipeline(site: NewsSite, bulk: list[str], args: argparse.Namespace, spare: list[bytes]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        d, light = Path(tmp), list[str]()
        (d / "feeds.yaml").write_text(yaml.safe_dump({
            "feeds": [{"url": u, "interval": args.poll_seconds, "min_interval": args.poll_seconds,
                       "max_interval": args.poll_seconds} for u in site.feed_urls],
            "sites": {"127.0.0.1": {"name": "Bench", "rate_limit": 10_000, "max_concurrency": 1000}}}))
        server = PrivateRedis(d / "redis", free_port()).start()
        env = {**os.environ, "REDIS_URL": server.url, "INGEST_FEEDS_FILE": str(d / "feeds.yaml"),
               "INGEST_VAR_DIR": str(d), "INGEST_ALLOW_PRIVATE_NETWORKS": "true", "INGEST_TICK_SECONDS": "0.5",
               "INGEST_LOG_LEVEL": "WARNING", **dict(kv.split("=", 1) for kv in args.env)}
        settings, client = load_settings(env), redis.Redis.from_url(server.url, decode_responses=True)
        on_stream = lambda: client.xlen(settings.stream) + client.xlen(failures_key(settings.key_prefix))  # noqa: E731
        log, t_start = (d / "stack.log").open("wb"), time.time()
        stack = Stack(env, stdout=log.fileno()).start()

        def wait_for(done: Any, seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while not done() and time.monotonic() < deadline and not stack.any_exited():
                time.sleep(0.05)
            return bool(done())

        sampler = Sampler({"scheduler": stack.procs[0].pid, "worker": stack.procs[1].pid,
                           "redis": server.proc.pid if server.proc else 0, "bench": os.getpid()})
        try:
            ok = wait_for(lambda: bool(site.found), args.timeout)
            cpu0, t0 = sampler.sample(full=True), time.time()
            spy = profile(stack.procs[1].pid, args.profile) if args.profile else None
            ok = ok and wait_for(lambda: on_stream() >= len(bulk), args.timeout)
            cpu1, wall = sampler.sample(full=True), time.time() - t0
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                spy.wait(30)
            for k in range(args.light if ok else 0):
                light.append(site.add_article(k % len(site.feed_urls), f"/light/{k:03d}.html", spare[k % len(spare)]))
                time.sleep(LIGHT_GAP)
            ok = ok and wait_for(lambda: on_stream() >= len(bulk) + len(light), 30)
        finally:
            stack.stop()
            sampler.done.set()
            log.close()
        commandstats: Any = client.info("commandstats")  # the whole run: cold start and light load too
        entries: list[Any] = client.xrange(settings.stream)  # type: ignore[assignment]
        fails: list[Any] = client.xrange(failures_key(settings.key_prefix))  # type: ignore[assignment]
        failures = Counter(f"{f['stage']}/{f['reason']}" for _, f in fails)
        server.stop()
        if not ok:
            print((d / "stack.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    xadds = {fields["url"]: int(eid.split("-")[0]) for eid, fields in entries}  # entry id: <ms since epoch>-<seq>
    times = sorted(xadds[u] / 1000 for u in bulk if u in xadds)
    first_poll, n = min((site.found[u] for u in bulk if u in site.found), default=t_start), len(times)
    cpu = {role: (cpu1[role] - cpu0.get(role, 0.0)) * 1000 / max(n, 1) for role in cpu1}  # ms per article
    cpu["others"] = cpu.pop("machine") - sum(cpu.values())
    load, quiet = latencies_ms(site.found, xadds, bulk), latencies_ms(site.found, xadds, light)
    return {
        "published": n, "failures": failures, "complete": ok, "cold_start_s": first_poll - t_start,
        "pipeline": n / (times[-1] - first_poll) if n else 0.0,
        "steady": 0.8 * n / (percentile(times, 90) - percentile(times, 10)) if n > 10 else 0.0,
        **{f"{k}_p{q}": percentile(v, q) for k, v in (("load", load), ("light", quiet)) for q in (50, 95)},
        "rss": sampler.rss, "pss": sampler.pss, "stack_pss": sampler.stack_pss, "cpu_ms": cpu,
        "busy": (cpu1["machine"] - cpu0["machine"]) / (wall * PROCS), "share": extraction_share(cpu),
        "redis_us": redis_time(commandstats, n + len(light)),
    }


def run_once(latency_ms: int, pages: list[bytes], pool: Any, args: argparse.Namespace) -> dict[str, Any]:
    site = NewsSite(latency_ms / 1000, args.feeds)
    bulk = [site.add_article(i // args.articles, f"/s{i // args.articles:02d}/a{i:04d}.html", pages[i % len(pages)])
            for i in range(args.feeds * args.articles)]  # pages are reused, each time under a new URL
    jobs = [(pages[i % len(pages)], url) for i, url in enumerate(bulk)]
    try:
        before = ceiling(pool, jobs)
        result = {"latency_ms": latency_ms, "naive": naive(site.feed_urls, args.naive_seconds),
                  "handmade": handmade(site.feed_urls)[0]}
        for name, peer in args.peer_runs.items():  # before our stack starts, like the naive loop: the machine to itself
            result[name] = peer(site.feed_urls)
        site.found.clear()  # the naive loop and the hand-made program read the feeds too
        result |= run_pipeline(site, bulk, args, pages)
        after = ceiling(pool, jobs)  # the machine is shared: its pace drifts during a run
    finally:
        site.stop()
    c = (before[0] + after[0]) / 2
    return result | {"ceiling": c, "ceilings": (before[0], after[0]), "ratio": result["pipeline"] / c,
                     "ceiling_cpu_ms": (before[1] + after[1]) / 2}


def report(r: dict[str, Any], n: int) -> None:
    c, cpu_ms = r["ceiling"], r["cpu_ms"]
    mem = ", ".join(f"{k} {r['rss'][k]:.0f}/{r['pss'][k]:.0f}" for k in sorted(r["rss"]) if k != "bench")
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu_ms.items(), key=lambda kv: -kv[1]))
    print(f"latency {r['latency_ms']} ms, {n} articles, {PROCS} cores\n"
          f"  ceiling  {c:6.1f}/s  1.00  (before {r['ceilings'][0]:.1f}, after {r['ceilings'][1]:.1f}); "
          f"naive {r['naive']:.1f}/s = {r['naive'] / c:.2f}\n"
          f"  hand-made {r['handmade']:5.1f}/s  {r['handmade'] / c:.2f}  ({HANDMADE_THREADS} fetch threads, {PROCS} "
          f"extraction processes; the pipeline is {r['pipeline'] / r['handmade']:.2f} of it)\n"
          f"  pipeline {r['pipeline']:6.1f}/s  {r['ratio']:.2f}  (steady {r['steady']:.1f}/s = {r['steady'] / c:.2f}; "
          f"first feed poll {r['cold_start_s']:.1f} s after start; {r['published']}/{n} published; "
          f"failures {dict(r['failures']) or 0}{'' if r['complete'] else '; INCOMPLETE'})\n"
          f"  poll->XADD ms: light load p50 {r['light_p50']:.0f} p95 {r['light_p95']:.0f}; "
          f"under load p50 {r['load_p50']:.0f} p95 {r['load_p95']:.0f}\n"
          f"  peak MB RSS/PSS: {mem}; stack PSS (Redis apart) {r['stack_pss']:.0f}\n"
          f"  CPU ms/article: {cpu}; ours {sum(cpu_ms.values()) - cpu_ms['others']:.1f}, "
          f"ceiling {r['ceiling_cpu_ms']:.1f}; machine busy {100 * r['busy']:.0f}%; extraction's share of the CPU "
          f"{r['share']:.3f}\n"
          f"  Redis command time: {r['redis_us'][0]:.0f} us/article ({r['redis_us'][1]})", flush=True)
    for name in PEERS:
        if (p := r.get(name)) is not None:
            print(f"  {name:11s} {p['rate']:6.1f}/s  {p['rate'] / c:.2f}  ({p['threads']} threads; {p['articles']}/{n} with "
                  f"text, {p['empty']} empty, {p['failed']} failed in {p['seconds']:.1f} s; peak RSS "
                  f"{p['peak_rss_mb']:.0f} MB, process tree {p['tree_peak_rss_mb']:.0f} MB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 feeds x 25 articles at 50 ms: under a minute")
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    for key, full in PRESETS["full"].items():  # --feeds, --articles, --latency-ms, --light, --naive-seconds, ...
        quick = PRESETS["quick"][key]
        ap.add_argument("--" + key.replace("_", "-"), type=type(full), help=f"default {full}, {quick} with --quick")
    ap.add_argument("--repeat", type=int, default=1, help="runs per latency; the last lines give medians")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="py-spy profile of the worker's main process during the bulk (needs py-spy)")
    ap.add_argument("--peers", action="store_true",
                    help="also run newspaper4k (fetch_news, 10 threads) and news-please (from_urls) on each site, each "
                         "from its own venv (.venv-peers, .venv-peer-newsplease; made from PyPI on first use)")
    ap.add_argument("--poll-seconds", type=int, default=5, help="each feed's poll interval (default 5)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the stack")
    args = ap.parse_args(argv)
    for key, value in PRESETS["quick" if args.quick else "full"].items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    args.peer_runs = {}  # name -> run on a site's feed URLs (bench/peers)
    if args.peers:
        # bench/, this script's folder, is first on sys.path; not imported above, so tests can load this module
        from peers import news_please, newspaper4k

        args.peer_runs = {"newspaper4k": functools.partial(newspaper4k.run_newspaper4k, newspaper4k.ensure_venv(),
                                                           threads=10),
                          "news-please": functools.partial(news_please.run_newsplease, news_please.ensure_venv())}
    if not (pages := read_pages(args.data)):
        sys.exit(f"no pages under {args.data}: see --data")
    runs: dict[int, list[dict[str, Any]]] = {}
    with multiprocessing.get_context("spawn").Pool(PROCS) as pool:
        ok = pool.map(_extract, [(page, f"http://127.0.0.1/p{i}.html") for i, page in enumerate(pages)])
        usable = [page for page, good in zip(pages, ok, strict=True) if good]
        print(f"{len(usable)} of {len(pages)} pages are articles; {args.feeds} feeds x {args.articles}", flush=True)
        for latency in (int(x) for x in args.latency_ms.split(",")):
            for _ in range(args.repeat):
                runs.setdefault(latency, []).append(run_once(latency, usable, pool, args))
                report(runs[latency][-1], args.feeds * args.articles)
    for rs in runs.values():
        med = {k: percentile([r[k] for r in rs], 50)
               for k in ("pipeline", "ceiling", "ratio", "naive", "light_p50", "handmade", "share")}
        peer = "".join(f" {name}={percentile([r[name]['rate'] for r in rs], 50):.1f}/s" for name in PEERS if name in rs[0])
        print(f"throughput: pipeline={med['pipeline']:.1f}/s ceiling={med['ceiling']:.1f}/s ratio={med['ratio']:.2f} "
              f"naive={med['naive']:.1f}/s latency_ms={med['light_p50']:.0f} handmade={med['handmade']:.1f}/s "
              f"share={med['share']:.3f}{peer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
