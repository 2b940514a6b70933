"""Small builders of test records, and readers of the article queue."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import redis as redis_lib

from tasks.app import ARTICLES_QUEUE
from worker.models import Article, ExtractorV1, SiteV1


def article(n: int, text: str = "Nội dung") -> Article:
    return Article(
        schema="article/v1", id=f"{n:032x}", url=f"https://x.vn/{n}.html", feed_url="https://x.vn/rss",
        feed_urls=["https://x.vn/rss"], site=SiteV1(domain="x.vn", name="X"), section="S", title=f"Bài {n}",
        authors=[], published_at=None, language="vi", lead=None, text=text, images=[], tags=[],
        fetched_at=datetime.now(UTC), extractor=ExtractorV1(name="trafilatura", version="2"),
    )


def load_bench(name: str) -> ModuleType:
    """A module of bench/ (not a package), imported by path so its pure helpers can be tested."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def task_of(message: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
    """(task name, args, kwargs) of a Celery message as kombu's Redis transport stores it."""
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message.get("headers", {}).get("task", ""), args, kwargs


def article_urls(name: str, args: list[Any], kwargs: dict[str, Any]) -> list[str]:
    """The article URLs a task carries: news.ingest_article's one, news.ingest_batch's entries; else none."""
    if name == "news.ingest_article":
        return [args[0] if args else kwargs["url"]]
    if name == "news.ingest_batch":
        return [entry["url"] for entry in (args[3] if len(args) > 3 else kwargs["entries"])]
    return []


def queued_tasks(r: redis_lib.Redis, queue: str = ARTICLES_QUEUE) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(task name, args, kwargs) of each message waiting in a queue, oldest first."""
    return [task_of(json.loads(raw)) for raw in reversed(r.lrange(queue, 0, -1))]  # LPUSHed: the oldest is last


def queued_urls(r: redis_lib.Redis, queue: str = ARTICLES_QUEUE) -> list[str]:
    """The article URLs waiting in a queue, oldest first, whether one to a message or in batches."""
    return [url for task in queued_tasks(r, queue) for url in article_urls(*task)]
