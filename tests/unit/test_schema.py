"""The stream contract: the JSON Schema file, the model, and the exact field set, pinned."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from worker.models import Article, ExtractorV1, ImageV1, SiteV1
from worker.stream import stream_fields

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "article.schema.json"
V1_FIELDS = ["schema", "id", "url", "feed_url", "feed_urls", "site", "section", "title", "authors", "published_at", "language",
             "lead", "text", "images", "tags", "fetched_at", "extractor", "duplicate_of", "flags", "revision"]


def sample() -> Article:
    return Article(
        schema="article/v1", id="0" * 32, url="https://x.vn/a.html", feed_url="https://x.vn/rss",
        feed_urls=["https://x.vn/rss"],
        site=SiteV1(domain="x.vn", name="Báo X"), section="Thời sự", title="Tiêu đề", authors=["A"],
        published_at=datetime(2025, 10, 22, 12, 25, tzinfo=UTC), language="vi", lead="Sapo", text="Đoạn 1\n\nĐoạn 2",
        images=[ImageV1(url="https://x.vn/i.jpg", caption="Chú thích")], tags=["t"],
        fetched_at=datetime(2025, 10, 22, 13, 0, tzinfo=UTC), extractor=ExtractorV1(name="trafilatura", version="2.3.1"),
    )


def test_schema_file_matches_the_model() -> None:
    generated = Article.model_json_schema(by_alias=True)
    if os.environ.get("UPDATE_GOLDEN"):
        SCHEMA_FILE.write_text(json.dumps(generated, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == generated


def test_field_set_is_pinned() -> None:
    payload = json.loads(sample().to_json())
    assert list(payload) == V1_FIELDS
    assert payload["schema"] == "article/v1"
    jsonschema.validate(payload, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def test_round_trip_and_flat_stream_fields() -> None:
    a = sample()
    assert Article.from_json(a.to_json()) == a
    fields = stream_fields(a)
    assert list(fields) == ["event", "id", "url", "site", "section", "published_at", "revision", "article"]
    assert (fields["site"], fields["published_at"]) == ("x.vn", "2025-10-22T12:25:00+00:00")


def test_naive_dates_are_refused() -> None:
    bad = json.loads(sample().to_json())
    bad["published_at"] = "2025-10-22T12:25:00"
    try:
        Article.model_validate(bad)
    except ValueError:
        return
    raise AssertionError("a date without offset was accepted")
