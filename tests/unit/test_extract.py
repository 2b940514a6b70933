"""Extraction: real Vietnamese pages against ground truth and golden files, and the general rules on small pages."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html

from worker import dates, metadata
from worker.errors import NotAnArticle
from worker.extract import extract_article, warm

DATA = Path(__file__).parent.parent / "data"
VNEXPRESS_URL = "https://vnexpress.net/dau-bung-keo-dai-phat-hien-ung-thu-lymphoma-ruot-non-4954454.html"
PARA = " ".join(["Đây là một đoạn văn dài của bài báo, có đủ chữ để bộ trích xuất coi là nội dung chính."] * 3)


def page(name: str) -> str:
    for folder in ("pages", "site/pages"):
        path = DATA / folder / name
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(name)


def test_vnexpress_against_ground_truth() -> None:
    truth = json.loads((DATA / "ground-truth" / "vnexpress_2025-10-22_fundus.json").read_text())["V1"]
    got = extract_article(page("vnexpress_2025-10-22_fundus.html"), VNEXPRESS_URL)
    assert got.title == truth["title"]
    assert list(got.authors) == truth["authors"]
    assert got.published_at == datetime.fromisoformat(truth["publishing_date"])
    assert got.lead == truth["body"]["summary"][0]
    assert got.language == "vi"
    assert got.section == "Sức khỏe"
    assert set(truth["topics"]) <= set(got.tags)
    captions = {i["caption"] for i in truth["images"]}
    expected = [p for s in truth["body"]["sections"] for p in s["paragraphs"]]
    # Captions belong to images, not to the text.
    body = [p for p in expected if not any(p.startswith(c) for c in captions)]
    assert got.text.split("\n\n") == body
    assert "Lê Phương" not in got.text
    assert len(got.images) == 1
    assert got.images[0].caption and got.images[0].caption.startswith("Y bác sĩ nội soi cho bệnh nhân.")


@pytest.mark.parametrize("name", ["tuoitre_2015-03-23_homepage.html", "myfeed2012_thanhnien_homepage.html"])
def test_home_pages_are_not_articles(name: str) -> None:
    with pytest.raises(NotAnArticle):
        extract_article(page(name), "https://example.vn/")


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "<script>var x = 1;</script>" * 50])
def test_empty_pages_are_not_articles(html: str) -> None:
    with pytest.raises(NotAnArticle):
        extract_article(html, "https://example.vn/a")


def _doc(body: str) -> str:
    return f"<html lang='vi'><head><title>Tiêu đề bài - Báo X</title></head><body><article><h1>Tiêu đề bài</h1>{body}</article></body></html>"


def test_right_aligned_bold_last_line_is_the_author() -> None:
    got = extract_article(_doc(f"<p>{PARA}</p><p>{PARA}</p><p style='text-align: right'><b>Minh Anh</b></p>"))
    assert got.authors == ("Minh Anh",)
    assert "Minh Anh" not in got.text
    assert got.title == "Tiêu đề bài"


def test_related_news_box_print_link_and_table_caption_are_handled() -> None:
    html = _doc(
        f"<p>{PARA}</p>"
        "<table><tr><td><img src='/img/a.jpg'></td></tr><tr><td>Người dân đi bộ trên phố. Ảnh: T.L</td></tr></table>"
        f"<p>{PARA}</p>"
        "<div class='box'><h3>Tin liên quan</h3><ul><li><a href='/1'>Bài khác một</a></li>"
        "<li><a href='/2'>Bài khác hai nói về chuyện khác</a></li></ul></div>"
        "<p><a href='/print'>In bài viết</a> <a href='/share'>Chia sẻ</a></p>"
    )
    got = extract_article(html, "https://x.vn/a.html")
    assert "Tin liên quan" not in got.text and "Bài khác" not in got.text
    assert "In bài viết" not in got.text and "Chia sẻ" not in got.text
    assert "|" not in got.text
    assert got.images[0].url == "https://x.vn/img/a.jpg"
    assert got.images[0].caption == "Người dân đi bộ trên phố. Ảnh: T.L"
    assert "Người dân đi bộ" not in got.text
    assert got.text.count(PARA.strip()) == 2
    assert not got.text.startswith("Tiêu đề bài")  # the headline is the title, not the text


GOLDEN = sorted(p.name for p in (DATA / "site" / "pages").glob("*.html")) + ["tuoitre_2015-03-23_mobile.html"]


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name: str) -> None:
    got = asdict(extract_article(page(name), f"https://example.vn/{name}"))
    del got["simhash"], got["content_hash"]  # set by extract_page, not extract_article; tested in test_neardup_and_flags
    got = json.loads(json.dumps(got, default=str, ensure_ascii=False))
    path = DATA / "expected" / (name.removesuffix(".html") + ".json")
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


def test_weak_ground_truth_of_2012_pages() -> None:
    expectations = json.loads((DATA / "ground-truth" / "myfeed2012_expectations.json").read_text())
    case = expectations["myfeed2012_thanhnien1.html"]["manual"]
    got = extract_article(page("myfeed2012_thanhnien1.html"), expectations["myfeed2012_thanhnien1.html"]["url"])
    assert got.title == case["title"]
    for snippet in case["text_contains"]:
        assert snippet in got.text


# --- general rules, one small page each ----------------------------------------------------------------

def _page(body: str, head: str = "", lang: str = "vi") -> str:
    return (f"<html lang='{lang}'><head><title>Tiêu đề bài - Báo X</title>{head}</head>"
            f"<body><article><h1>Tiêu đề bài</h1>{body}</article></body></html>")


@pytest.mark.parametrize(("dateline", "expected"), [
    pytest.param("Thứ Ba, 04/08/2020 09:30", "2020-08-04T09:30:00+07:00", id="weekday-slash-time"),
    pytest.param("Thứ năm, 6/8/2020, 14:05 (GMT+7)", "2020-08-06T14:05:00+07:00", id="vnexpress-gmt"),
    pytest.param("Thứ Ba, 25/12/2012 - 10:03", "2012-12-25T10:03:00+07:00", id="dash-before-time"),
    pytest.param("Cập nhật thứ hai, ngày 24/12/12 11:05 tối", "2012-12-24T23:05:00+07:00", id="two-digit-year-evening"),
    pytest.param("23/03/2015 08:06 GMT+7", "2015-03-23T08:06:00+07:00", id="no-weekday-gmt"),
    pytest.param("19/12/2012 17:41", "2012-12-19T17:41:00+07:00", id="bare-date-time-on-vietnamese-page"),
])
def test_day_first_dateline_by_the_headline(dateline: str, expected: str) -> None:
    got = extract_article(_page(f"<p class='time'>{dateline}</p><p>{PARA}</p><p>{PARA}</p>"), "https://x.vn/a")
    assert got.published_at == datetime.fromisoformat(expected)
    assert dateline not in got.text  # a dateline is not article text


@pytest.mark.parametrize(("head", "body", "expected"), [
    pytest.param("<meta property='article:published_time' content='2020-08-04T10:00:00+07:00'>",
                 "<p>Thứ Ba, 05/08/2020 09:30</p>", "2020-08-04T10:00:00+07:00", id="declared-date-wins"),
    pytest.param("<meta itemprop='datePublished' content='2012-12-25'>", "<p>Thứ Ba, 25/12/2012 - 10:03</p>",
                 "2012-12-25T10:03:00+07:00", id="dateline-adds-time-to-declared-day"),
    pytest.param("<meta itemprop='datePublished' content='2012-12-24'>", "<p>Thứ Ba, 25/12/2012 - 10:03</p>",
                 "2012-12-24T00:00:00", id="declared-day-wins-over-other-day"),
])
def test_declared_dates_and_datelines(head: str, body: str, expected: str) -> None:
    got = extract_article(_page(f"{body}<p>{PARA}</p><p>{PARA}</p>", head), "https://x.vn/a")
    assert got.published_at == datetime.fromisoformat(expected)


def test_a_list_of_bare_dates_is_not_a_dateline() -> None:
    other = "".join(f"<li><a href='/{i}'>Tin khác số {i}</a> | {i}/12/2012</li>" for i in range(1, 4))
    root = lxml_html.document_fromstring(_page(f"<p>{PARA}</p><ul>{other}</ul>"))
    assert dates.datelines(root, datetime.now().astimezone()).best(vietnamese=True) is None


@pytest.mark.parametrize(("name", "host", "expected"), [
    pytest.param("2003-2011, Báo Thanh Niên", "thanhnien.com.vn", "Báo Thanh Niên", id="copyright-years"),
    pytest.param("Tin tức thời sự - Báo Tuổi Trẻ", "tuoitre.vn", "Báo Tuổi Trẻ", id="tagline-and-name"),
    pytest.param("Báo Tuổi Trẻ - Tin tức thời sự", "tuoitre.vn", "Báo Tuổi Trẻ", id="name-first"),
    pytest.param("Tin tức thời sự - Báo Tuổi Trẻ", None, "Báo Tuổi Trẻ", id="no-host-name-last"),
    pytest.param("© 2020 VnExpress", "vnexpress.net", "VnExpress", id="copyright-sign"),
    pytest.param("@nytimes", "nytimes.com", "nytimes", id="twitter-handle"),
    pytest.param("vnexpress.net", "vnexpress.net", "vnexpress.net", id="already-clean"),
])
def test_site_name_cleanup(name: str, host: str | None, expected: str) -> None:
    assert metadata.clean_site_name(name, host) == expected


@pytest.mark.parametrize(("last_line", "authors"), [
    pytest.param("Tin, ảnh: Vũ Phương Thảo", ("Vũ Phương Thảo",), id="credit-prefix"),
    pytest.param("Nguyễn Đình Quân", ("Nguyễn Đình Quân",), id="bare-name"),
    pytest.param("Quang Phong - Tùng Nguyên", ("Quang Phong", "Tùng Nguyên"), id="two-names"),
    pytest.param("Theo Dân Trí", (), id="source-credit-is-not-an-author"),
    pytest.param("Hà Nội sẽ có thêm 3 cây cầu mới.", (), id="sentence"),
])
def test_last_short_line_signs_a_vietnamese_article(last_line: str, authors: tuple[str, ...]) -> None:
    got = extract_article(_page(f"<p>{PARA}</p><p>{PARA}</p><p>{last_line}</p>"), "https://x.vn/a")
    assert got.authors == authors
    assert last_line in got.text  # not bold and right-aligned: it stays where the page printed it


@pytest.mark.parametrize("block", [
    pytest.param("<p>READ MORE: Another story about something else entirely</p>", id="read-more"),
    pytest.param("<p>Xem thêm: Bài khác về chuyện khác</p>", id="xem-them"),
    pytest.param("<p><a href='/other-story'>A headline of another story on this site</a></p>", id="link-teaser"),
    pytest.param("<div><a href='/x'><img src='/x.jpg'><h3>Milan Design Week: another story on this site</h3></a></div>",
                 id="headline-inside-a-link"),
    pytest.param("<p>" + ", ".join(f"<a href='/tag/{i}'>từ khóa số {i} của bài</a>" for i in range(12)) + "</p>",
                 id="long-list-of-tag-links"),
    pytest.param("<p>Từ khóa</p>", id="tag-label"),
    pytest.param("<p>UPDATED: Tue., Nov. 19, 2019</p>", id="dateline"),
])
def test_precision_filters(block: str) -> None:
    # Two different paragraphs: trafilatura drops a paragraph that repeats the one before it.
    got = extract_article(_page(f"<p>{PARA}</p>{block}<p>Đoạn hai. {PARA}</p>"), "https://x.vn/a")
    assert lxml_html.fromstring(block).text_content().strip() not in got.text
    assert got.text.count(PARA.strip()) == 2


def test_a_link_inside_a_sentence_is_kept() -> None:
    linked = "Theo <a href='/a'>báo cáo của Bộ Y tế</a>, số ca mắc mới đã giảm mạnh trong tháng qua so với tháng trước."
    got = extract_article(_page(f"<p>{PARA}</p><p>{linked}</p><p>{PARA}</p>"), "https://x.vn/a")
    assert "báo cáo của Bộ Y tế, số ca mắc mới" in got.text


def test_an_article_split_into_twin_containers_is_read_whole() -> None:
    first = "".join(f"<p>Phần một, đoạn {i}. {PARA}</p>" for i in range(3))
    second = "".join(f"<p>Phần hai, đoạn {i}. {PARA}</p>" for i in range(3))
    body = (f"<div class='chunks'><div class='grid body'><div class='article-body'>{first}</div></div>"
            "<div class='ad'>Quảng cáo</div>"
            f"<div class='grid body'><div class='article-body'>{second}</div></div></div>")
    got = extract_article(_page(body, lang="en"), "https://x.vn/a")
    assert "Phần một, đoạn 0." in got.text and "Phần hai, đoạn 2." in got.text


def test_a_section_page_of_teasers_is_not_an_article() -> None:
    teasers = "".join(
        f"<div class='item'><h3><a href='/story-{i}.html'>Tiêu đề của câu chuyện số {i} trên trang chủ hôm nay</a></h3>"
        f"<p>Tóm tắt câu chuyện số {i}: {PARA[:150]}</p></div>" for i in range(8))
    html = f"<html><head><title>Báo X</title></head><body><div class='list'>{teasers}</div></body></html>"
    with pytest.raises(NotAnArticle):
        extract_article(html, "https://x.vn/thoi-su")


def test_centered_line_under_an_image_is_its_caption() -> None:
    body = (f"<p>{PARA}</p><div align='center'><img src='/img/b.jpg' width='500'></div>"
            "<div align='center'><span>Đặng Văn T. trong phiên phúc thẩm</span></div>"
            f"<p>{PARA}</p>")
    got = extract_article(_page(body), "https://x.vn/a.html")
    assert [(i.url, i.caption) for i in got.images] == [("https://x.vn/img/b.jpg", "Đặng Văn T. trong phiên phúc thẩm")]
    assert "phiên phúc thẩm" not in got.text


def test_line_breaks_inside_a_paragraph_do_not_glue_words() -> None:
    got = extract_article(_page(f"<p>{PARA}<br>Dòng thứ hai của đoạn văn.<br><br>{PARA}</p>"), "https://x.vn/a")
    assert "đoạn văn. Đây" not in got.text and "chính.Dòng" not in got.text
    assert "\nDòng thứ hai của đoạn văn.\n" in got.text


def test_extraction_depends_on_the_page_only() -> None:
    html = page("vnexpress_2025-10-22_fundus.html")
    first = extract_article(html, VNEXPRESS_URL)
    extract_article(page("myfeed2012_dantri1.html"), "https://example.vn/b")
    assert extract_article(html, VNEXPRESS_URL) == first


def test_list_items_start_with_a_dash_and_table_cells_are_joined_by_tabs() -> None:
    items = "".join(f"<li>Điều {i}: người lao động được nghỉ thêm một ngày khi làm việc đủ năm năm liên tục.</li>"
                    for i in range(1, 4))
    table = "<table><tr><th>Tỉnh</th><th>Số ca</th></tr><tr><td>Hà Nội</td><td>120</td></tr></table>"
    got = extract_article(_page(f"<p>{PARA}</p><ul>{items}</ul>{table}<p>{PARA}</p>"), "https://x.vn/a")
    assert "- Điều 2: người lao động" in got.text
    assert "Hà Nội\t120" in got.text and "|" not in got.text


# --- pages that are not articles: no words, too complex -----------------------------------------------------

def _paragraphs(text: str, n: int = 6) -> str:
    return _page("".join(f"<p>{text} ({i})</p>" for i in range(n)), lang="")


@pytest.mark.parametrize("text", [
    pytest.param("\ufffd" * 300, id="run-of-replacement-characters"),
    pytest.param("<" * 300, id="run-of-angle-brackets"),
    pytest.param("=-|+*" * 60, id="symbols-and-punctuation"),
    pytest.param(bytes(range(32, 256)).decode("windows-1252", "replace") * 2, id="binary-as-windows-1252"),
    pytest.param(bytes(range(32, 256)).decode("latin-1") * 2, id="binary-as-latin-1"),
    pytest.param("Tin mới " + "\ue000\ue001\ue002" * 30, id="private-use-characters"),
])
def test_text_without_words_is_not_an_article(text: str) -> None:
    with pytest.raises(NotAnArticle) as err:
        extract_article(_paragraphs(text), "https://x.vn/a")
    assert err.value.reason == "not_text"


@pytest.mark.parametrize("text", [
    pytest.param(PARA, id="vietnamese"),
    pytest.param("日本の首相は記者会見で、新しい経済対策を発表した。対策の規模は約二十兆円となる見通しだ。", id="japanese"),
    pytest.param("ประเทศไทยมีประชากรประมาณหกสิบหกล้านคน และกรุงเทพมหานครเป็นเมืองหลวงที่ใหญ่ที่สุดของประเทศ",
                 id="thai-with-combining-marks"),
    pytest.param("भारत एक विशाल देश है और इसकी राजधानी नई दिल्ली है। यहाँ अनेक भाषाएँ बोली जाती हैं।", id="hindi"),
    pytest.param("أعلنت الحكومة اليوم عن خطة جديدة لدعم الاقتصاد الوطني وتوفير فرص العمل للشباب.", id="arabic"),
    pytest.param("VNM 72.500 (+1,2%); FPT 95.300 (-0,4%); HPG 27.150 (+0,9%); VIC 44.000 (0%); MWG 48.900 (+2,1%).",
                 id="price-board"),
    pytest.param("Người dân Hà Nội đưa tin " + "\ufffd" + " về những sự kiện quan trọng trong tuần, theo phóng viên. " * 2,
                 id="a-few-invalid-bytes"),
])
def test_text_in_any_script_is_made_of_words(text: str) -> None:
    got = extract_article(_paragraphs(text), "https://x.vn/a")
    assert text.split()[0] in got.text


@pytest.mark.parametrize(("html", "reason"), [
    pytest.param("<html><body>" + "<span>chữ</span> " * 40_000 + "</body></html>", "too_complex", id="40k-elements"),
    pytest.param(_page(f"<p>{PARA}</p>" + "<a href='/x'>một liên kết</a> " * 3_000), "link_farm", id="3k-links"),
])
def test_pages_too_complex_for_an_article_are_refused_before_extraction(html: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(NotAnArticle) as err:
        extract_article(html, "https://x.vn/a")
    assert err.value.reason == reason
    assert time.monotonic() - started < 2  # a full extraction of either takes several seconds


def test_an_article_with_many_links_is_not_a_link_farm() -> None:
    # 2,500 links, but most of the text is outside them.
    links = "".join(f"<li><a href='/t/{i}'>thẻ {i}</a></li>" for i in range(2_500))
    got = extract_article(_page(f"<p>{PARA * 30}</p><ul>{links}</ul>"), "https://x.vn/a")
    assert PARA.split()[0] in got.text


def test_the_warm_up_page_goes_through_every_stage() -> None:
    """warm() must reach language, date and byline detection, or extraction processes start cold."""
    sample = warm()
    assert sample.language == "vi" and sample.authors == ("Minh Anh",)
    assert sample.published_at is not None and sample.published_at.isoformat() == "2026-11-24T08:00:00+07:00"
