"""Flower as the user runs it: a real Flower process and a real `ingest worker` against the test Redis; one
article is ingested and Flower's HTTP API (basic auth) lists the worker, its queues and the finished task. With
`INGEST_TASK_EVENTS` on, task events flow from the start; by default Flower turns them on itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from demo.site import LocalSite
from tasks.app import ARTICLES_QUEUE, configure
from tasks.ingest import ingest_article
from tasks.stack import free_port

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()
AUTH = ("ops", "s3cret")
T = TypeVar("T")


def until(check: Callable[[], T | None], what: str, procs: list[subprocess.Popen[bytes]], timeout: float = 90) -> T:
    """Poll `check` until it returns something truthy; fail early when a process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"exited while waiting for {what}: {dead}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.mark.parametrize("task_events", [True, False], ids=["events-from-start", "events-from-flower"])
def test_flower_lists_the_worker_and_the_finished_article_task(
        settings: Settings, site: LocalSite, tmp_path: Path, task_events: bool) -> None:
    url = site.add("/news/a.html", PAGE)
    feed = site.url("/rss/thoi-su")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "FLOWER_")) and k != "REDIS_URL"}
    env.update({"REDIS_URL": settings.redis_url, "INGEST_ALLOW_PRIVATE_NETWORKS": "true",
                "INGEST_EXTRACT_PROCESSES": "0", "INGEST_RATE_LIMIT": "1000",
                "INGEST_FEEDS_FILE": str(settings.feeds_file), "INGEST_VAR_DIR": str(tmp_path / "var"),
                "FLOWER_BASIC_AUTH": ":".join(AUTH), "INGEST_TASK_EVENTS": str(task_events).lower()})
    flower_port, metrics_port = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "celery", "--app", "tasks.app:app", "flower",
                          f"--port={flower_port}", "--address=127.0.0.1", "--inspect_timeout=5000"],
                         env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "tasks.cli", "worker", "--name", "flowertest@%h",
                          "--metrics-port", str(metrics_port)], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    base = f"http://127.0.0.1:{flower_port}"
    try:
        with httpx.Client(base_url=base, auth=AUTH, trust_env=False, timeout=30) as flower:

            def api(path: str, **params: Any) -> Any:
                resp = flower.get(path, params=params)
                return resp.json() if resp.status_code == 200 else None

            # Alive from its heartbeats: events reach Flower, so nothing sent from here on is missed.
            alive = until(lambda: {n: up for n, up in (api("/api/workers", status="true") or {}).items()
                                   if n.startswith("flowertest@") and up}, "the worker's heartbeat", procs)
            [name] = alive
            assert httpx.get(f"{base}/api/workers", trust_env=False).status_code == 401  # basic auth is on

            configure(settings.model_copy(update={"task_events": task_events}))
            sent_at = 0.0

            def finished() -> dict[str, Any] | None:
                nonlocal sent_at
                tasks = api("/api/tasks", taskname="news.ingest_article") or {}
                done = next((t for t in tasks.values() if url in (t.get("args") or "")
                             and t.get("state") == "SUCCESS"), None)
                # Sent once with INGEST_TASK_EVENTS. Without it a task ends unseen until Flower has turned the
                # worker's events on (every 5 s): send the article again (it is published once) until one shows.
                if done is None and (not sent_at or not task_events and time.monotonic() - sent_at > 2):
                    ingest_article.delay(url, feed, "Thời sự", {"url": url, "title": "A"})
                    sent_at = time.monotonic()
                return done

            task = until(finished, "a finished news.ingest_article task in Flower", procs)
            assert task["name"] == "news.ingest_article" and task["worker"] == name
            assert feed in task["args"]  # arguments are shown, the feed's too
            # worker_send_task_events (from the start, or from Flower): received and started.
            assert task["received"] and task["started"] and task["succeeded"]
            # task_send_sent_event: the send is an event too; a client setting, which Flower cannot turn on.
            assert bool(task["sent"]) == task_events

            # A live inspect through the broker. Flower sends one inspect command per field and waits
            # --inspect_timeout for each one's replies, keeping only the fields answered in time, so a busy machine
            # can need another try.
            def inspected_worker() -> dict[str, Any] | None:
                info = (api("/api/workers", refresh="true") or {}).get(name)
                return info if info and info.get("registered") and info.get("active_queues") else None

            inspected = until(inspected_worker, "the worker's answer to a live inspect", procs)
            assert "news.ingest_article" in inspected["registered"]
            assert ARTICLES_QUEUE in {q["name"] for q in inspected["active_queues"]}

        with httpx.Client(trust_env=False) as http:
            text = http.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("ingest_articles_published_total", (("event", "article.created"),))] == 1
        fetches = samples[("ingest_fetch_seconds_count", ())]
        # A copy sent again while the first was still running may fetch too; one after it finds it published.
        assert fetches == 1 if task_events else fetches >= 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
