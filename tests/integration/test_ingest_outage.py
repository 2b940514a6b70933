"""The article task never acks a message whose outcome it could not write: when Redis goes away at any step,
including while recording a failure, the task is rejected for re-delivery (the broker's redelivery does the rest,
see tests/chaos/test_redis_faults.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Reject

from config import Settings
from demo.site import LocalSite
from tasks import ingest
from tasks.app import configure
from tasks.stack import PrivateRedis

PAGE = (Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html").read_bytes()


@pytest.fixture
def own_redis(private_redis: PrivateRedis, settings: Settings) -> Iterator[PrivateRedis]:
    configure(settings.model_copy(update={"redis_url": private_redis.url}))
    yield private_redis
    configure(settings)


def test_redis_away_before_the_fetch_rejects_for_redelivery(own_redis: PrivateRedis, site: LocalSite) -> None:
    url = site.add("/a.html", PAGE)
    own_redis.stop(kill=True)
    with pytest.raises(Reject) as rejected:
        ingest.ingest_article(url, None, None, {"url": url, "title": "t"})
    assert rejected.value.requeue
    assert site.hits.get("/a.html", 0) == 0  # no turn could be taken, so no request went out


def test_redis_away_while_recording_a_failure_rejects_for_redelivery(
        own_redis: PrivateRedis, site: LocalSite, monkeypatch: pytest.MonkeyPatch) -> None:
    url = site.url("/missing.html")  # a 404: a final failure, to be recorded
    real_record = ingest.record_failure

    def record_after_redis_died(*args: Any, **kwargs: Any) -> None:
        own_redis.stop(kill=True)
        real_record(*args, **kwargs)

    monkeypatch.setattr(ingest, "record_failure", record_after_redis_died)
    with pytest.raises(Reject) as rejected:
        ingest.ingest_article(url, None, None, {"url": url, "title": "t"})
    assert rejected.value.requeue
