"""The extraction benchmark's metric (bench/extraction.py) on small texts whose scores are worked out by hand."""

from __future__ import annotations

import pytest

from tests.factories import load_bench

bench = load_bench("extraction")
SIX = "one two three four five six"  # shingles: 1-4, 2-5, 3-6


def scores(*pages: tuple[str, str]) -> tuple[float, float, float]:
    """(precision, recall, f1) over pages given as (truth, prediction)."""
    return bench.precision_recall_f1(bench.match(truth, pred) for truth, pred in pages)


def test_tokens_are_word_runs_with_case_and_diacritics_kept() -> None:
    assert bench.tokenize("Hà Nội, 22/10: The END!") == ["Hà", "Nội", "22", "10", "The", "END"]


def test_shingles_are_a_multiset_of_four_token_runs() -> None:
    assert bench.shingles("a b c d a b c d") == {
        ("a", "b", "c", "d"): 2, ("b", "c", "d", "a"): 1, ("c", "d", "a", "b"): 1, ("d", "a", "b", "c"): 1,
    }


def test_a_text_shorter_than_a_shingle_is_one_short_shingle() -> None:
    assert bench.shingles("hello world") == {("hello", "world"): 1}
    assert bench.shingles("  ...  ") == {}


@pytest.mark.parametrize(
    ("truth", "pred", "expected"),
    [
        pytest.param(SIX, SIX, (1.0, 1.0, 1.0), id="identical"),
        # "One" differs from "one", so only shingle 1-4 differs: TP=2 FP=1 FN=1, so P=R=F1=2/3.
        pytest.param(SIX, "One two three four five six", (2 / 3, 2 / 3, 2 / 3), id="case-matters"),
        pytest.param(SIX, "seven eight nine ten eleven", (0.0, 0.0, 0.0), id="disjoint"),
        # pred has shingles 1-4 and 2-5, both true: TP=2 FP=0 FN=1, so P=1, R=2/3, F1=0.8.
        pytest.param(SIX, "one two three four five", (1.0, 2 / 3, 0.8), id="prediction-cut-short"),
        # pred adds "seven": shingles 1-4 2-5 3-6 4-7, TP=3 FP=1 FN=0, so P=3/4, R=1, F1=6/7.
        pytest.param(SIX, SIX + " seven", (0.75, 1.0, 6 / 7), id="prediction-with-extra"),
        # truth 1-4 x2 + three others (5), pred 1-4 x1: TP=1 FN=4 (a set would give R=1/4).
        pytest.param("a b c d a b c d", "a b c d", (1.0, 0.2, 1 / 3), id="repeats-count"),
        pytest.param("hello world", "hello world", (1.0, 1.0, 1.0), id="short-identical"),
    ],
)
def test_one_page(truth: str, pred: str, expected: tuple[float, float, float]) -> None:
    assert scores((truth, pred)) == pytest.approx(expected)


def test_page_counts_are_normalised_to_one() -> None:
    assert bench.match(SIX, "one two three four five") == pytest.approx((2 / 3, 0.0, 1 / 3))
    assert bench.match("a b c d", "e f g h") == pytest.approx((0.0, 0.5, 0.5))


def test_precision_and_recall_are_macro_averaged_then_combined() -> None:
    # Pages: (P=1, R=2/3) and (P=1, R=1): P=1, R=5/6, F1 = 2*(5/6)/(11/6) = 10/11.
    assert scores((SIX, "one two three four five"), (SIX, SIX)) == pytest.approx((1.0, 5 / 6, 10 / 11))


def test_empty_prediction_counts_against_recall_only() -> None:
    assert bench.match(SIX, "") == (0.0, 0.0, 1.0)
    # Page 1 is left out of precision: P = 1 (page 2 only), R = (0 + 1) / 2, F1 = 2/3.
    assert scores((SIX, ""), (SIX, SIX)) == pytest.approx((1.0, 0.5, 2 / 3))


def test_empty_truth_counts_against_precision_only() -> None:
    assert bench.match("", SIX) == (0.0, 1.0, 0.0)
    # Page 1 is left out of recall: P = (0 + 1) / 2, R = 1 (page 2 only), F1 = 2/3.
    assert scores(("", SIX), (SIX, SIX)) == pytest.approx((0.5, 1.0, 2 / 3))


def test_both_empty_is_left_out_and_no_pages_scores_zero() -> None:
    assert bench.match("", "") == (0.0, 0.0, 0.0)
    assert scores(("", ""), (SIX, SIX)) == pytest.approx((1.0, 1.0, 1.0))
    assert scores(("", "")) == (0.0, 0.0, 0.0)
    assert scores() == (0.0, 0.0, 0.0)


def test_string_checks_ignore_whitespace_differences() -> None:
    text = "Tin, ảnh:\nVũ Phương Thảo\n\nMost Viewed News"
    missing, kept = bench.string_checks(
        text, keep=["Tin, ảnh: Vũ Phương Thảo", "not there"], drop=["Most  Viewed News ", "Headline News"]
    )
    assert missing == ["not there"]
    assert kept == ["Most  Viewed News "]
