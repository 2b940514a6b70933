import json
import logging

import pytest

from tasks.logs import KEYS, JsonFormatter, TextFormatter


def record(msg: str = "feed polled", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("tasks.poll", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


@pytest.mark.parametrize("extra", [{}, {"feed": "https://x.vn/rss", "status": "ok"}, {"url": "u", "reason": "http_404"}])
def test_every_json_line_has_the_same_keys(extra: dict[str, object]) -> None:
    line = json.loads(JsonFormatter().format(record(**extra)))
    assert tuple(line) == KEYS
    assert line["level"] == "info" and line["logger"] == "tasks.poll" and line["message"] == "feed polled"
    for k, v in extra.items():
        assert line[k] == v


def test_text_lines_put_fields_after_the_message() -> None:
    text = TextFormatter().format(record(feed="https://x.vn/rss", status="ok"))
    assert text.endswith("tasks.poll: feed polled feed=https://x.vn/rss status=ok")


def test_configuring_twice_keeps_one_handler_and_leaves_others_alone() -> None:
    from tasks.logs import configure_logging

    root = logging.getLogger()
    other = logging.NullHandler()
    saved = root.handlers[:], root.level
    root.addHandler(other)
    try:
        configure_logging("INFO", "json")
        configure_logging("DEBUG", "text")
        ours = [h for h in root.handlers if h.get_name() == "news-ingest"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, TextFormatter) and other in root.handlers
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
