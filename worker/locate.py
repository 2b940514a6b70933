"""Where the extracted text sits in the page: the source element of each block, their common container,
twin containers that continue the article, and the images inside it.

Trafilatura returns text without positions; matching its blocks back to the page by their normalised text
gives what plain text cannot: link density, the article's container, and which images belong to it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml.html import HtmlElement

from worker.boilerplate import image_src, norm_text, text_of

# Elements whose text trafilatura turns into one block.
_BLOCK_TAGS = ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "dd", "dt", "blockquote",
               "figcaption", "pre", "caption")
_HEAD_CHARS = 24
_DIV_BLOCKS = frozenset({"div", "p", "ul", "ol", "table", "section", "article", "h1", "h2", "h3", "h4", "blockquote"})
# Share of the matched text the container must hold: a stray match elsewhere must not widen it to <body>.
_CONTAINER_SHARE = 0.8
_TWIN_LEVELS = 2
_MIN_TWIN_TEXT = 200
_MIN_IMAGE_SIDE = 80
_TEASER_LINKS = 0.8
_LISTING_TEASERS = 0.8
_LISTING_HEADLINES = 1
_HEADLINE_WORDS = 5


def key(text: str) -> str:
    """Text with all whitespace removed, in NFC: a <br> is a space in trafilatura's text and nothing in
    text_content()."""
    text = "".join(text.split())
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Index:
    """Block-level elements of the page by the `key` of their text, in document order; long ones also by the
    start of it, for blocks whose text trafilatura trimmed (an inline element it removes, a ruby reading)."""

    exact: dict[str, list[HtmlElement]]
    heads: dict[str, list[HtmlElement]]


def index_blocks(root: HtmlElement) -> Index:
    """Every block-level element of the page, and every div holding only inline content."""
    exact: dict[str, list[HtmlElement]] = {}
    heads: dict[str, list[HtmlElement]] = {}
    holders = {el.getparent() for el in root.iter(_DIV_BLOCKS)}  # one pass, not one per div
    for el in root.iter(_BLOCK_TAGS, "div"):
        if el.tag == "div" and el in holders:
            continue
        text = key(text_of(el))
        if text:
            exact.setdefault(text, []).append(el)
            if len(text) >= _HEAD_CHARS * 2:
                heads.setdefault(text[:_HEAD_CHARS], []).append(el)
    return Index(exact, heads)


def sources(texts: Iterable[str], index: Index) -> list[HtmlElement | None]:
    """The source element of each text block; a text seen twice maps to its second element the second time."""
    used: dict[str, int] = {}
    found: list[HtmlElement | None] = []
    for text in texts:
        k = key(text)
        candidates = index.exact.get(k) or (index.heads.get(k[:_HEAD_CHARS], []) if len(k) >= 2 * _HEAD_CHARS
                                            else [])
        n = used.get(k, 0)
        used[k] = n + 1
        found.append(candidates[min(n, len(candidates) - 1)] if candidates else None)
    return found


def link_share(el: HtmlElement) -> float:
    """Share of the element's text that is link text."""
    total = len(norm_text(text_of(el)))
    if not total:
        return 0.0
    return min(1.0, sum(len(norm_text(text_of(a))) for a in el.iter("a")) / total)


def container(elements: Iterable[tuple[HtmlElement, int]]) -> HtmlElement | None:
    """The deepest element holding most of the given (element, text length) pairs: the article's body."""
    weight: dict[HtmlElement, int] = {}
    depth: dict[HtmlElement, int] = {}
    total = 0
    for el, size in elements:
        total += size
        chain = [el, *el.iterancestors()]
        for level, anc in enumerate(reversed(chain)):
            weight[anc] = weight.get(anc, 0) + size
            depth[anc] = level
    if not total:
        return None
    held = [el for el, w in weight.items() if w >= _CONTAINER_SHARE * total]
    return max(held, key=lambda el: depth[el]) if held else None


def _nearest_article(el: HtmlElement) -> HtmlElement | None:
    return next(el.iterancestors("article"), None)


def _paragraph_chars(el: HtmlElement) -> int:
    return sum(len(norm_text(text_of(p))) for p in el.iter("p"))


def twins(box: HtmlElement) -> list[tuple[HtmlElement, bool]]:
    """Siblings built like the container (same tag and class), a level or two up, that hold paragraphs,
    each with True if it comes before the container.

    Pages split a long article into several identical body blocks with ads between them; trafilatura keeps
    the first. A twin must sit in the same <article> and carry no headline of its own, so that the next
    article of an endless page is not taken for the rest of this one.
    """
    level: HtmlElement | None = box
    for _ in range(_TWIN_LEVELS):
        parent = level.getparent() if level is not None else None
        if level is None or parent is None or not level.get("class"):
            break
        home, position = _nearest_article(level), parent.index(level)
        found = [
            (sib, i < position) for i, sib in enumerate(parent)
            if sib is not level and sib.tag == level.tag and sib.get("class") == level.get("class")
            and _nearest_article(sib) is home and next(sib.iter("h1"), None) is None
            and _paragraph_chars(sib) >= _MIN_TWIN_TEXT
        ]
        if found:
            return found
        level = parent
    return []


def merge(box: HtmlElement, found: list[tuple[HtmlElement, bool]]) -> None:
    """Move the twins' content into the container, in reading order, so one extraction sees it all."""
    head = 0
    for twin, before in found:
        for child in list(twin):
            if before:
                box.insert(head, child)
                head += 1
            else:
                box.append(child)


def _previous_text(el: HtmlElement) -> HtmlElement | None:
    """The nearest element with text before this one: its previous sibling, or its parent's."""
    for start in (el, el.getparent()):
        sib = start.getprevious() if start is not None else None
        while sib is not None:
            if norm_text(text_of(sib)):
                return sib
            sib = sib.getprevious()
    return None


def _teaser(el: HtmlElement) -> bool:
    """A paragraph right under a link to another page: the summary of a story listed on an index page."""
    above = _previous_text(el)
    return above is not None and len(norm_text(text_of(above))) > 10 and link_share(above) >= _TEASER_LINKS


def is_listing(paragraphs: list[tuple[HtmlElement | None, int]], box: HtmlElement | None) -> bool:
    """True for home and section pages: most of the text is teasers under headline links, in a container
    with at least as many headline links as paragraphs. `paragraphs` pairs each block's source (if found) with
    its size."""
    total = sum(size for _, size in paragraphs)
    if box is None or not total:
        return False
    others = 0  # text that is not a teaser; stop as soon as there is too much of it
    for el, size in paragraphs:
        if el is None or not _teaser(el):
            others += size
            if others > (1 - _LISTING_TEASERS) * total:
                return False
    headlines = sum(1 for a in box.iter("a") if len(text_of(a).split()) >= _HEADLINE_WORDS)
    return headlines >= _LISTING_HEADLINES * len(paragraphs)


def _small(img: HtmlElement) -> bool:
    for attr in ("width", "height"):
        value = (img.get(attr) or "").strip().removesuffix("px")
        if value.isdigit() and int(value) < _MIN_IMAGE_SIDE:
            return True
    return False


def images_in(box: HtmlElement, base_url: str | None) -> Iterator[str]:
    """URLs of the content images inside the container, in order (icons and tracking pixels left out)."""
    seen: set[str] = set()
    for img in box.iter("img"):
        src = image_src(img, base_url)
        if src and src not in seen and not _small(img):
            seen.add(src)
            yield src
