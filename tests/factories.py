"""Small builders of test records."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

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
