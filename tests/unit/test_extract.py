"""Extraction: real Vietnamese pages against ground truth and golden files, and the general rules on small pages."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest

from worker.errors import NotAnArticle
from worker.extract import extract_article

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
