"""Trafilatura's XML body as plain-text blocks: paragraphs, headings, list items and table rows.

Line breaks inside a paragraph stay line breaks (never glued words); containers and layout tables are looked
through with their loose text kept; a data table becomes one block per row, its cells joined by tabs.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from worker.boilerplate import norm_text

# Elements whose content flows as one block of text.
_TEXT_BLOCKS = frozenset({"p", "head", "code", "quote", "item", "cell", "ab", "fw"})
_BLOCK_CHILDREN = frozenset({"p", "head", "list", "table", "quote", "code", "div", "section"})
_TABLE_PARTS = frozenset({"row", "cell"})


_BREAK = "\x00"  # stands for <lb/> until the source's own newlines are collapsed into spaces


@dataclass(frozen=True)
class Block:
    """One rendered block: `kind` is the XML tag that produced it ("p", "head", "item", "row", ...)."""

    kind: str
    text: str


def _walk_inline(e: etree._Element, parts: list[str]) -> None:
    """Append the text of an element and its descendants to `parts`, `_BREAK` standing for line breaks."""
    if e.tag == "lb":
        parts.append(_BREAK)
        return
    if e.text and e.tag != "graphic":
        parts.append(e.text)
    for child in e:
        _walk_child(child, parts)


def _walk_child(child: etree._Element, parts: list[str]) -> None:
    """A child element inside a text block, then its tail: blocks, rows, cells and items on lines of their own."""
    block = child.tag in _BLOCK_CHILDREN or child.tag in _TABLE_PARTS or child.tag == "item"
    if block:
        parts.append(_BREAK)
    _walk_inline(child, parts)
    if block:
        parts.append(_BREAK)
    if child.tail:
        parts.append(child.tail)


def _lines(parts: list[str]) -> str:
    lines = (norm_text(line) for line in "".join(parts).split(_BREAK))
    return "\n".join(line for line in lines if line)


def inline_text(el: etree._Element) -> str:
    """Text of an element with `<lb/>` as a line break; whitespace collapsed within each line."""
    parts: list[str] = []
    _walk_inline(el, parts)
    return _lines(parts)


def _has_block_child(el: etree._Element) -> bool:
    """True for containers: elements holding blocks, rows and cells of layout tables included."""
    return any(c.tag in _BLOCK_CHILDREN or (c.tag in _TABLE_PARTS and _has_block_child(c)) for c in el)


def render_blocks(body: etree._Element) -> list[Block]:
    """The non-empty blocks of a body in document order."""
    out: list[Block] = []

    def text_block(kind: str, el: etree._Element) -> None:
        text = inline_text(el)
        if text:
            out.append(Block(kind, text))

    def walk(el: etree._Element) -> None:
        tag = el.tag
        if tag == "graphic":
            return  # images come from the page itself (`worker.locate`), with their captions
        if tag == "list":
            for item in el:
                if item.tag == "item" and not _has_block_child(item):
                    text_block("item", item)
                elif isinstance(item.tag, str):
                    walk(item)
        elif tag == "table" and _has_block_child(el):
            walk_container(el)  # a layout table: its cells hold paragraphs
        elif tag == "table":
            for row in el.iter("row"):
                cells = [inline_text(c).replace("\n", " ") for c in row if c.tag == "cell"]
                line = "\t".join(c for c in cells if c)
                if line:
                    out.append(Block("row", line))
        elif not _has_block_child(el):
            text_block(tag if tag in _TEXT_BLOCKS else "p", el)
        else:
            walk_container(el)

    def walk_container(el: etree._Element) -> None:
        # Loose text and inline children between blocks form paragraphs of their own: a run of text parts,
        # read from the body in place (as the text of a <p> holding copies of them would read).
        run = [el.text] if el.text else []
        for child in el:
            if not isinstance(child.tag, str):
                continue
            if child.tag in _BLOCK_CHILDREN or _has_block_child(child):
                run_block(run)
                walk(child)
                run = [child.tail] if child.tail else []
            else:
                _walk_child(child, run)
        run_block(run)

    def run_block(parts: list[str]) -> None:
        text = _lines(parts)
        if text:
            out.append(Block("p", text))

    walk_container(body)
    return out

