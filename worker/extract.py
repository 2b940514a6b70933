"""Extraction: HTML text in, `Extracted` out. A pure function of the page; trafilatura does the heavy part.

The page is parsed once; its metadata is read (`worker.metadata`, `worker.dates`); general rules clean the
tree (`worker.boilerplate`); trafilatura finds the main text and it is matched back to the page
(`worker.content`, `worker.locate`); precision filters finish the text (`worker.blockfilter`); images come
from the article's container, with their captions.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import replace
from datetime import datetime

import htmldate
import py3langid
import trafilatura
from lxml import etree
from lxml import html as lxml_html
from lxml.html import HtmlElement
from trafilatura.utils import load_html

from worker import blockfilter, boilerplate, dates, locate, metadata
from worker.boilerplate import text_of
from worker.charset import decode_html
from worker.content import find_content
from worker.errors import NotAnArticle
from worker.models import Extracted, Image
from worker.neardup import simhash
from worker.stream import text_hash

EXTRACTOR_NAME = "trafilatura"
EXTRACTOR_VERSION = trafilatura.__version__  # worker.article reads the same from package metadata
MIN_TEXT_CHARS = 200
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# Enough text for a stable language guess (same verdicts as 1,500 characters on our test pages, at half the cost).
LANGUAGE_SAMPLE_CHARS = 600
# Structural limits, checked before any costly pass: extraction time grows with the element count (40,000
# elements take 2 to 7 s, a 5 MB page of 160,000 links 30 s), while the real pages of our test sets have at most
# 2,380 elements, 805 links, and at most 86 % of their text in links (a home page). See docs/extraction.md.
MAX_ELEMENTS = 30_000
LINK_FARM_LINKS = 2_000
LINK_FARM_SHARE = 0.9
# Text made of words: letters, marks and digits are at least 90 % of the non-space characters of every real page's
# text (digits count: price boards and results tables are news too), U+FFFD and control characters 0 %. NUL bytes
# give a run of U+FFFD, 200,000 '<' no word character at all, random bytes (as windows-1252) 2.6 % of U+FFFD.
MIN_WORD_SHARE = 0.5
MAX_BROKEN_SHARE = 0.01
TEXT_SAMPLE_CHARS = 100_000
_ASCII_WORD_CHARS = str.maketrans("", "", string.ascii_letters + string.digits)
# U+FFFD (a byte the page's charset cannot decode, category So, counted apart), controls, private use, unassigned,
# surrogates; not format characters (Cf: soft hyphens, zero-width joiners), which real text uses.
_BROKEN_KINDS = frozenset({"Cc", "Co", "Cn", "Cs"})
_WHITESPACE = re.compile(r"\s+")
# A doctype with a system identifier on the first line trips libxml2 (lxml bug 1955915); trafilatura drops it too.
_DOCTYPE = re.compile(r"^< ?! ?DOCTYPE[^>]*/[^<>]*>", re.I)


# lxml.html's own class lookup is a Python method, called for every element object lxml creates: ours, and those of
# trafilatura's passes over the tree (about 3,500 per page, 5 % of the instructions of an extraction). This one
# answers in C, with the same HtmlElement class for every element (form fields are not FormElement and the like,
# which nothing here uses).
_LOOKUP = etree.ElementDefaultClassLookup(element=HtmlElement, comment=lxml_html.HtmlComment,
                                          pi=lxml_html.HtmlProcessingInstruction, entity=lxml_html.HtmlEntity)


def _parse(html: str) -> HtmlElement:
    if "doctype" in html[:50].lower():
        first, newline, rest = html.partition("\n")
        html = _DOCTYPE.sub("", first, count=1) + newline + rest
    # As trafilatura parses: comments and processing instructions dropped (a comment inside a paragraph splits
    # it). A parser per call: lxml parsers must not be shared between threads (`extract_processes: 0`).
    parser = lxml_html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False, default_doctype=False)
    parser.set_element_class_lookup(_LOOKUP)
    try:
        root = lxml_html.document_fromstring(html, parser=parser)
    except (etree.ParserError, ValueError):
        root = None
    if root is None or len(root) == 0:
        # Control characters, an encoding declaration, a self-closing <html/>: trafilatura's loader repairs them.
        try:
            root = load_html(html)
        except (etree.ParserError, ValueError, TypeError) as exc:
            raise NotAnArticle("unparseable", str(exc)[:200]) from None
    if root is None:
        raise NotAnArticle("unparseable")
    return root


def _check_structure(root: HtmlElement) -> None:
    """Refuse pages too big or too link-laden to be an article, before any costly pass over them."""
    # Counted by XPath: no Python object per element.
    elements = int(root.xpath("count(//*)"))
    if elements > MAX_ELEMENTS:
        raise NotAnArticle("too_complex", f"{elements} elements (limit {MAX_ELEMENTS})")
    if root.xpath("count(//a)") >= LINK_FARM_LINKS:
        links = list(root.iter("a"))
        in_links = sum(len(_WHITESPACE.sub("", text_of(a))) for a in links)
        total = len(_WHITESPACE.sub("", text_of(root))) or 1
        if in_links / total >= LINK_FARM_SHARE:
            raise NotAnArticle("link_farm", f"{len(links)} links hold {in_links / total:.0%} of the text")


def _check_words(text: str) -> None:
    """Refuse text that is not made of words: mojibake of binary data, U+FFFD runs, markup debris."""
    chars = "".join(text.split())
    sample = chars[:: max(1, len(chars) // TEXT_SAMPLE_CHARS)]  # evenly spread, for a bounded cost
    if not sample:
        raise NotAnArticle("not_text", "no visible characters")
    # ASCII letters and digits are counted by deleting them; the other characters' categories are looked up
    # once per distinct character (a third of the cost of a lookup per character).
    rest = sample.translate(_ASCII_WORD_CHARS)
    words, broken = len(sample) - len(rest), sample.count("\ufffd")
    for char, n in Counter(rest).items():
        kind = unicodedata.category(char)
        if kind[0] in "LMN":
            words += n
        elif kind in _BROKEN_KINDS:
            broken += n
    words, broken = words / len(sample), broken / len(sample)
    if words < MIN_WORD_SHARE or broken > MAX_BROKEN_SHARE:
        raise NotAnArticle("not_text", f"{words:.0%} letters or digits, {broken:.1%} U+FFFD or control characters")


def _language(text: str, declared: str | None) -> str | None:
    sample = text[:LANGUAGE_SAMPLE_CHARS]
    if len(sample) >= 50:
        code, _score = py3langid.classify(sample)
        return str(code)
    return declared.split("-")[0].lower() if declared else None


def _published(
    declared: list[datetime], printed: datetime | None, root: HtmlElement, url: str | None, now: datetime
) -> datetime | None:
    """A declared offset-aware date; else the dateline printed by the headline (if it agrees with a declared
    day); else a declared date; else htmldate's guess."""
    aware = [d for d in declared if d.tzinfo is not None]
    if aware:
        return aware[0]
    if printed is not None and (not declared or declared[0].date() == printed.date()):
        return printed
    if declared:
        return declared[0]
    found = htmldate.find_date(root, url=url, extensive_search=True, original_date=True, outputformat=DATE_FORMAT,
                               max_date=now.strftime("%Y-%m-%d"))
    return dates.parse_iso(found)


