"""Lifecycle of `ingest run`: health, and a SIGTERM in the middle of ingestion loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis as redis_lib
import yaml

from demo.site import LocalSite, rss

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()


def ingest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def base_env(redis_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    env.update({"REDIS_URL": redis_url, "INGEST_ALLOW_PRIVATE_NETWORKS": "true", "INGEST_TICK_SECONDS": "1",
                "INGEST_VAR_DIR": str(tmp / "var"), "INGEST_EXTRACT_PROCESSES": "1", "INGEST_RATE_LIMIT": "1000",
                "INGEST_HOST_CONCURRENCY": "64", "INGEST_FETCH_CONCURRENCY": "4"})
    return env


def test_health(redis_url: str, tmp_path: Path) -> None:
    env = base_env(redis_url, tmp_path)
    dead = ingest("health", env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert dead.returncode == 1 and "redis unreachable" in dead.stderr
    nothing = ingest("health", "--timeout", "1", env=env)
    assert nothing.returncode == 1
    assert "scheduler has not ticked" in nothing.stderr and "no worker answered" in nothing.stderr
    assert ingest("health", "--component", "redis", env=env).returncode == 0


def test_sigterm_mid_ingest_then_restart_publishes_everything_once(redis_url: str, tmp_path: Path) -> None:
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    n = 24
    with LocalSite(latency=0.3) as site:
        links = [site.add(f"/a{i}.html", PAGE) for i in range(n)]
        feed = site.add("/rss", rss("S", site.base, [{"title": f"A{i}", "link": u} for i, u in enumerate(links)]),
                        "application/rss+xml")
        config = tmp_path / "feeds.yaml"
        config.write_text(yaml.safe_dump({"feeds": [{"url": feed, "section": "S", "interval": 3600}]}))
        env = base_env(redis_url, tmp_path)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "tasks.cli", "run", "--config", str(config)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        run = start()
        deadline = time.monotonic() + 60
        while r.xlen("articles") < 3:
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)  # mid-ingest: tasks are in flight and queued
        assert run.wait(60) == 0
        stopped_at = r.xlen("articles")
        assert stopped_at < n, "everything finished before the signal: the test proves nothing"
        run = start()
        try:
            deadline = time.monotonic() + 120
            while r.xlen("articles") < n and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # a duplicate, if any, would land now
            assert ingest("health", env=env).returncode == 0
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(60)
    ids = [f["id"] for _id, f in r.xrange("articles")]
    assert len(ids) == n and len(set(ids)) == n
    assert r.xlen("ingest:failures") == 0
