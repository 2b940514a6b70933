"""Extraction: HTML text in, `Extracted` out. A pure function of the page; trafilatura does the heavy part.

The page is parsed once; general boilerplate rules (`worker.boilerplate`) clean the tree, trafilatura finds
the main content, and its XML body is rendered to plain text here so that captions, bylines and tables are
handled on purpose (no `| ... |` rows, captions attached to their images).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import py3langid
import trafilatura
from lxml import etree
from lxml import html as lxml_html

from worker import boilerplate
from worker.errors import NotAnArticle
from worker.models import Extracted, Image

EXTRACTOR_NAME = "trafilatura"
EXTRACTOR_VERSION = trafilatura.__version__
MIN_TEXT_CHARS = 200
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_HOME_CRUMBS = {"trang chủ", "home", "homepage", "startseite", "accueil", "inicio"}
_DATE_META = (
    "article:published_time", "og:article:published_time", "datePublished", "pubdate",
    "publishdate", "date", "dc.date.issued", "sailthru.date", "parsely-pub-date",
)


def _meta(root: lxml_html.HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in root.iter("meta"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or "").strip()
        value = (m.get("content") or "").strip()
        if key and value:
            found.setdefault(key, value)
            found.setdefault(key.lower(), value)
    return found


def _json_ld(root: lxml_html.HtmlElement) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for script in root.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                items.append(item)
                stack.extend(v for v in item.get("@graph", []) if isinstance(v, dict))
            elif isinstance(item, list):
                stack.extend(item)
    return items


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _published(meta: dict[str, str], ld: list[dict[str, Any]], found: str | None) -> datetime | None:
    """An explicit, offset-aware date from meta tags or JSON-LD first; else htmldate's (`found`)."""
    candidates = [meta.get(k) for k in _DATE_META] + [str(i.get("datePublished") or "") for i in ld]
    parsed = [d for d in (_parse_date(c) for c in candidates) if d is not None]
    aware = [d for d in parsed if d.tzinfo is not None]
    if aware:
        return aware[0]
    return _parse_date(found) or (parsed[0] if parsed else None)


def _date_params() -> dict[str, Any]:
    # htmldate, run once inside trafilatura's metadata pass, asked for a time and offset, not just the day.
    return {"original_date": True, "extensive_search": True, "outputformat": DATE_FORMAT,
            "max_date": datetime.now().astimezone().strftime("%Y-%m-%d")}


def _section(root: lxml_html.HtmlElement, meta: dict[str, str]) -> str | None:
    if meta.get("article:section"):
        return boilerplate.norm_text(meta["article:section"])
    for crumbs in root.xpath('//*[contains(@class,"breadcrumb") or contains(@id,"breadcrumb")]'):
        for a in crumbs.iter("a"):
            text = boilerplate.norm_text(a.text_content())
            if text and text.lower() not in _HOME_CRUMBS:
                return text
    return None


