"""Publication dates: ISO dates from meta tags and JSON-LD, and the day-first dates Vietnamese pages print
near the headline ("Thứ Ba, 04/08/2020 09:30", "Thứ năm, 6/8/2020, 14:05 (GMT+7)").

Day-first is trusted only with a Vietnamese cue (a weekday, "ngày", "GMT+7") or on a Vietnamese page; such
a date without an offset is Vietnam's time (UTC+7, the country's only zone, no daylight saving).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lxml import etree
from lxml import html as lxml_html

from worker.boilerplate import text_of

VIETNAM = timezone(timedelta(hours=7))
# The date itself, then what may stand before it (a weekday, "ngày") and after it (a time, "GMT+7").
_DATE = re.compile(r"(?<![\d/.-])(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4}|\d{2})(?![\d/.-]?\d)")
_BEFORE = re.compile(
    r"(?P<weekday>th[ứu]\s*(?:hai|ba|t[ưu]|n[ăa]m|s[áa]u|b[ảa]y|[2-7])|ch[ủu]\s*nh[ậa]t)?\s*,?\s*(?P<ngay>ng[àa]y)?\s*$",
    re.I,
)
_AFTER = re.compile(
    r"^\s*[,|-]?\s*(?:l[úu]c\s*)?(?P<H>\d{1,2})\s*[:hg]\s*(?P<M>\d{2})(?!\d)"
    r"(?:\s*(?P<half>s[áa]ng|tr[ưu]a|chi[ềe]u|t[ốo]i|am|pm|sa|ch)\b)?"
    r"(?:\s*\(?\s*GMT\s*(?P<tz>[+-]\s*\d{1,2})(?::?00)?\s*\)?)?",
    re.I,
)
_AFTERNOON = ("chi", "tố", "to", "pm", "ch")
_CONTEXT = 40
# How far (in characters of page text) a dateline may sit from the headline.
_NEAR_HEADLINE = 2000
# Plain strings (no link back to their element); the filter only when the page still has scripts or styles.
_TEXT_RUNS = etree.XPath(".//text()[not(parent::script) and not(parent::style) and not(parent::noscript)]",
                         smart_strings=False)
_ALL_TEXT_RUNS = etree.XPath(".//text()", smart_strings=False)
_HAS_CODE = etree.XPath("boolean(.//script | .//style | .//noscript)")
# A cheap scan for what every dd/mm/yy date starts with: the full pattern is tried only where it matches.
_DATE_START = re.compile(r"\d{1,2}[/.-]\d")


def parse_iso(value: str | None) -> datetime | None:
    """An ISO 8601 date ("2015-03-23 08:06 +07:00" and "…Z" included), or None."""
    if not value:
        return None
    value = value.strip().replace("Z", "+00:00")
    value = re.sub(r"\s+([+-]\d{2}:?\d{2})$", r"\1", value)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Datelines:
    """The day-first date printed closest to the headline: `cued` counts only dates with a Vietnamese cue (a
    weekday, "ngày", "GMT+7"); `bare` also counts a bare "dd/mm/yyyy hh:mm", day-first on Vietnamese pages."""

    cued: datetime | None = None
    bare: datetime | None = None

    def best(self, vietnamese: bool) -> datetime | None:
        return self.bare if vietnamese else self.cued


def _day_first(text: str, m: re.Match[str]) -> tuple[datetime, bool] | None:
    """The date of a match and whether a cue vouches for it; None for a bare date without a time."""
    before = _BEFORE.search(text, max(0, m.start() - _CONTEXT), m.start())
    after = _AFTER.match(text[m.end():m.end() + _CONTEXT])
    cue = bool(before and (before["weekday"] or before["ngay"])) or bool(after and after["tz"])
    # A bare date (no cue, no time) is too often one of a list of other stories' dates.
    if not (cue or after):
        return None
    year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
    hour, minute, offset = 0, 0, VIETNAM
    if after:
        hour, minute = int(after["H"]), int(after["M"])
        if (after["half"] or "").lower().startswith(_AFTERNOON) and hour < 12:
            hour += 12
        if after["tz"]:
            offset = timezone(timedelta(hours=int(after["tz"].replace(" ", ""))))
    try:
        return datetime(year, int(m["m"]), int(m["d"]), hour, minute, tzinfo=offset), cue
    except ValueError:
        return None


def _nearest(found: list[tuple[int, datetime]], anchor: int) -> datetime | None:
    if anchor < 0:
        return found[0][1] if found else None
    near = [(abs(at - anchor), at < anchor, when) for at, when in found if abs(at - anchor) <= _NEAR_HEADLINE]
    return min(near)[2] if near else None


def _dates_in(text: str) -> Iterator[re.Match[str]]:
    """`_DATE.finditer(text)`, three times faster: `_DATE` opens with a look-behind, which makes the regex
    engine try it at every position; `_DATE_START` finds the only positions where it can match."""
    pos = 0
    while (start := _DATE_START.search(text, pos)) is not None:
        m = _DATE.match(text, start.start())
        if m is None:
            pos = start.start() + 1
        else:
            yield m
            pos = m.end()


def datelines(root: lxml_html.HtmlElement, latest: datetime) -> Datelines:
    """Day-first dates printed closest to the headline (the first ones on a page without <h1>)."""
    body = root.find("body")
    body = root if body is None else body
    text = "\n".join((_TEXT_RUNS if _HAS_CODE(body) else _ALL_TEXT_RUNS)(body))
    headline = next(body.iter("h1"), None)
    head_text = " ".join(text_of(headline).split())[:30] if headline is not None else ""
    anchor = text.find(head_text) if head_text else -1
    cued: list[tuple[int, datetime]] = []
    bare: list[tuple[int, datetime]] = []
    for m in _dates_in(text):
        found = _day_first(text, m)
        if found is not None and found[0] <= latest:
            (cued if found[1] else bare).append((m.start(), found[0]))
    return Datelines(_nearest(cued, anchor), _nearest(sorted(cued + bare), anchor))
