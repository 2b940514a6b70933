"""Bytes to Unicode for HTML: HTTP header charset, then BOM, then `<meta charset>`, then detection.

The result is NFC-normalised, since Vietnamese text arrives both composed and decomposed.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _known(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "ignore")
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type or "")
    return _known(match.group(1)) if match else None


def sniff_encoding(body: bytes, content_type: str | None = None) -> str:
    """The encoding to decode `body` with, by the order of precedence in the module docstring."""
    declared = charset_from_content_type(content_type)
    if declared:
        return declared
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    match = _META_CHARSET.search(body[:8192])
    meta = _known(match.group(1)) if match else None
    if meta:
        # Pages often declare a legacy charset while serving UTF-8; trust the declaration only if it decodes.
        if meta.startswith("utf-16"):
            meta = "utf-8"
        if meta == "utf-8" or _decodes(body, "utf-8") is None:
            return meta
        return "utf-8"
    if _decodes(body, "utf-8") is not None:
        return "utf-8"
    best = from_bytes(body[:200_000]).best()
    return best.encoding if best else "windows-1252"


def _decodes(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        return None


def decode_html(body: bytes, content_type: str | None = None) -> str:
    encoding = sniff_encoding(body, content_type)
    text = body.decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return unicodedata.normalize("NFC", text)
