"""General rules that clean a page's tree before trafilatura sees it, and read what the cleaning removes.

No site's CSS lives here: rules key on text labels (related-news boxes, print and share links), on layout
(a right-aligned bold last line is a byline; a short line of names ends a Vietnamese article) and on
structure (a table holding one image, or a centered line under an image, is a caption).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin

from lxml import etree
from lxml import html as lxml_html

# Headings that open a box of links to other articles. Lower-case, accents kept (text is NFC).
RELATED_LABELS = (
    "tin liên quan", "tin cùng chuyên mục", "cùng chuyên mục", "tin khác", "các tin khác", "tin đã đưa",
    "xem thêm", "đọc thêm", "đọc nhiều", "tin mới", "tin nổi bật", "có thể bạn quan tâm", "bài liên quan",
    "related", "related articles", "related stories", "related news", "read more", "more stories",
    "more on this", "you may also like", "recommended", "most read", "most popular",
    "you may also be interested in", "you might also like", "you might be interested in", "see also",
    "also read", "recommended for you", "more news", "top stories", "read next", "what to read next",
)
# Link texts of page tools that are never article text. The look-ahead (the words' first letters) rejects most
# texts at a third of the cost of trying every word: keep it in step with the words.
TOOL_LINKS = re.compile(
    r"^(?=\s*\[?\s*[ibpcsgetxm])\s*\[?\s*(in bài( viết)?( này)?|bản in|print|in|chia sẻ|share|gửi bài|email|tweet|"
    r"xem phiên bản di động|phiên bản di động|mobile version|bình luận|comments?)\s*\]?\s*$",
    re.I,
)
# Elements that never hold text a reader sees, and ruby readings (trafilatura drops them; gone, the page's
# paragraphs read as trafilatura's do).
NEVER_TEXT = ("script", "style", "noscript", "template", "svg", "iframe", "link", "rt", "rp")
# Page furniture: never article text (trafilatura drops it as well), though it may hold a byline or a date.
FURNITURE = ("nav", "aside", "footer", "menu", "button", "select", "input", "textarea", "object", "embed", "audio",
             "video", "canvas", "map")
_RIGHT = re.compile(r"text-align\s*:\s*right", re.I)
MAX_BYLINE_CHARS = 60
MAX_LABEL_CHARS = 60
MAX_RELATED_LABEL_CHARS = 40


def text_of(el: etree._Element) -> str:
    """The element's text, its descendants' included: `text_content()` by the serialiser, at half the cost of
    the XPath call behind `text_content()`."""
    return etree.tostring(el, method="text", encoding=str, with_tail=False)


def norm_text(text: str | None) -> str:
    """Whitespace collapsed to single spaces, Unicode in NFC (Vietnamese pages mix composed and decomposed)."""
    text = " ".join((text or "").split())
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _label(text: str) -> str:
    return norm_text(text).lower().strip(" :»>-–—[]|•").strip()


_LABEL_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "div", "p", "span", "strong", "b", "li", "header")


def _own_text(el: lxml_html.HtmlElement) -> str | None:
    """The element's own text, or its only child's (<div><b>Tin liên quan</b></div>); cheap: no text_content()."""
    text = el.text
    if (not text or text.isspace()) and len(el) == 1:
        text = el[0].text
    return text


def _related_headings(root: lxml_html.HtmlElement) -> list[lxml_html.HtmlElement]:
    """Elements whose own text is a related-news label ("Tin liên quan", "Related stories")."""
    found: list[lxml_html.HtmlElement] = []
    for el in root.iter(_LABEL_TAGS):
        text = _own_text(el)
        if text and len(text) <= MAX_LABEL_CHARS and not text.isspace() and _label(text) in RELATED_LABELS \
                and len(norm_text(text_of(el))) <= MAX_RELATED_LABEL_CHARS:
            found.append(el)
    return found


def _link_density(el: lxml_html.HtmlElement) -> float:
    total = len(norm_text(text_of(el)))
    if not total:
        return 1.0
    linked = sum(len(norm_text(text_of(a))) for a in el.iter("a"))
    return linked / total


def _attached(el: lxml_html.HtmlElement, root: lxml_html.HtmlElement) -> bool:
    while el is not None:
        if el is root:
            return True
        el = el.getparent()
    return False


_CONTAINERS = ("html", "body", "article", "main")


def drop_related_boxes(root: lxml_html.HtmlElement) -> int:
    """Remove boxes introduced by a related-news label and made mostly of links. Returns how many."""
    dropped = 0
    for el in _related_headings(root):
        if not _attached(el, root) or el is root:
            continue
        label_len = len(norm_text(text_of(el)))
        box = el
        # Climb to the smallest ancestor that holds more than the label: the label plus its links.
        while box.getparent() is not None and box.tag not in _CONTAINERS:
            box = box.getparent()
            if len(norm_text(text_of(box))) > label_len + 5:
                break
        if box.getparent() is None or box.tag in _CONTAINERS or _link_density(box) < 0.5:
            if el.getparent() is not None:
                el.drop_tree()
            continue
        box.drop_tree()
        dropped += 1
    return dropped


def drop_tool_links(root: lxml_html.HtmlElement) -> None:
    """Remove print, share, comment and "mobile version" links and buttons."""
    for a in list(root.iter("a", "button")):
        # .text first: most links have no child elements, and the text of the others costs a serialisation.
        text = a.text if len(a) == 0 else text_of(a)
        if text and len(text) <= MAX_LABEL_CHARS and TOOL_LINKS.match(text) and a.getparent() is not None:
            a.drop_tree()


def _is_right_aligned(el: lxml_html.HtmlElement) -> bool:
    return (el.get("align") or "").lower() == "right" or bool(_RIGHT.search(el.get("style") or ""))


def _all_bold(el: lxml_html.HtmlElement) -> bool:
    text = norm_text(text_of(el))
    bold = norm_text(" ".join(text_of(b) for b in el.iter("b", "strong")))
    return bool(text) and text == bold


def take_bylines(root: lxml_html.HtmlElement) -> list[str]:
    """Remove right-aligned bold short lines (the Vietnamese byline convention); return their texts."""
    names: list[str] = []
    for el in list(root.iter("p", "div")):
        if el.getparent() is None or not _is_right_aligned(el):
            continue
        text = norm_text(text_of(el))
        if text and len(text) <= MAX_BYLINE_CHARS and _all_bold(el) and not text.endswith((".", "?", "!", ":")):
            names.append(text)
            el.drop_tree()
    return names


# "Tin, ảnh: ", "Bài và ảnh: ", "Ảnh: ", "Nhóm phóng viên: " before the names of a signature line.
_SIGNATURE_PREFIX = re.compile(
    r"^(?:(?:tin|bài|ảnh|video|clip|nhóm phóng viên|phóng viên|pv)(?:\s*(?:,|và|-|&)\s*(?:tin|bài|ảnh|video|clip))*"
    r"\s*:\s*)", re.I)
_NAME_SEPARATORS = re.compile(r"\s+-\s+|\s*,\s*|\s+và\s+|\s*&\s*")
MAX_NAME_WORDS = 5


def _is_name(text: str) -> bool:
    words = text.split()
    return 2 <= len(words) <= MAX_NAME_WORDS and all(w[:1].isupper() and not any(c.isdigit() for c in w) for w in words)


def signature(line: str) -> list[str]:
    """Names signed on an article's last line ("Nguyễn Đình Quân", "Tin, ảnh: Vũ Phương Thảo"), if it is one."""
    line = norm_text(line)
    # "Theo Dân Trí" credits the source a story was taken from, not its author.
    if len(line) > MAX_BYLINE_CHARS or line.endswith((".", "?", "!", ";")) or line.lower().startswith("theo "):
        return []
    names = [n for n in _NAME_SEPARATORS.split(_SIGNATURE_PREFIX.sub("", line)) if n]
    return names if names and all(_is_name(n) for n in names) else []


