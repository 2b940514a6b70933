"""Precision filters on extracted blocks: the repeated headline, promotional one-liners, paragraphs that are
only a link to another story (and their label), labels, datelines, and captions that belong to images.

Each rule keys on wording or structure seen across many sites, never on one site's markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml.html import HtmlElement

from worker import boilerplate, locate
from worker.boilerplate import text_of
from worker.render import Block

# A block that opens like this promotes something else: another story, an app, a newsletter.
PROMO = re.compile(
    r"""^\W*(?:
      (?:read|see|watch|listen)\s+(?:more|also|next)\b
    | related(?:\s+(?:articles?|stories|news|content|coverage|posts?|links?|reading|topics?))?\s*(?:[:\-–—]|$)
    | also\s+read\b | also\s+on\s+\S+ | don'?t\s+miss\b | you\s+(?:may|might)\s+(?:also\s+)?like\b
    | recommended(?:\s+for\s+you)?\s*(?:[:\-–—]|$) | more\s+from\s+\S+ | more\s+on\s+this(?:\s+story)?\b
    | click\s+here\b | (?:get|download)\s+the\s+.{0,40}\bapp\b
    | leggi\s+anche\b | leia\s+tamb[ée]m\b | veja\s+tamb[ée]m\b | lees\s+ook\b | lesen\s+sie\s+auch\b
    | voir\s+aussi\b | lire\s+aussi\b | tin\s+li[êe]n\s+quan\b | xem\s+th[êe]m\b | đọc\s+th[êe]m\b
    )""",
    re.I | re.X,
)
MAX_PROMO_CHARS = 300
# A paragraph or list item this short and this much link is a pointer to another page.
MAX_LINK_BLOCK_CHARS = 200
LINK_BLOCK_SHARE = 0.8
_LINK_BLOCK_TAGS = frozenset({"p", "li"})
# ... or any length when it is three or more short links: "tag one, tag two, tag three".
MIN_TAG_LINKS = 3
MAX_TAG_CHARS = 40
# Whole blocks that only label or operate the page ("Tags", "Từ khóa", "[Quay lại]").
LABELS = frozenset({
    "tags", "tag", "keywords", "topics", "từ khóa", "chủ đề", "share", "share this", "share this article",
    "chia sẻ", "advertisement", "quảng cáo", "back", "back to top", "quay lại", "trở về", "về đầu trang",
    "lên đầu trang", "về trang chủ",
})
# A dateline: a full date, a few words ("Updated", "Thứ Tư", "de janeiro") and nothing else.
MAX_DATELINE_CHARS = 60
MAX_DATELINE_LETTERS = 25
_FULL_DATE = re.compile(
    r"""\b\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)?\d\d\b                          # 26/12/2012, 11/19/2019
      | \b(?:19|20)\d\d-\d\d-\d\d\b                                        # 2019-11-19
      | \b\d{1,2}\.?\s+(?:de\s+)?\w{3,12}\.?,?\s+(?:de\s+)?(?:19|20)\d\d\b      # 22 de janeiro de 2018
      | \b\w{3,9}\.?\s+\d{1,2},?\s+(?:19|20)\d\d\b                              # Nov. 19, 2019""",
    re.X,
)
_SQUASH = re.compile(r"\W+")
# A label this short, followed by link teasers that were dropped, introduced them.
MAX_TEASER_LABEL_CHARS = 40


def is_promo(text: str) -> bool:
    return len(text) <= MAX_PROMO_CHARS and bool(PROMO.match(text))


def _paragraph_of(source: HtmlElement) -> HtmlElement | None:
    """The paragraph or list item a block comes from: itself, or the list item or link its heading sits in."""
    if source.tag in _LINK_BLOCK_TAGS:
        return source
    return next((a for a, _ in zip(source.iterancestors(), range(2), strict=False) if a.tag in ("li", "a")), None)


def is_link_block(text: str, source: HtmlElement) -> bool:
    """A paragraph or list item made of links: a "see also" teaser, or a list of tags. A bare URL is a citation."""
    para = _paragraph_of(source)
    if para is None or text.startswith(("http://", "https://", "www.")) or locate.link_share(para) < LINK_BLOCK_SHARE:
        return False
    links = [len(text_of(a).strip()) for a in para.iter("a")]
    tags = len(links) >= MIN_TAG_LINKS and sum(links) <= MAX_TAG_CHARS * len(links)
    return len(text) <= MAX_LINK_BLOCK_CHARS or tags


def is_label(text: str) -> bool:
    return text.strip(" :[]()|»«>•-").lower() in LABELS


def is_dateline(text: str) -> bool:
    """A block that only dates the article: "Thứ Tư, 26/12/2012 17:14", "UPDATED: Tue., Nov. 19, 2019"."""
    # "@": "— Name (@handle) November 3, 2019" closes an embedded post, which is article text.
    if len(text) > MAX_DATELINE_CHARS or "@" in text or not _FULL_DATE.search(text):
        return False
    return sum(ch.isalpha() for ch in text) <= MAX_DATELINE_LETTERS


def _squash(text: str) -> str:
    return _SQUASH.sub(" ", text.lower()).strip()


def headline_blocks(texts: list[str], headlines: list[str]) -> int:
    """How many leading blocks repeat the headline (or the start of a longer title holding it)."""
    heads = {_squash(h) for h in headlines if h}
    count = 0
    for text in texts:
        key = _squash(text)
        if len(text) > 300 or not key:
            break
        if not any(key == h or (len(key) > 15 and h.startswith(key)) for h in heads):
            break
        count += 1
    return count


def _is_teaser_label(text: str) -> bool:
    return len(text) <= MAX_TEASER_LABEL_CHARS and text[-1:] not in ".?!"


def article_blocks(
    blocks: Sequence[Block], sources: Sequence[HtmlElement | None], captions: set[str], headlines: list[str]
) -> list[Block]:
    """The blocks that are article text, the repeated headline at the top left out."""
    kept: list[Block] = []
    run = 0  # link teasers dropped in a row
    for block, source in zip(blocks, sources, strict=True):
        text = block.text
        if source is not None and is_link_block(text, source):
            run += 1
            if run == 2 and kept and _is_teaser_label(kept[-1].text):
                kept.pop()  # the label that introduced the teasers ("More stories", "Tin khác")
            continue
        run = 0
        if text in captions or boilerplate.TOOL_LINKS.match(text) or is_promo(text) or is_label(text) \
                or is_dateline(text):
            continue
        kept.append(block)
    return kept[headline_blocks([b.text for b in kept], headlines):]
