import sys
from pathlib import Path

import pytest

from config import SettingsError, SourcesError, load_settings
from config.sources import load_sources, parse_sources


def test_defaults_and_env_overrides() -> None:
    s = load_settings({"INGEST_TICK_SECONDS": "2.5", "INGEST_ALLOW_PRIVATE_NETWORKS": "true",
                       "REDIS_URL": "redis://example:6379/1"})
    assert s.tick_seconds == 2.5
    assert s.allow_private_networks is True
    assert s.redis_url == "redis://example:6379/1"
    assert load_settings({}).allow_private_networks is False


def test_extraction_deadline_and_feed_entry_cap() -> None:
    assert (load_settings({}).extract_timeout, load_settings({}).max_feed_entries) == (20.0, 1000)
    s = load_settings({"INGEST_EXTRACT_TIMEOUT": "2.5", "INGEST_MAX_FEED_ENTRIES": "50"})
    assert (s.extract_timeout, s.max_feed_entries) == (2.5, 50)


def test_ingest_redis_url_wins_over_redis_url() -> None:
    s = load_settings({"REDIS_URL": "redis://a:1/0", "INGEST_REDIS_URL": "redis://b:2/0"})
    assert s.redis_url == "redis://b:2/0"


@pytest.mark.parametrize(("var", "value"), [("INGEST_TICK_SECONDS", "soon"), ("INGEST_MAX_ATTEMPTS", "0"),
                                             ("INGEST_LOG_FORMAT", "xml"), ("INGEST_EXTRACT_TIMEOUT", "0"),
                                             ("INGEST_MAX_FEED_ENTRIES", "0")])
def test_bad_value_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        load_settings({var: value})


def test_retries_must_fit_inside_the_visibility_timeout() -> None:
    with pytest.raises(SettingsError, match="redelivery_timeout"):
        load_settings({"INGEST_RETRY_MAX_DELAY": "200", "INGEST_REDELIVERY_TIMEOUT": "300"})


def test_shipped_feeds_file_is_valid() -> None:
    sources = load_sources(load_settings({}).feeds_file)
    assert len(sources.feeds) >= 10
    assert all(f.url.startswith("https://") for f in sources.feeds)
    assert sources.site_for("vnexpress.net") is not None
    assert sources.site_for("video.vnexpress.net")[1].timezone == "Asia/Ho_Chi_Minh"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"feeds": [{"url": "ftp://x"}]}, "http"),
        ({"feeds": [{"url": "https://x/rss", "interval": 0}]}, "feeds.0.interval"),
        ({"feeds": [{"url": "https://x/rss", "colour": "red"}]}, "colour"),
        ({"sites": {"x.vn": {"timezone": "Mars/Base"}}}, "time zone"),
        (["not", "a", "mapping"], "mapping"),
    ],
)
def test_bad_feeds_file_is_a_clear_error(data: object, message: str) -> None:
    with pytest.raises(SourcesError, match=message):
        parse_sources(data)


def test_unreadable_or_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(SourcesError, match="cannot read"):
        load_sources(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds: [\n")
    with pytest.raises(SourcesError, match="YAML"):
        load_sources(bad)


def test_task_events_off_unless_asked() -> None:
    from tasks.app import celery_config

    off, on = celery_config(load_settings({})), celery_config(load_settings({"INGEST_TASK_EVENTS": "true"}))
    assert (off["worker_send_task_events"], off["task_send_sent_event"]) == (False, False)
    assert (on["worker_send_task_events"], on["task_send_sent_event"]) == (True, True)


def test_a_starting_worker_shortens_the_gil_switch_interval() -> None:
    from celery.signals import worker_init

    from tasks.app import GIL_SWITCH_SECONDS, app

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        worker_init.send(sender=None, app=app)  # what Celery sends as a worker starts, before it takes tasks
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_SECONDS) and GIL_SWITCH_SECONDS < 0.005
    finally:
        sys.setswitchinterval(before)