def _authors_from_ld(ld: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in ld:
        author = item.get("author")
        for a in author if isinstance(author, list) else [author]:
            name = a.get("name") if isinstance(a, dict) else a
            if isinstance(name, str) and boilerplate.norm_text(name):
                names.append(boilerplate.norm_text(name))
    return names


def _language(text: str, declared: str | None) -> str | None:
    sample = text[:1500]
    if len(sample) >= 50:
        code, _score = py3langid.classify(sample)
        return str(code)
    return declared.split("-")[0].lower() if declared else None


def _mostly_links(el: etree._Element) -> bool:
    text = boilerplate.norm_text("".join(el.itertext()))
    if not text or el.tag in ("graphic", "table"):
        return False
    linked = sum(len(boilerplate.norm_text("".join(r.itertext()))) for r in el.iter("ref"))
    if el.tag == "list":
        return linked / len(text) > 0.5
    return len(text) <= 150 and linked / len(text) > 0.8


def _clean_title(title: str | None, headings: list[str]) -> str | None:
    """Drop a ' - Section - Site' tail when a page heading gives the bare headline."""
    title = boilerplate.norm_text(title)
    if not title:
        return None
    for head in headings:
        if head and title != head and title.startswith(head) and title[len(head):].lstrip()[:1] in "-|–—:":
            return head
    return title


_CONTAINERS = ("div", "section", "main", "article", "body")


def _leaf_blocks(el: etree._Element) -> list[etree._Element]:
    """Block elements in document order, looking through the containers trafilatura sometimes keeps."""
    out: list[etree._Element] = []
    for child in el:
        if child.tag in _CONTAINERS:
            out.extend(_leaf_blocks(child))
        else:
            out.append(child)
    return out


def _render(body: etree._Element, captions: dict[str, str]) -> tuple[str, list[Image]]:
    """Plain text (blocks separated by blank lines) and images from trafilatura's XML body."""
    blocks: list[str] = []
    images: list[Image] = []
    caption_texts = {boilerplate.norm_text(c) for c in captions.values()}

    def add_image(src: str | None, alt: str | None) -> None:
        if src and all(i.url != src for i in images):
            images.append(Image(url=src, caption=captions.get(src)))

    for el in _leaf_blocks(body):
        tag = el.tag
        if _mostly_links(el):
            # A list of links to other stories, and the short label that introduced it.
            if blocks and len(blocks[-1]) <= 40 and not blocks[-1].endswith((".", "?", "!")):
                blocks.pop()
            continue
        if tag == "graphic":
            add_image(el.get("src"), el.get("alt"))
            continue
        if tag == "table":
            graphics = list(el.iter("graphic"))
            for g in graphics:
                add_image(g.get("src"), g.get("alt"))
            if graphics:
                continue  # a layout table around an image: its text is the caption
            for row in el.iter("row"):
                cells = [boilerplate.norm_text("".join(c.itertext())) for c in row.iter("cell")]
                line = "\t".join(c for c in cells if c)
                if line:
                    blocks.append(line)
            continue
        if tag == "list":
            items = [boilerplate.norm_text("".join(i.itertext())) for i in el.iter("item")]
            blocks.extend(f"- {i}" for i in items if i)
            continue
        for g in el.iter("graphic"):
            add_image(g.get("src"), g.get("alt"))
        text = boilerplate.norm_text("".join(el.itertext()))
        if not text or (text in caption_texts and images):
            continue
        if boilerplate.TOOL_LINKS.match(text):
            continue
        blocks.append(text)
    return "\n\n".join(blocks), images


def extract_article(html: str, url: str | None = None) -> Extracted:
    """Extract the article of one page. Raises NotAnArticle when there is no article text."""
    if not html or not html.strip():
        raise NotAnArticle("empty_page")
    try:
        root = lxml_html.document_fromstring(html)
    except (etree.ParserError, ValueError) as exc:
        raise NotAnArticle("unparseable", str(exc)[:200]) from None
    meta = _meta(root)
    ld = _json_ld(root)
    section = _section(root, meta)
    captions = boilerplate.collect_captions(root, url)
    declared_lang = root.get("lang")
    headings = [boilerplate.norm_text(h.text_content()) for h in root.iter("h1")]
    # From here on the tree is cleaned in place; trafilatura works on it and may change it too.
    bylines = boilerplate.take_bylines(root)
    boilerplate.drop_related_boxes(root)
    boilerplate.drop_tool_links(root)
    doc = trafilatura.bare_extraction(
        root, url=url, with_metadata=True, include_comments=False, include_images=True,
        include_tables=True, include_links=True, favor_precision=True, deduplicate=False,
        date_extraction_params=_date_params(),
    )
    if doc is None or doc.body is None:
        raise NotAnArticle("extraction_empty")
    title = _clean_title(doc.title, headings)
    text, images = _render(doc.body, captions)
    if title and text.startswith(title):
        text = text[len(title):].lstrip("\n")
    if len(text) < MIN_TEXT_CHARS:
        raise NotAnArticle("extraction_empty", f"{len(text)} characters of text")
    site_name = boilerplate.norm_text(meta.get("og:site_name") or doc.sitename) or None
    authors = bylines or _authors_from_ld(ld) or _split_authors(doc.author)
    authors = [a for a in authors if site_name is None or a.lower() != site_name.lower()]
    return Extracted(
        title=title,
        text=text,
        authors=tuple(dict.fromkeys(authors)),
        published_at=_published(meta, ld, doc.date),
        site_name=site_name,
        section=section,
        language=_language(text, declared_lang),
        lead=boilerplate.norm_text(meta.get("og:description") or meta.get("description") or doc.description) or None,
        images=tuple(images),
        tags=tuple(dict.fromkeys(_split_tags(doc.tags or []))),
        canonical_url=doc.url if doc.url and doc.url != url else None,
    )


def _split_authors(value: str | None) -> list[str]:
    return [a for a in (boilerplate.norm_text(p) for p in re.split(r";|\band\b|,| và ", value or "")) if a]


def _split_tags(values: list[str]) -> list[str]:
    return [t for v in values for t in (boilerplate.norm_text(p) for p in v.split(",")) if t]