def _images(box: HtmlElement | None, url: str | None, captions: dict[str, str]) -> list[Image]:
    if box is None:
        return []
    return [Image(url=src, caption=captions.get(src)) for src in locate.images_in(box, url)]


def _authors(named: list[str], texts: list[str], vietnamese: bool, site_name: str | None) -> list[str]:
    """Authors the page names; else, on a Vietnamese page, the names signed on the last line."""
    found = named or (boilerplate.signature(texts[-1]) if vietnamese and texts else [])
    return list(dict.fromkeys(a for a in found if not site_name or a.lower() != site_name.lower()))


def extract_article(html: str, url: str | None = None, drop: tuple[str, ...] = ()) -> Extracted:
    """Extract the article of one page. Raises NotAnArticle when there is no article text, or the page is
    too complex for one (`too_complex`, `link_farm`), or its text is not made of words (`not_text`).

    `drop`: CSS selectors of a site's own boilerplate (a per-site override in config/feeds.yaml), removed first.
    """
    if not html or not html.strip():
        raise NotAnArticle("empty_page")
    root = _parse(html)
    _check_structure(root)
    for selector in drop:
        for el in root.cssselect(selector):
            if el.getparent() is not None:
                el.drop_tree()
    page = metadata.read_page(root)
    # From here on the tree is cleaned in place; trafilatura works on copies of it.
    etree.strip_elements(root, *boilerplate.NEVER_TEXT, with_tail=False)
    captions = boilerplate.collect_captions(root, url)
    named = boilerplate.take_bylines(root) or metadata.declared_authors(page) or metadata.marked_authors(root)
    now = datetime.now().astimezone()
    declared = metadata.declared_dates(page)
    printed = dates.Datelines() if any(d.tzinfo for d in declared) else dates.datelines(root, now)
    # Page furniture goes only now: bylines and datelines sometimes sit in it. trafilatura drops it too, and
    # the smaller tree makes every later pass (and trafilatura's copies of it) cheaper.
    etree.strip_elements(root, *boilerplate.FURNITURE, with_tail=False)
    boilerplate.drop_related_boxes(root)
    boilerplate.drop_tool_links(root)
    found = find_content(root, url)
    if locate.is_listing([(s, len(b.text)) for b, s in zip(found.blocks, found.sources, strict=True)], found.box):
        raise NotAnArticle("listing_page", "paragraphs are teasers under links to other pages")
    title = metadata.title(page)
    headlines = [t for t in (title, *page.headings) if t]
    kept = blockfilter.article_blocks(found.blocks, found.sources, set(captions.values()), headlines)
    texts = [b.text for b in kept]
    text = "\n\n".join(f"- {b.text}" if b.kind == "item" else b.text for b in kept)
    if len(text) < MIN_TEXT_CHARS:
        raise NotAnArticle("extraction_empty", f"{len(text)} characters of text")
    _check_words(text)
    language = _language(text, page.declared_lang)
    vietnamese = language == "vi"
    site_name = metadata.site_name(page, url)
    return Extracted(
        title=title,
        text=text,
        authors=tuple(_authors(named, texts, vietnamese, site_name)),
        published_at=_published(declared, printed.best(vietnamese), root, url, now),
        site_name=site_name,
        section=metadata.section(page, root),
        language=language,
        lead=metadata.lead(page),
        images=tuple(_images(found.box, url, captions)),
        tags=tuple(metadata.tags(page)),
        canonical_url=metadata.canonical_url(page, url),
    )


