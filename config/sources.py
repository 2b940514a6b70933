"""Sources are data: sites and their section feeds, loaded from `config/feeds.yaml` and validated.

The file holds a `feeds:` list (url, optional section / interval / min_interval / max_interval /
max_entry_age) and an
optional `sites:` mapping of domain to per-site options (display name, time zone, language).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SourcesError(ValueError):
    """The feeds file is missing, not YAML, or holds an invalid entry (the message says which)."""


class SiteConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    timezone: str = "UTC"
    language: str | None = None
    rate_limit: float | None = Field(None, gt=0)  # requests per second to this site (default: global)
    max_concurrency: int | None = Field(None, ge=1)
    # CSS selectors of this site's own boilerplate, removed before extraction. Rarely needed: the general
    # rules handle most sites.
    drop: tuple[str, ...] = ()

    @field_validator("drop")
    @classmethod
    def _valid_selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from cssselect import GenericTranslator, SelectorError

        for selector in value:
            try:
                GenericTranslator().css_to_xpath(selector)
            except SelectorError as exc:
                raise ValueError(f"bad CSS selector {selector!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class FeedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    section: str | None = None
    interval: int | None = Field(None, ge=1)
    min_interval: int | None = Field(None, ge=1)
    max_interval: int | None = Field(None, ge=1)
    max_entry_age: int | None = Field(None, ge=1)  # seconds; older entries are skipped

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"feed url must be http(s): {value!r}")
        return value


class Sources(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    feeds: list[FeedConfig] = []
    sites: dict[str, SiteConfig] = {}

    def site_for(self, host: str) -> tuple[str, SiteConfig] | None:
        """The configured site whose domain is `host` or a parent of it."""
        host = host.lower().rstrip(".")
        for domain, site in sorted(self.sites.items(), key=lambda kv: -len(kv[0])):
            d = domain.lower()
            if host == d or host.endswith("." + d):
                return d, site
        return None


def parse_sources(data: Any, origin: str = "<data>") -> Sources:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SourcesError(f"{origin}: expected a mapping with a 'feeds' list")
    try:
        return Sources.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SourcesError(f"{origin}: {where}: {first['msg']}") from None


def load_sources(path: Path) -> Sources:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SourcesError(f"cannot read feeds file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourcesError(f"{path}: not valid YAML: {exc}") from None
    return parse_sources(data, str(path))