def image_src(img: lxml_html.HtmlElement, base_url: str | None) -> str | None:
    for attr in ("data-src", "data-original", "src"):
        src = (img.get(attr) or "").strip()
        if src and not src.startswith("data:"):
            return urljoin(base_url, src) if base_url else src
    return None


_CENTER = re.compile(r"text-align\s*:\s*center", re.I)
MAX_CAPTION_CHARS = 300


def _is_centered(el: lxml_html.HtmlElement) -> bool:
    while el is not None:
        if (el.get("align") or "").lower() == "center" or _CENTER.search(el.get("style") or "") or el.tag == "center":
            return True
        el = el[0] if len(el) == 1 and not (el.text or "").strip() else None
    return False


def _text_sibling(el: lxml_html.HtmlElement, forward: bool) -> lxml_html.HtmlElement | None:
    """The nearest element with text after (or before) this one, looking a few levels up if need be."""
    for _ in range(3):
        sib = el.getnext() if forward else el.getprevious()
        while sib is not None and not text_of(sib).strip():
            sib = sib.getnext() if forward else sib.getprevious()
        if sib is not None or el.getparent() is None:
            return sib
        el = el.getparent()
    return None


def _caption_below(img: lxml_html.HtmlElement) -> str | None:
    """A short centered line right under a block that holds only the image, amid text that is not centered:
    the classic caption layout (a page that centers every paragraph has no such captions)."""
    block = img
    # Climb while the parent holds nothing but this block (cheap: no text_content() of big containers).
    while (parent := block.getparent()) is not None and len(parent) == 1 \
            and not (parent.text or "").strip() and not (block.tail or "").strip():
        block = parent
    below = block.getnext()
    if below is None or not _is_centered(below) or next(below.iterdescendants("img"), None) is not None:
        return None
    around = [el for el in (_text_sibling(block, False), _text_sibling(below, True)) if el is not None]
    if not around or any(_is_centered(el) for el in around):
        return None
    text = norm_text(text_of(below))
    return text if 0 < len(text) <= MAX_CAPTION_CHARS else None


def collect_captions(root: lxml_html.HtmlElement, base_url: str | None) -> dict[str, str]:
    """Map image URL to caption: <figure>/<figcaption>, layout tables that hold one image, and a centered line
    right under an image."""
    captions: dict[str, str] = {}
    for fig in root.iter("figure"):
        cap = next(fig.iterdescendants("figcaption"), None)
        imgs = list(fig.iter("img"))
        if cap is not None and len(imgs) == 1:
            src = image_src(imgs[0], base_url)
            text = norm_text(text_of(cap))
            if src and text:
                captions[src] = text
    for table in root.iter("table"):
        imgs = list(table.iter("img"))
        if len(imgs) != 1 or next(table.iterdescendants("table"), None) is not None:
            continue
        src = image_src(imgs[0], base_url)
        text = norm_text(text_of(table))
        if src and text and len(text) < 500:
            captions.setdefault(src, text)
    for img in root.iter("img"):
        # The layout first: it is cheaper than resolving the image's URL, and few images have such a caption.
        below = _caption_below(img)
        if below and (src := image_src(img, base_url)) and src not in captions:
            captions[src] = below
    return captions
