"""Records passed between stages, defined once: feed entries, fetched pages, and the published Article (v1).

`Article` is the stream's contract; `docs/article.schema.json` is generated from it and pinned by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_V1 = "article/v1"


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed, its link resolved and canonicalised."""

    url: str
    title: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    author: str | None = None
    summary: str | None = None
    guid: str | None = None
    tags: tuple[str, ...] = ()


    def to_json(self) -> dict[str, object]:
        """JSON primitives, for task arguments."""
        return {
            "url": self.url, "title": self.title, "author": self.author, "summary": self.summary,
            "guid": self.guid, "tags": list(self.tags),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FeedEntry:
        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) and value else None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        tags = data.get("tags")
        return cls(
            url=str(data["url"]), title=text("title"), author=text("author"), summary=text("summary"),
            guid=text("guid"), tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
            published_at=when("published_at"), updated_at=when("updated_at"),
        )


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    entries: tuple[FeedEntry, ...]
    ttl_minutes: int | None = None
    problem: str | None = None  # set when the XML was malformed but entries could still be read
    skipped: int = 0  # entries without a usable http(s) link
    beyond_cap: int = 0  # entries not read because the feed listed more than `max_entries`


@dataclass(frozen=True)
class Response:
    """An HTTP response whose body was read within our caps."""

    url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes = b""
    redirected_permanently: bool = False


@dataclass(frozen=True)
class Image:
    url: str
    caption: str | None = None


@dataclass(frozen=True)
class Extracted:
    """What the page itself says, before the feed's hints are merged in."""

    title: str | None
    text: str
    authors: tuple[str, ...] = ()
    published_at: datetime | None = None
    site_name: str | None = None
    section: str | None = None
    language: str | None = None
    lead: str | None = None
    images: tuple[Image, ...] = ()
    tags: tuple[str, ...] = ()
    canonical_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    simhash: int | None = None  # of the text (worker.neardup), set by `extract_page`; None: too short to judge
    content_hash: str | None = None  # of the title and text (worker.stream.text_hash), set by `extract_page`


class SiteV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    domain: str = Field(description="Registered host of the article, without 'www.'")
    name: str | None = Field(None, description="Human name of the publication, e.g. 'Tuổi trẻ Thủ đô'")


class ImageV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    url: str = Field(description="Absolute image URL")
    caption: str | None = Field(None, description="Caption as printed under the image, if any")


class ExtractorV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(description="Extraction library, e.g. 'trafilatura'")
    version: str = Field(description="Its version")


class Article(BaseModel):
    """One clean article: the payload of every entry on the stream (schema `article/v1`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="article/v1")

    schema_: str = Field(SCHEMA_V1, alias="schema", description="Contract name and version: 'article/v1'")
    id: str = Field(description="Stable id: first 32 hex digits of SHA-256 of the canonical URL")
    url: str = Field(description="Canonical article URL (tracking parameters and fragment removed)")
    feed_url: str | None = Field(description="Section feed that listed the article first (null for one-off extraction)")
    feed_urls: list[str] = Field(description="Every section feed that listed the article before it was published")
    site: SiteV1
    section: str | None = Field(description="Section name: feed config, else page metadata, else the feed's title")
    title: str = Field(description="Headline")
    authors: list[str] = Field(description="Author names; empty if unknown")
    published_at: AwareDatetime | None = Field(description="Publication time, ISO 8601 with UTC offset")
    language: str | None = Field(description="ISO 639-1 code of the text, e.g. 'vi'")
    lead: str | None = Field(description="Standfirst / sapo / summary paragraph")
    text: str = Field(description="Plain text body, paragraphs separated by a blank line")
    images: list[ImageV1] = Field(description="Images of the article body, in order, with captions")
    tags: list[str] = Field(description="Keywords / topics")
    fetched_at: AwareDatetime = Field(description="When the page was fetched (UTC)")
    extractor: ExtractorV1
    duplicate_of: str | None = Field(
        None, description="Id of an earlier article with nearly the same text (the same story elsewhere), if any")
    flags: list[str] = Field(
        default_factory=list,
        description="Doubts about the data, e.g. 'published_at_differs_from_feed' when page and feed dates disagree")
    # Keep `revision` last: the publish script fills in its value at the end of the JSON.
    revision: int = Field(1, ge=1, description="1 when first published; +1 for each materially changed version")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> Article:
        return cls.model_validate_json(data)
