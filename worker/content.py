"""The article's main content: trafilatura's blocks, chosen from a cascade of its modes, matched to the page.

Fast precision mode first (one pass, no fallbacks: the cheapest and most precise); the fuller modes only when
its result looks wrong: too short, or leaving out a paragraph longer than all it kept. An article split into
twin containers is merged and extracted again.
"""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura
from lxml.html import HtmlElement
from trafilatura.settings import Document

from worker import locate
from worker.render import Block, render_blocks

Mode = tuple[bool, bool]  # trafilatura's (fast, favor_precision)
Sources = list[HtmlElement | None]  # the page element of each block, if found
FAST_PRECISION: Mode = (True, True)
FULL_PRECISION: Mode = (False, True)  # adds trafilatura's comparison with readability and jusText
FAST_BALANCED: Mode = (True, False)
FULL_BALANCED: Mode = (False, False)
# A fast-precision result this short may have missed the article: the fuller modes are asked as well, and
# balanced mode wins when the precision result is under this share of its length.
SHORT_CHARS = 500
BALANCED_SHARE = 0.6


@dataclass(frozen=True)
class Content:
    """Text blocks in reading order, the page element each came from (if found), and their container."""

    blocks: tuple[Block, ...]
    sources: tuple[HtmlElement | None, ...]
    box: HtmlElement | None


def _blocks(root: HtmlElement, url: str | None, mode: Mode) -> list[Block]:
    fast, precision = mode
    doc = trafilatura.bare_extraction(
        root, url=url, fast=fast, favor_precision=precision, include_comments=False, include_tables=True,
        include_images=False, include_links=False, with_metadata=False, deduplicate=False, output_format="xml",
    )
    if not isinstance(doc, Document) or doc.body is None:
        return []
    return render_blocks(doc.body)


def _chars(blocks: list[Block]) -> int:
    return sum(len(b.text) for b in blocks)


def _missed_paragraph(blocks: list[Block], sources: Sources, index: locate.Index) -> str | None:
    """The `locate.key` of a <p> longer than the whole extraction and left out of it: the wrong block was taken."""
    taken = {id(el) for el in sources if el is not None}
    size = max(_chars(blocks), SHORT_CHARS)
    return max((k for k, els in index.exact.items() if len(k) > size and els[0].tag == "p"
                and not any(id(el) in taken for el in els)), key=len, default=None)


def _chosen(blocks: list[Block], index: locate.Index, mode: Mode) -> tuple[list[Block], Sources, Mode]:
    return blocks, locate.sources((b.text for b in blocks), index), mode


def _cascade(root: HtmlElement, url: str | None, index: locate.Index) -> tuple[list[Block], Sources, Mode]:
    """The blocks of the mode chosen, their source elements, and the mode."""
    blocks = _blocks(root, url, FAST_PRECISION)
    if _chars(blocks) < SHORT_CHARS:
        full = _blocks(root, url, FULL_PRECISION)
        if _chars(full) >= SHORT_CHARS:
            return _chosen(full, index, FULL_PRECISION)
        balanced = _blocks(root, url, FAST_BALANCED)
        if _chars(full) < BALANCED_SHARE * _chars(balanced):
            return _chosen(balanced, index, FAST_BALANCED)
        return _chosen(full, index, FULL_PRECISION)
    sources = locate.sources((b.text for b in blocks), index)
    missed = _missed_paragraph(blocks, sources, index)
    if missed is not None:
        balanced = _blocks(root, url, FULL_BALANCED)
        if any(locate.key(b.text) == missed for b in balanced):
            return _chosen(balanced, index, FULL_BALANCED)
    return blocks, sources, FAST_PRECISION


def find_content(root: HtmlElement, url: str | None) -> Content:
    """The article's blocks and where they sit. Twin containers found are merged into `root` in place."""
    index = locate.index_blocks(root)
    blocks, sources, mode = _cascade(root, url, index)
    box = locate.container((el, len(b.text)) for b, el in zip(blocks, sources, strict=True) if el is not None)
    if box is not None and (twins := locate.twins(box)):
        locate.merge(box, twins)
        blocks = _blocks(root, url, mode)
        sources = locate.sources((b.text for b in blocks), index)
    return Content(tuple(blocks), tuple(sources), box)
