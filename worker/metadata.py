"""Page metadata: meta tags, JSON-LD, headline, breadcrumbs and canonical link, read once from the tree.

Cheap on purpose (no whole-page XPath sweeps): trafilatura's own metadata pass costs a third of an
extraction. Only the date falls back to htmldate, and only when the page states no date of its own.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html

from worker import dates
from worker.boilerplate import norm_text, text_of

_DATE_META = (
    "article:published_time", "og:article:published_time", "datePublished", "pubdate", "publishdate",
    "date", "dc.date.issued", "sailthru.date", "parsely-pub-date",
)
_TITLE_META = ("og:title", "twitter:title", "title", "headline", "dc.title", "parsely-title")
_SITE_META = ("og:site_name", "application-name", "publisher", "dc.publisher", "twitter:site")
_AUTHOR_META = ("author", "article:author", "byl", "parsely-author", "dc.creator")
_TAG_META = ("keywords", "news_keywords", "article:tag", "parsely-tags")
_HOME_CRUMBS = {"trang chủ", "home", "homepage", "startseite", "accueil", "inicio"}
_TITLE_SEPARATORS = re.compile(r"\s+[-|–—:»·]\s+")
_YEARS = re.compile(r"^\W*(?:©|\(c\)|copyright)?\s*(?:\d{4}(?:\s*[-–]\s*\d{4})?)?\s*[,.:©-]*\s*", re.I)
_RIGHTS = re.compile(r"[\s,.;-]*(?:all\s+rights\s+reserved|bảo\s+lưu\s+mọi\s+quyền)\W*$", re.I)


@dataclass(frozen=True)
class PageMeta:
    """What the page declares about itself, read before any cleaning."""

    meta: dict[str, str]
    ld: tuple[dict[str, Any], ...]
    headings: tuple[str, ...]
    title_tag: str | None
    canonical: str | None
    declared_lang: str | None


def _meta_tags(root: lxml_html.HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in root.iter("meta"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or "").strip()
        value = (m.get("content") or "").strip()
        if "&" in value:
            value = html.unescape(html.unescape(value))  # CMSs double-escape: "&amp;quot;"
        if key and value:
            found.setdefault(key, value)
            found.setdefault(key.lower(), value)
    return found


def _json_ld(root: lxml_html.HtmlElement) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for script in root.iter("script"):
        if script.get("type") != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                items.append(item)
                stack.extend(v for v in item.get("@graph", []) if isinstance(v, dict))
            elif isinstance(item, list):
                stack.extend(item)
    return items


# Attribute steps, then their elements: the same elements in the same order as `//*[contains(@class, …)]`, in 60 %
# of the time (libxml2 tests the attributes that exist, not every element for each of them).
_BREADCRUMBS = etree.XPath('(//@class[contains(., "breadcrumb")] | //@id[contains(., "breadcrumb")])/parent::*')


def _crumbs(root: lxml_html.HtmlElement) -> list[str]:
    for crumbs in _BREADCRUMBS(root):
        texts = [norm_text(text_of(a)) for a in crumbs.iter("a")]
        texts = [t for t in texts if t and t.lower() not in _HOME_CRUMBS]
        if texts:
            return texts
    return []


def read_page(root: lxml_html.HtmlElement) -> PageMeta:
    title = root.find(".//title")
    canonical = next((link.get("href") for link in root.iter("link")
                      if (link.get("rel") or "").lower() == "canonical" and link.get("href")), None)
    return PageMeta(
        meta=_meta_tags(root),
        ld=tuple(_json_ld(root)),
        headings=tuple(norm_text(text_of(h)) for h in root.iter("h1")),
        title_tag=norm_text(text_of(title)) if title is not None else None,
        canonical=canonical,
        declared_lang=root.get("lang"),
    )


def _ld_values(page: PageMeta, key: str) -> list[Any]:
    return [item[key] for item in page.ld if item.get(key)]


def _strip_tail(title: str, headings: tuple[str, ...]) -> str:
    """Drop a ' - Section - Site' tail when a page heading gives the bare headline."""
    for head in headings:
        if head and title != head and title.startswith(head) and title[len(head):].lstrip()[:1] in "-|–—:":
            return head
    return title


def title(page: PageMeta) -> str | None:
    declared = [page.meta.get(k) for k in _TITLE_META] + [str(v) for v in _ld_values(page, "headline")]
    for candidate in declared:
        if norm_text(candidate):
            return _strip_tail(norm_text(candidate), page.headings)
    real = [h for h in page.headings if h]
    if len(real) == 1:
        return real[0]
    if page.title_tag:
        return _TITLE_SEPARATORS.split(page.title_tag)[0] or page.title_tag
    return real[0] if real else None


def _fold(text: str) -> str:
    """Lower case, accents and non-letters removed: "Báo Tuổi Trẻ" -> "baotuoitre"."""
    text = unicodedata.normalize("NFKD", text.lower().replace("đ", "d"))
    return "".join(ch for ch in text if ch.isalnum() and not unicodedata.combining(ch))


def clean_site_name(name: str | None, host: str | None) -> str | None:
    """'2003-2011, Báo Thanh Niên' -> 'Báo Thanh Niên'; 'Tin tức thời sự - Báo Tuổi Trẻ' -> 'Báo Tuổi Trẻ'."""
    name = norm_text(_RIGHTS.sub("", _YEARS.sub("", norm_text(name).lstrip("@"))))
    if not name:
        return None
    parts = [p for p in _TITLE_SEPARATORS.split(name) if p]
    if len(parts) > 1:
        label = _fold((host or "").removeprefix("www.").split(".")[0])
        # The part that spells the host is the name; the others are taglines. Else names come last.
        named = [p for p in parts if label and (label in _fold(p) or _fold(p) in label)]
        name = named[0] if named else parts[-1]
    return name


def host_of(page: PageMeta, url: str | None) -> str | None:
    for candidate in (page.meta.get("og:url"), page.canonical, url):
        if candidate and candidate.startswith("http"):
            return urlsplit(candidate).hostname
    return None


def site_name(page: PageMeta, url: str | None) -> str | None:
    host = host_of(page, url)
    publishers = [p.get("name") for p in _ld_values(page, "publisher") if isinstance(p, dict)]
    # A copyright line names the owner, often a company: the last resort.
    for candidate in [page.meta.get(k) for k in _SITE_META] + publishers + [page.meta.get("copyright")]:
        if candidate and not candidate.startswith("http"):
            return clean_site_name(candidate, host)
    return host.removeprefix("www.") if host else None


def section(page: PageMeta, root: lxml_html.HtmlElement) -> str | None:
    """The declared section (article:section, JSON-LD articleSection), else the first breadcrumb."""
    declared = page.meta.get("article:section") or next(iter(_ld_values(page, "articleSection")), None)
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    if isinstance(declared, str) and norm_text(declared):
        return norm_text(declared)
    crumbs = _crumbs(root)
    return crumbs[0] if crumbs else None


def _names(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    names = [v.get("name") if isinstance(v, dict) else v for v in values]
    return [norm_text(n) for n in names if isinstance(n, str) and norm_text(n)]


def declared_authors(page: PageMeta) -> list[str]:
    """Authors from JSON-LD, else from an author meta tag that names a person (not a URL, not one word)."""
    from_ld = [n for v in _ld_values(page, "author") for n in _names(v)]
    if from_ld:
        return from_ld
    for key in _AUTHOR_META:
        value = norm_text(page.meta.get(key))
        if value and " " in value and not value.startswith("http") and not _is_credit(value):
            return split_authors(value)
    return []


def _is_credit(text: str) -> bool:
    """"Theo Vietnamnet/Reuters" credits the source a story was taken from, not its author."""
    return text.lower().startswith("theo ")


# Elements marked as an author's, not meta, link or script: found by their attributes, as `_BREADCRUMBS`.
_AUTHOR_MARKUP = etree.XPath(
    '(//@itemprop[. = "author"] | //@rel[. = "author"] | //@class[contains(., "author") or contains(., "byline")])'
    '/parent::*[not(self::meta or self::link or self::script)]')
_BY = re.compile(r"^(?:by|bởi|tác giả|von|par|por|di)\s*:?\s+", re.I)
MAX_AUTHOR_CHARS = 60
MAX_AUTHOR_WORDS = 6


def marked_authors(root: lxml_html.HtmlElement) -> list[str]:
    """The first author name the page marks up as one (class "author"/"byline", itemprop or rel "author")."""
    for el in _AUTHOR_MARKUP(root):
        text = _BY.sub("", norm_text(text_of(el)))
        if text and len(text) <= MAX_AUTHOR_CHARS and len(text.split()) <= MAX_AUTHOR_WORDS \
                and not any(ch.isdigit() or ch in "@|/" for ch in text) and not _is_credit(text):
            return split_authors(text)
    return []


def split_authors(value: str | None) -> list[str]:
    """Names from a byline string; an all-lower-case name gets capitals ("giampiero maggio")."""
    names = (norm_text(p) for p in re.split(r";|\band\b|,| và ", value or ""))
    return [n.title() if n.islower() else n for n in names if n]


def lead(page: PageMeta) -> str | None:
    for key in ("og:description", "description", "twitter:description"):
        if norm_text(page.meta.get(key)):
            return norm_text(page.meta[key])
    return None


def tags(page: PageMeta) -> list[str]:
    """Keywords and topics, split on commas and semicolons, repeated ones (any case) dropped."""
    # The first tag field the page fills: a second one is often the site's own keyword list on every page.
    values = [next((page.meta[k] for k in _TAG_META if norm_text(page.meta.get(k))), None)]
    values += [v for key in ("keywords", "about") for value in _ld_values(page, key) for v in _names(value)]
    described = _fold(lead(page) or "") if any(values) else ""
    found: dict[str, str] = {}
    for value in values:
        # Some CMSs fill the keywords with the description: that is a sentence, not tags.
        if not value or (described and _fold(value) == described):
            continue
        for tag in re.split(r"[,;]", value):
            tag = norm_text(tag)
            if tag:
                found.setdefault(tag.lower(), tag)
    return list(found.values())


def canonical_url(page: PageMeta, url: str | None) -> str | None:
    # og:url before <link rel=canonical>: old CMSs print a canonical link to a sibling article.
    found = page.meta.get("og:url") or page.canonical
    if found and found.startswith("//"):
        found = "https:" + found
    return found if found and found.startswith("http") and found != url else None


def declared_dates(page: PageMeta) -> list[datetime]:
    candidates = [page.meta.get(k) for k in _DATE_META] + [str(v) for v in _ld_values(page, "datePublished")]
    return [d for d in (dates.parse_iso(c) for c in candidates) if d is not None]
