"""What other work on the same cores costs extraction (issue 9): CPU per page of the extraction processes alone,
and beside a synthetic load that behaves like the worker's main process (many threads, each waking often for a
short piece of work).

In the throughput benchmark the extraction processes spend more CPU per page than the same pages take in the
ceiling, with the rest of the stack (worker threads, Redis, the site) waking beside them. This measures that
effect without the stack: the same pages through `tasks.extractors.ExtractorPool` (one process per core), in
rounds alternating `alone` and `beside load`, where the load is one process of `--threads` threads, each
sleeping `--sleep-ms` then computing `--work-ms` (defaults: about 1,000 wake-ups a second and 0.4 of a core, like
the worker at 50 articles/s). Prints per round: pages/s, extraction CPU ms per page, the load's CPU; last line:
`interference: alone_ms=A beside_ms=B ratio=B/A load_cores=L` (medians over rounds).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from demo.newssite import SHARED_DATA, read_pages
from tasks.extractors import ExtractorPool
from worker.extract import extract_page, warm


def load(stop: threading.Event, threads: int, sleep: float, work: float) -> None:
    """Runs in its own process until `stop`: `threads` threads, each sleeping then burning `work` s of CPU."""

    def loop() -> None:
        while not stop.is_set():
            time.sleep(sleep)
            t = time.thread_time()
            while time.thread_time() - t < work:
                pass

    for _ in range(threads):
        threading.Thread(target=loop, daemon=True).start()
    stop.wait()


def extract_all(pool: ExtractorPool, jobs: list[tuple[bytes, str]]) -> tuple[float, float]:
    """Pages/s and CPU ms per page of the pool's processes."""

    def one(job: tuple[bytes, str]) -> None:
        try:
            pool.run(extract_page, job[0], "text/html", job[1], ())
        except Exception:  # noqa: BLE001 - a page refused as no article costs its CPU all the same
            pass

    kids = [psutil.Process(pid) for pid in pool.pids()]
    cpu0, t0 = sum(sum(k.cpu_times()[:2]) for k in kids), time.perf_counter()
    with ThreadPoolExecutor(4 * pool.processes) as threads:
        list(threads.map(one, jobs))
    wall, cpu = time.perf_counter() - t0, sum(sum(k.cpu_times()[:2]) for k in kids) - cpu0
    return len(jobs) / wall, cpu * 1000 / len(jobs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--sleep-ms", type=float, default=16.0)
    ap.add_argument("--work-ms", type=float, default=0.4)
    args = ap.parse_args(argv)
    if not (pages := read_pages(args.data)):
        sys.exit(f"no pages under {args.data}: see --data")
    jobs = [(pages[i % len(pages)], f"http://127.0.0.1/p{i}.html") for i in range(args.pages)]
    ctx, procs = multiprocessing.get_context("spawn"), psutil.cpu_count() or 1
    pool = ExtractorPool(procs, 60.0, 10**6, initializer=warm)
    figures: dict[str, list[float]] = {"alone": [], "beside": [], "load": []}
    try:
        pool.warm_up()
        extract_all(pool, jobs[: 4 * procs])
        for k in range(args.rounds):
            rate, ms = extract_all(pool, jobs)
            figures["alone"].append(ms)
            print(f"round {k + 1} alone:       {rate:5.1f} pages/s, extraction {ms:5.1f} ms CPU a page", flush=True)
            stop = ctx.Event()
            loader = ctx.Process(target=load, args=(stop, args.threads, args.sleep_ms / 1000, args.work_ms / 1000))
            loader.start()
            time.sleep(0.5)
            before, t0 = psutil.Process(loader.pid).cpu_times(), time.perf_counter()
            rate, ms = extract_all(pool, jobs)
            after, wall = psutil.Process(loader.pid).cpu_times(), time.perf_counter() - t0
            stop.set()
            loader.join()
            cores = (after.user + after.system - before.user - before.system) / wall
            figures["beside"].append(ms)
            figures["load"].append(cores)
            print(f"round {k + 1} beside load: {rate:5.1f} pages/s, extraction {ms:5.1f} ms CPU a page; "
                  f"the load used {cores:.2f} of a core", flush=True)
    finally:
        pool.close()
    alone, beside, cores = (statistics.median(figures[k]) for k in ("alone", "beside", "load"))
    print(f"interference: alone_ms={alone:.1f} beside_ms={beside:.1f} ratio={beside / alone:.2f} "
          f"load_cores={cores:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
