import unicodedata

import pytest

from worker.charset import decode_html, sniff_encoding

VI = "Tuổi trẻ Thủ đô: người dân đổ về trung tâm"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (f"<p>{VI}</p>".encode(), "text/html; charset=utf-8", "utf-8"),
        (f'<meta charset="windows-1258"><p>{VI}</p>'.encode("windows-1258", "ignore"), None, "cp1258"),
        (b"\xef\xbb\xbf<p>x</p>", None, "utf-8"),
        ("<p>café</p>".encode("latin-1"), "text/html; charset=ISO-8859-1", "iso8859-1"),
    ],
)
def test_sniff_encoding(body: bytes, content_type: str | None, expected: str) -> None:
    assert sniff_encoding(body, content_type) == expected


def test_decoded_text_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", VI)
    assert decomposed != VI
    assert decode_html(f"<p>{decomposed}</p>".encode(), "text/html; charset=utf-8") == f"<p>{VI}</p>"


def test_meta_declares_legacy_but_page_is_utf8() -> None:
    body = f'<meta http-equiv="Content-Type" content="text/html; charset=windows-1258"><p>{VI}</p>'.encode()
    assert VI in decode_html(body)


def test_undeclared_legacy_bytes_are_detected() -> None:
    text = "Les élèves ont été récompensés à la fin de l'année scolaire, après des épreuves difficiles. " * 5
    assert "récompensés" in decode_html(f"<html><p>{text}</p></html>".encode("latin-1"))