def extract_page(body: bytes, content_type: str | None, url: str, drop: tuple[str, ...] = ()) -> Extracted:
    """Decode fetched bytes, extract them, and fingerprint the text (for near-duplicates, and for telling a changed
    version from the same one): what an extraction process runs, so the page crosses the process boundary once,
    as bytes, and this CPU stays off the fetching threads (the worker's main process, where it would wait for
    the GIL among them)."""
    extracted = extract_article(decode_html(body, content_type), url, drop)
    fingerprint = text_hash(extracted.title, extracted.text) if extracted.title else None
    return replace(extracted, simhash=simhash(extracted.text), content_hash=fingerprint)


_WARM_UP_PAGE = (
    "<html lang='vi'><head><title>Thời tiết Hà Nội</title><meta property='article:published_time' "
    "content='2026-11-24T08:00:00+07:00'></head><body><article><h1>Thời tiết Hà Nội hôm nay</h1>"
    "<p>Hà Nội hôm nay trời nắng đẹp, người dân đi lại đông đúc trên các tuyến phố chính của thủ đô.</p>"
    "<p>Theo dự báo, nhiệt độ cao nhất trong ngày khoảng 30 độ C, độ ẩm không khí ở mức vừa phải.</p>"
    "<p>Cơ quan khí tượng khuyến cáo người dân chú ý giữ gìn sức khỏe khi thời tiết thay đổi thất thường.</p>"
    "<p>Ngày 24/11/2026, nhiều trường học đã tổ chức các hoạt động ngoài trời cho học sinh.</p>"
    "<p style='text-align:right'><strong>Minh Anh</strong></p></article></body></html>"
)


def warm() -> Extracted:
    """Extract a small built-in page, so an extraction process loads its models (language, dates) at start-up
    rather than on its first real page (about 0.45 s of CPU)."""
    return extract_article(_WARM_UP_PAGE, "https://example.vn/thoi-tiet.html")
