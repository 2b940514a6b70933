"""General pre-extraction rules that clean a page's tree before trafilatura sees it.

No site's CSS lives here: rules key on text labels (related-news boxes, print and share links), on layout
(a right-aligned bold last line is a byline) and on structure (a table holding one image is a caption).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin

from lxml import html as lxml_html

# Headings that open a box of links to other articles. Lower-case, accents kept (text is NFC).
RELATED_LABELS = (
    "tin liên quan", "tin cùng chuyên mục", "cùng chuyên mục", "tin khác", "các tin khác", "tin đã đưa",
    "xem thêm", "đọc thêm", "đọc nhiều", "tin mới", "tin nổi bật", "có thể bạn quan tâm", "bài liên quan",
    "related", "related articles", "related stories", "related news", "read more", "more stories",
    "more on this", "you may also like", "recommended", "most read", "most popular",
)
# Link texts of page tools that are never article text.
TOOL_LINKS = re.compile(
    r"^\s*\[?\s*(in bài( viết)?( này)?|bản in|print|in|chia sẻ|share|gửi bài|email|tweet|"
    r"xem phiên bản di động|phiên bản di động|mobile version|bình luận|comments?)\s*\]?\s*$",
    re.I,
)
_RIGHT = re.compile(r"text-align\s*:\s*right", re.I)
_WS = re.compile(r"\s+")
MAX_BYLINE_CHARS = 60


def norm_text(text: str | None) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFC", text or "")).strip()


def _label(text: str) -> str:
    return norm_text(text).lower().strip(" :»>-–—[]|•").strip()


def _heading_text(el: lxml_html.HtmlElement) -> str | None:
    """The element's own short text, if it could be a box label (cheap: no walk over descendants)."""
    text = el.text
    if (not text or not text.strip()) and len(el) == 1:
        text = el[0].text  # <div><b>Tin liên quan</b></div>, <h3><a>Tin khác</a></h3>
    if not text or len(text) > 60:
        return None
    return text


def _is_related_heading(el: lxml_html.HtmlElement) -> bool:
    text = _heading_text(el)
    if text is None or _label(text) not in RELATED_LABELS:
        return False
    return len(norm_text(el.text_content())) <= 40


def _link_density(el: lxml_html.HtmlElement) -> float:
    total = len(norm_text(el.text_content()))
    if not total:
        return 1.0
    linked = sum(len(norm_text(a.text_content())) for a in el.iter("a"))
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
    headings = [
        el for el in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "div", "p", "span", "strong", "b", "li", "header")
        if _is_related_heading(el)
    ]
    for el in headings:
        if not _attached(el, root) or el is root:
            continue
        label_len = len(norm_text(el.text_content()))
        box = el
        # Climb to the smallest ancestor that holds more than the label: the label plus its links.
        while box.getparent() is not None and box.tag not in _CONTAINERS:
            box = box.getparent()
            if len(norm_text(box.text_content())) > label_len + 5:
                break
        if box.getparent() is None or box.tag in _CONTAINERS or _link_density(box) < 0.5:
            if el.getparent() is not None:
                el.drop_tree()
            continue
        box.drop_tree()
        dropped += 1
    return dropped


_SHORT_LINKS = "//a[string-length(normalize-space(.)) < 40] | //button[string-length(normalize-space(.)) < 40]"


def drop_tool_links(root: lxml_html.HtmlElement) -> None:
    for a in root.xpath(_SHORT_LINKS):
        if a.getparent() is not None and TOOL_LINKS.match(a.text_content() or ""):
            a.drop_tree()


def _is_right_aligned(el: lxml_html.HtmlElement) -> bool:
    return (el.get("align") or "").lower() == "right" or bool(_RIGHT.search(el.get("style") or ""))


def _all_bold(el: lxml_html.HtmlElement) -> bool:
    text = norm_text(el.text_content())
    bold = norm_text(" ".join(b.text_content() for b in el.iter("b", "strong")))
    return bool(text) and text == bold


def take_bylines(root: lxml_html.HtmlElement) -> list[str]:
    """Remove right-aligned bold short lines (the Vietnamese byline convention); return their texts."""
    names: list[str] = []
    for el in list(root.iter("p", "div")):
        if el.getparent() is None or not _is_right_aligned(el):
            continue
        text = norm_text(el.text_content())
        if text and len(text) <= MAX_BYLINE_CHARS and _all_bold(el) and not text.endswith((".", "?", "!", ":")):
            names.append(text)
            el.drop_tree()
    return names


def _image_src(img: lxml_html.HtmlElement, base_url: str | None) -> str | None:
    for attr in ("data-src", "data-original", "src"):
        src = (img.get(attr) or "").strip()
        if src and not src.startswith("data:"):
            return urljoin(base_url, src) if base_url else src
    return None


def collect_captions(root: lxml_html.HtmlElement, base_url: str | None) -> dict[str, str]:
    """Map image URL to caption from <figure>/<figcaption> and from layout tables that hold one image."""
    captions: dict[str, str] = {}
    for fig in root.iter("figure"):
        cap = fig.find(".//figcaption")
        imgs = list(fig.iter("img"))
        if cap is not None and len(imgs) == 1:
            src = _image_src(imgs[0], base_url)
            text = norm_text(cap.text_content())
            if src and text:
                captions[src] = text
    for table in root.iter("table"):
        imgs = list(table.iter("img"))
        if len(imgs) != 1 or table.find(".//table") is not None:
            continue
        src = _image_src(imgs[0], base_url)
        text = norm_text(table.text_content())
        if src and text and len(text) < 500:
            captions.setdefault(src, text)
    return captions
